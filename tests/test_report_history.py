"""Report pieces that read the store across runs: the few-shot curve and the gap over successive runs."""

from __future__ import annotations

from pathlib import Path

from sim2real.evaluate import report
from sim2real.evaluate.store import RunRows, Store


def _run(run_id: str, n: int, ft: float, ro: float, gap: float) -> RunRows:
    models = [{"model_id": "finetuned/seed-0", "kind": "finetuned", "few_shot": n},
              {"model_id": "real_only/seed-0", "kind": "real_only", "few_shot": n}]
    metrics = [{"model_id": m, "split": "real/val", "adaptation": "none", "name": "miou", "value": 100 * v}
               for m, v in (("finetuned/seed-0", ft), ("real_only/seed-0", ro))]
    headline = [{"figure": "domain_gap", "split": "real/val", "value": gap, "n": 1, "note": ""},
                {"figure": "finetuned_miou", "split": "real/val", "value": 100 * ft, "n": 1, "note": ""}]
    return RunRows(run={"run_id": run_id, "stage": "gap_report", "git_rev": "x", "params_hash": run_id,
                        "params_json": "{}", "target": "proxy", "image_height": 32, "image_width": 48},
                   tables={"models": models, "metrics": metrics, "headline": headline})


def test_few_shot_curve_and_history_from_several_runs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    store.write_run(_run("r5", 5, 0.30, 0.25, 12.0))
    store.write_run(_run("r10", 10, 0.36, 0.33, 11.0))
    other = _run("other-target", 20, 0.9, 0.9, 1.0)
    other.run["target"] = "camvid"  # another target never mixes into this run's curves
    store.write_run(other)
    current = _run("r20", 20, 0.40, 0.39, 10.0)
    rows = report.few_shot_rows(store, current)
    assert {(r["kind"], r["few_shot"]) for r in rows} == {(k, n) for k in ("finetuned", "real_only") for n in (5, 10, 20)}
    assert next(r for r in rows if r["kind"] == "finetuned" and r["few_shot"] == 20)["mean"] == 40.0
    hist = report.history_rows(store, current, exclude="r20")
    gaps = [r["value"] for r in hist if r["figure"] == "domain_gap"]
    assert gaps == [12.0, 11.0, 10.0], "oldest first, this run last"
    report.plot_few_shot(rows, tmp_path / "few_shot.png")
    report.plot_history(hist, tmp_path / "history.png")
    assert (tmp_path / "few_shot.png").stat().st_size > 5000 and (tmp_path / "history.png").stat().st_size > 5000


def test_headline_pivot_orders_figures_and_splits() -> None:
    rows = [{"figure": f, "split": sp, "value": 1.0, "spread": None, "n": 1, "note": ""}
            for f in ("synthetic_pretraining_gain", "tta/adabn", "domain_gap") for sp in ("real/test", "real/val")]
    pivot = report.headline_pivot(rows)
    assert [r["figure"] for r in pivot] == [report.figure_label(f) for f in ("domain_gap", "tta/adabn",
                                                                          "synthetic_pretraining_gain")]
    assert list(pivot[0])[:3] == ["figure", "real/val", "real/test"]
