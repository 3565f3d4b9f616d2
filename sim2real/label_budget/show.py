"""The latest label-budget curve read back from the DuckDB store (for `sim2real gap`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim2real.context import markdown_table

ARMS = (("source_only", "source-only"), ("real_only", "real-only"), ("synthetic", "synthetic + N"))


def curve_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of table `label_budget` (one split) -> one line per N: mean ± std per arm and the gain."""
    by: dict[tuple[str, int], list[float]] = {}
    labels: dict[int, str] = {}
    for r in rows:
        by.setdefault((r["arm"], int(r["n"])), []).append(float(r["miou"]))
        labels[int(r["n"])] = r["n_label"]
    out = []
    for n in sorted(labels):
        line: dict[str, Any] = {"N": n if labels[n] != "all" else f"all ({n})"}
        for arm, title in ARMS:
            v = by.get((arm, n))
            line[title] = "" if not v else (f"{np.mean(v):.1f} ± {np.std(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}")
        syn, ro = by.get(("synthetic", n)), by.get(("real_only", n))
        line["gain"] = f"{np.mean(syn) - np.mean(ro):+.1f}" if syn and ro else ""
        line["seeds"] = len(syn or ro or [])
        out.append(line)
    return out


def latest_curve(store: Any) -> str | None:
    """The newest `label_budget` run as text (table on real test + labels saved), or None."""
    rid = store.latest_run(stage="label_budget")
    if rid is None:
        return None
    run = store.query("SELECT created_at FROM runs WHERE run_id = ?", [rid])[0]
    rows = store.query("SELECT arm, n, n_label, seed, miou FROM label_budget WHERE run_id = ? AND split = ?",
                       [rid, "real/test"])
    text = [f"label-budget curve {rid} ({run['created_at']:%Y-%m-%d %H:%M} UTC), mIoU points on real/test:",
            markdown_table(curve_rows(rows))]
    saved = store.query("SELECT note FROM headline WHERE run_id = ? AND figure = ? AND split = ?",
                        [rid, "label_budget/labels_saved", "real/test"])
    text.append(saved[0]["note"] if saved else "labels saved: not reached (see data/label_budget/curve.md)")
    return "\n".join(text)
