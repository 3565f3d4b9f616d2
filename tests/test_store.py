"""The DuckDB store: idempotent runs, two real processes writing at once, bad files left untouched, migrations."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from sim2real.evaluate import store as S
from sim2real.evaluate.store import RunRows, Store, StoreError, resolve_store_path, schema_markdown


def _rows(run_id: str, n_metrics: int = 5) -> RunRows:
    return RunRows(
        run={"run_id": run_id, "stage": "gap_report", "git_rev": "abc", "params_hash": "p", "params_json": "{}",
             "target": "proxy", "image_height": 32, "image_width": 48, "note": ""},
        tables={"metrics": [{"model_id": "m", "split": "real/val", "adaptation": "none", "name": f"x{i}",
                             "value": i / 10} for i in range(n_metrics)],
                "class_iou": [{"model_id": "m", "split": "real/val", "adaptation": "none", "class_id": c,
                               "class_name": str(c), "iou": float("nan") if c == 2 else 0.5,
                               "present": c != 2, "tp": 1, "fp": 0, "fn": 1} for c in range(3)],
                "headline": [{"figure": "domain_gap", "split": "real/val", "value": 12.5, "spread": None, "n": 1,
                              "note": ""}]})


def test_rematerializing_replaces_rows(tmp_path: Path) -> None:
    st = Store(tmp_path / "db" / "s.duckdb")
    st.write_run(_rows("r1"))
    counts = st.counts()
    st.write_run(_rows("r1"))
    assert st.counts() == counts
    st.write_run(_rows("r1", n_metrics=2))  # a changed run replaces, never mixes
    assert st.count("metrics", "r1") == 2 and st.count("runs") == 1
    st.write_run(_rows("r2"))
    assert st.count("runs") == 2 and st.count("metrics") == 7
    absent = st.query("SELECT iou, present FROM class_iou WHERE run_id='r1' AND class_id=2")[0]
    assert absent == {"iou": None, "present": False}, "NaN IoU is stored as NULL, flagged absent"
    assert st.latest_run() == "r2"


def test_failed_write_leaves_previous_rows(tmp_path: Path) -> None:
    st = Store(tmp_path / "s.duckdb")
    st.write_run(_rows("r1"))
    bad = _rows("r1", n_metrics=1)
    bad.tables["metrics"][0]["not_a_column"] = 1
    with pytest.raises(StoreError, match="unknown column"):
        st.write_run(bad)
    assert st.count("metrics", "r1") == 5


def test_bulk_write_keeps_every_row_and_casts_like_single_values(tmp_path: Path) -> None:
    """Each table is one INSERT of column lists: thousands of rows land in order, a column of mixed Python
    types is cast per value (5 and 'all' into VARCHAR, numpy scalars, NaN -> NULL), a bad value fails the
    whole run with DuckDB's own message and keeps the run's earlier rows."""
    import numpy as np

    st = Store(tmp_path / "s.duckdb")
    run = _rows("r1").run
    curve = [{"arm": "synthetic", "n_label": "all" if i % 3 == 0 else i, "n": np.int64(i),
              "seed": None if i % 2 else i, "split": "real/val", "miou": np.float32(0.25) if i else float("nan"),
              "steps": 10, "total_steps": 10**6, "best_step": 5} for i in range(3000)]
    st.write_run(RunRows(run=run, tables={"label_budget": curve}))
    got = st.query("SELECT n_label, n, seed, miou, total_steps FROM label_budget WHERE run_id = 'r1'"
                   " ORDER BY n")
    assert len(got) == 3000 and [r["n"] for r in got] == list(range(3000))
    assert got[0] == {"n_label": "all", "n": 0, "seed": 0, "miou": None, "total_steps": 10**6}
    assert got[1] == {"n_label": "1", "n": 1, "seed": None, "miou": 0.25, "total_steps": 10**6}
    bad = [*curve[:10], {**curve[10], "seed": "ten"}]
    with pytest.raises(StoreError, match=r"writing run r1 failed, its earlier rows are kept: Conversion Error.*'ten'"):
        st.write_run(RunRows(run=run, tables={"label_budget": bad}))
    assert st.count("label_budget", "r1") == 3000 and st.count("runs") == 1


_HOLD = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
if sys.argv[2] == "stdin":
    sys.stdin.readline()  # hold until the test says so
else:
    time.sleep(float(sys.argv[2]))
con.close()
"""

_WRITER = """
import json, sys
sys.path.insert(0, sys.argv[3])
from test_store import _rows
from sim2real.evaluate.store import Store
st = Store(sys.argv[1], lock_timeout_s=60)
print("ready", flush=True)
for k in range(3):
    st.write_run(_rows(f"{sys.argv[2]}-{k}"))
print(json.dumps({"waits": st.lock_waits}))
"""


def _hold_lock(path: Path, seconds: float | str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), str(seconds)], stdout=subprocess.PIPE,
                         stdin=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


@pytest.mark.e2e  # launches writer processes
def test_two_processes_writing_at_once_both_land(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).write_run(_rows("seed"))
    holder = _hold_lock(path, "stdin")  # a third process holds the file until both writers are trying
    here = str(Path(__file__).parent)
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name, here], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    for w in writers:
        assert w.stdout is not None and w.stdout.readline().strip() == "ready", w.stderr.read() if w.stderr else ""
    time.sleep(0.3)  # both are now retrying against the held lock
    holder.communicate("release\n", timeout=30)
    outs = [w.communicate(timeout=90) for w in writers]
    for w, (out, err) in zip(writers, outs, strict=True):
        assert w.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["waits"] > 0, "the writer never met the lock"
    st = Store(path)
    assert sorted(r["run_id"] for r in st.query("SELECT run_id FROM runs")) == [
        "a-0", "a-1", "a-2", "b-0", "b-1", "b-2", "seed"]
    assert st.count("metrics") == 7 * 5


@pytest.mark.e2e  # launches writer processes
def test_lock_held_too_long_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).write_run(_rows("r1"))
    holder = _hold_lock(path, "stdin")
    try:
        with pytest.raises(StoreError, match="still locked"):
            Store(path, lock_timeout_s=0.3).write_run(_rows("r2"))
        with pytest.raises(StoreError, match="still locked"):
            Store(path, lock_timeout_s=0.3).count("runs")  # read-only opens fail too: retried, then clear
    finally:
        holder.communicate("release\n", timeout=30)
    assert Store(path).count("runs") == 1


@pytest.mark.parametrize("content", [b"", b"this is a CSV,not,a,database\n1,2,3\n" * 20, b"SQLite format 3\x00" + b"\x00" * 200])
def test_non_duckdb_file_is_refused_and_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "s.duckdb"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a DuckDB database file") as err:
        Store(path).write_run(_rows("r1"))
    assert str(path) in str(err.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.duckdb"], "no WAL or side file created"


def test_corrupt_duckdb_file_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).write_run(_rows("r1"))
    data = bytearray(path.read_bytes())
    data[4096 + 100: 4096 + 4000] = b"\xff" * 3900  # scribble over the first data block, header intact
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=str(path)):
        Store(path).write_run(_rows("r2"))
    assert path.read_bytes() == bytes(data)


def test_migrations_apply_once_and_newer_files_are_refused(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).write_run(_rows("r1"))
    released = S.SCHEMA_VERSION
    nxt = S.Migration(released + 1, "add runs.host", ("ALTER TABLE runs ADD COLUMN host VARCHAR",))
    monkeypatch.setattr(S, "MIGRATIONS", [*S.MIGRATIONS, nxt])
    monkeypatch.setattr(S, "SCHEMA_VERSION", released + 1)
    st = Store(path)
    assert st.count("runs") == 1  # a read of an older file migrates it first, then reads
    with st.connect() as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == released + 1
        assert "host" in [r[0] for r in con.execute("DESCRIBE runs").fetchall()]
    with st.connect() as con:  # applied once
        assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == released + 1
    monkeypatch.setattr(S, "MIGRATIONS", S.MIGRATIONS[:released])
    monkeypatch.setattr(S, "SCHEMA_VERSION", released)
    with pytest.raises(StoreError, match="newer than this sim2real"):
        Store(path).count("runs")


def test_version_3_file_with_fractions_migrates_to_points_once(tmp_path: Path, monkeypatch) -> None:
    """Schema 4 keeps one unit: a store written in fractions (schema 3) is converted on first open, once."""
    path = tmp_path / "s.duckdb"
    with monkeypatch.context() as m:
        m.setattr(S, "MIGRATIONS", S.MIGRATIONS[:3])
        m.setattr(S, "SCHEMA_VERSION", 3)
        old = _rows("r1")
        old.tables["metrics"] = [{"model_id": "m", "split": "real/val", "adaptation": "none", "name": n, "value": v}
                                 for n, v in (("miou", 0.431), ("pixel_accuracy", 0.9), ("images", 101.0))]
        old.tables["hard_samples"] = [{"model_id": "m", "split": "real/val", "rank": 1, "sample_index": 3,
                                       "sample_name": "a", "loss": 2.5, "miou": 0.25, "pixel_accuracy": 0.5}]
        Store(path).write_run(old)
    for _ in range(2):  # a second open must not convert again
        st = Store(path)
        assert {r["name"]: r["value"] for r in st.query("SELECT name, value FROM metrics")} == pytest.approx(
            {"miou": 43.1, "pixel_accuracy": 90.0, "images": 101.0})
        assert st.query("SELECT iou FROM class_iou WHERE class_id = 0")[0]["iou"] == pytest.approx(50.0)
        assert st.query("SELECT loss, miou, pixel_accuracy FROM hard_samples")[0] == pytest.approx(
            {"loss": 2.5, "miou": 25.0, "pixel_accuracy": 50.0})


def test_store_path_resolution(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SIM2REAL_STORE", raising=False)
    assert resolve_store_path("data/store/x.duckdb", tmp_path) == tmp_path / "data/store/x.duckdb"
    monkeypatch.setenv("SIM2REAL_STORE", str(tmp_path / "env.duckdb"))
    assert resolve_store_path("data/store/x.duckdb", tmp_path) == tmp_path / "env.duckdb"
    assert resolve_store_path("a.duckdb", tmp_path, explicit="b.duckdb") == tmp_path / "b.duckdb"


def test_schema_markdown_documents_every_table() -> None:
    text = schema_markdown()
    for table, (_, cols) in S.TABLES.items():
        assert f"**{table}**" in text
        assert all(f"| {c} |" in text for c, _, _ in cols)
    con = duckdb.connect(":memory:")  # the DDL is valid SQL
    for m in S.MIGRATIONS:
        for sql in m.statements:
            con.execute(sql)
    assert textwrap.dedent(text).startswith("Schema version")
