"""The DuckDB store: one file holding every evaluation run, so gaps can be compared over time.

Rules the code keeps:
- One run (a `gap_report` materialization or one `sim2real evaluate`) is written in ONE transaction:
  its old rows (same `run_id`) are deleted and the new ones inserted, so re-materializing the same
  run replaces its rows instead of duplicating them, and a crash leaves the previous rows intact.
- DuckDB lets one process hold the file; a second process fails at once with a lock error, even
  read-only. Every connection here retries with exponential backoff (plus jitter) up to
  `store.lock_timeout_s`, and holds the file only for the few milliseconds of a write, so two
  processes writing at the same time both land.
- A file at the store path that is not a DuckDB database (or is corrupt) is a clear `StoreError`
  naming the path; it is never overwritten or "repaired".
- The schema is versioned (`schema_version`); `MIGRATIONS` upgrades an older file in place when it
  is opened; a file written by a newer sim2real is refused rather than guessed at.

The schema itself is `TABLES` below; `schema_markdown()` renders it for the README.

Example:
    >>> store = Store("data/store/sim2real.duckdb")
    >>> store.write_run(RunRows(run={"run_id": "r1", "stage": "evaluate", ...},
    ...                         tables={"metrics": [{"run_id": "r1", ...}]}))
    >>> store.query("SELECT * FROM metrics WHERE run_id = ?", ["r1"])
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["Store", "StoreError", "RunRows", "stage_run", "TABLES", "MIGRATIONS", "SCHEMA_VERSION", "schema_markdown",
           "resolve_store_path", "git_revision"]

ENV_STORE = "SIM2REAL_STORE"
_MAGIC = b"DUCK"  # bytes 8..12 of every DuckDB database file


class StoreError(ValueError):
    """The store file is unusable (not DuckDB, corrupt, newer schema, locked too long)."""


# (column, SQL type, meaning). Key columns of each table are listed in its description.
Column = tuple[str, str, str]

TABLES: dict[str, tuple[str, list[Column]]] = {
    "runs": ("One row per run. Key: run_id.", [
        ("run_id", "VARCHAR", "stable id: same code + params + checkpoints -> same id (re-runs replace)"),
        ("stage", "VARCHAR", "what wrote it: gap_report | evaluate"),
        ("created_at", "TIMESTAMP", "UTC time the rows were (re)written"),
        ("git_rev", "VARCHAR", "commit of the code that ran ('unknown' outside a git checkout)"),
        ("params_hash", "VARCHAR", "hash of the full validated params.yaml (sim2real.config.params_hash)"),
        ("params_json", "VARCHAR", "the full config as JSON"),
        ("target", "VARCHAR", "real target: proxy | camvid | cityscapes | folder (+ root for evaluate)"),
        ("image_height", "INTEGER", "working resolution of the evaluation"),
        ("image_width", "INTEGER", ""),
        ("note", "VARCHAR", "free text (e.g. budget warnings)"),
    ]),
    "models": ("Every model a run evaluated. Key: (run_id, model_id).", [
        ("run_id", "VARCHAR", ""),
        ("model_id", "VARCHAR", "e.g. source_only/reinhard, finetuned/seed-0, real_only/seed-0"),
        ("kind", "VARCHAR", "source_only | finetuned | real_only | checkpoint"),
        ("style_method", "VARCHAR", "style method of its synthetic pretraining data (NULL for real_only)"),
        ("seed", "INTEGER", "fine-tuning / training seed (NULL for source_only)"),
        ("few_shot", "INTEGER", "N real labelled images it trained on (0 for source_only)"),
        ("steps", "INTEGER", "optimizer steps its own stage ran (checkpoint 'budget'; else info 'step')"),
        ("total_steps", "INTEGER", "all optimizer steps behind the weights (pretraining + fine-tuning)"),
        ("init", "VARCHAR", "what its weights started from (checkpoint info 'init')"),
        ("checkpoint", "VARCHAR", "checkpoint path"),
        ("checkpoint_sha", "VARCHAR", "sha256 of the checkpoint file (first 16 hex)"),
    ]),
    "metrics": ("Scalar scores. Key: (run_id, model_id, split, adaptation, name).", [
        ("run_id", "VARCHAR", ""),
        ("model_id", "VARCHAR", ""),
        ("split", "VARCHAR", "synthetic/val, styled/<method>/val, real/val, real/test, or a folder's split"),
        ("adaptation", "VARCHAR", "none | adabn | reverse_<method> (test-time baselines)"),
        ("name", "VARCHAR", "miou | pixel_accuracy | mean_loss | images | present_classes"),
        ("value", "DOUBLE", "miou and pixel_accuracy in points (0..100); NULL when undefined"),
    ]),
    "class_iou": ("Per-class IoU. Key: (run_id, model_id, split, adaptation, class_id).", [
        ("run_id", "VARCHAR", ""),
        ("model_id", "VARCHAR", ""),
        ("split", "VARCHAR", ""),
        ("adaptation", "VARCHAR", ""),
        ("class_id", "INTEGER", "0..10 (CamVid 11-class taxonomy; void never appears)"),
        ("class_name", "VARCHAR", ""),
        ("iou", "DOUBLE", "100 x TP/(TP+FP+FN), points; NULL when the class is absent from truth AND prediction"),
        ("present", "BOOLEAN", "false = absent from both (excluded from mIoU)"),
        ("tp", "BIGINT", "pixel counts (void pixels ignored)"),
        ("fp", "BIGINT", ""),
        ("fn", "BIGINT", ""),
    ]),
    "headline": ("The headline figures of a run, in mIoU points. Key: (run_id, figure, split).", [
        ("run_id", "VARCHAR", ""),
        ("figure", "VARCHAR", "domain_gap | recovered_by_style/<m> | recovered_by_finetuning | "
                              "tta/<adaptation> | synthetic_pretraining_gain | remaining_gap | ..."),
        ("split", "VARCHAR", "real split the figure is measured on"),
        ("value", "DOUBLE", "mIoU points (100 x fraction)"),
        ("spread", "DOUBLE", "std over seeds (NULL with one seed)"),
        ("n", "INTEGER", "number of seeds / models behind the value"),
        ("note", "VARCHAR", "budgets, warnings, how it was computed"),
    ]),
    "domain_stats": ("Image/label statistics per domain pair. Key: (run_id, source, target, statistic).", [
        ("run_id", "VARCHAR", ""),
        ("source", "VARCHAR", "e.g. synthetic/val, styled/reinhard/val, real/val+reverse_reinhard"),
        ("target", "VARCHAR", "e.g. real/val"),
        ("statistic", "VARCHAR", "brightness, contrast, edge_density, mean_r, ..., hist_rgb, class_distribution"),
        ("distance_name", "VARCHAR", "wasserstein1 (per-image values) | jensen_shannon (histograms)"),
        ("distance", "DOUBLE", ""),
        ("source_value", "DOUBLE", "mean over source images (NULL for histograms)"),
        ("target_value", "DOUBLE", ""),
    ]),
    "latent_gap": ("Encoder-feature gap. Key: (run_id, model_id, adaptation, source, target, metric).", [
        ("run_id", "VARCHAR", ""),
        ("model_id", "VARCHAR", "whose encoder made the features"),
        ("adaptation", "VARCHAR", "none | adabn | reverse_<method>"),
        ("source", "VARCHAR", ""),
        ("target", "VARCHAR", ""),
        ("metric", "VARCHAR", "frechet | frechet_normalized | mmd2 | domain_accuracy | proxy_a_distance"),
        ("value", "DOUBLE", ""),
        ("n_source", "INTEGER", "images per domain"),
        ("n_target", "INTEGER", ""),
    ]),
    "hard_samples": ("Hardest real images by loss. Key: (run_id, model_id, split, rank).", [
        ("run_id", "VARCHAR", ""),
        ("model_id", "VARCHAR", ""),
        ("split", "VARCHAR", ""),
        ("rank", "INTEGER", "1 = highest loss"),
        ("sample_index", "INTEGER", "position in the split"),
        ("sample_name", "VARCHAR", "source file stem"),
        ("loss", "DOUBLE", "mean cross-entropy over non-void pixels"),
        ("miou", "DOUBLE", "the image's own mIoU in points (classes present in it)"),
        ("pixel_accuracy", "DOUBLE", "points (0..100)"),
        ("brightness", "DOUBLE", "mean luma in [0, 1]"),
        ("contrast", "DOUBLE", "std of luma"),
        ("edge_density", "DOUBLE", "fraction of pixels with Sobel magnitude above threshold"),
        ("sky_fraction", "DOUBLE", "fraction of labelled pixels that are Sky"),
        ("void_fraction", "DOUBLE", "fraction of void pixels"),
        ("classes_present", "VARCHAR", "comma-separated class names present in the truth"),
    ]),
    "gap_metric_fit": ("How well each gap statistic ranks the real-val mIoU drop. Key: (run_id, statistic).", [
        ("run_id", "VARCHAR", ""),
        ("statistic", "VARCHAR", "e.g. latent/frechet, latent/mmd2, image/hist_rgb"),
        ("spearman", "DOUBLE", "rank correlation with the mIoU drop; NULL with < 3 points or no spread"),
        ("p_value", "DOUBLE", ""),
        ("n_points", "INTEGER", "models x style variants x test-time adaptations used"),
    ]),
    "label_budget": ("The label-budget curve, one row per run of an arm. Key: (run_id, arm, n_label, seed, split).", [
        ("run_id", "VARCHAR", ""),
        ("arm", "VARCHAR", "source_only (N = 0) | synthetic (pretrained, then N real) | real_only (N real)"),
        ("n_label", "VARCHAR", "N as configured: a number or 'all'"),
        ("n", "INTEGER", "real labelled images it trained on (0 for source_only)"),
        ("seed", "INTEGER", "run seed (training order and the N-image draw); NULL for source_only"),
        ("split", "VARCHAR", "real/val (selection) | real/test (reported)"),
        ("miou", "DOUBLE", "mIoU points (100 x fraction)"),
        ("steps", "INTEGER", "optimizer steps of this arm's own training"),
        ("total_steps", "INTEGER", "all optimizer steps behind the weights (pretraining + fine-tuning)"),
        ("best_step", "INTEGER", "step of the checkpoint selected on real val"),
    ]),
    "root_causes": ("Root-cause checks, one row per intervention. Key: (run_id, model_id, split, intervention).", [
        ("run_id", "VARCHAR", ""),
        ("model_id", "VARCHAR", "the source-only model re-evaluated, e.g. source_only/reinhard"),
        ("split", "VARCHAR", "real split intervened on: real/val | real/test"),
        ("intervention", "VARCHAR", "registry name, e.g. brightness_contrast, sky_crop, class_presence"),
        ("trait", "VARCHAR", "the suspected cause it removes"),
        ("kind", "VARCHAR", "paired (images changed) | subset (images kept)"),
        ("images", "INTEGER", "target images measured after the intervention"),
        ("hardest_k", "INTEGER", "hardest images (by loss) of the hard-subset change"),
        ("miou_before", "DOUBLE", "mIoU points on the original images"),
        ("miou_after", "DOUBLE", "mIoU points on the intervened images"),
        ("change", "DOUBLE", "after - before, all images (mIoU points)"),
        ("ci_low", "DOUBLE", "bootstrap CI over images of the change (rootcause.ci)"),
        ("ci_high", "DOUBLE", ""),
        ("hard_change", "DOUBLE", "the change on the hardest k images"),
        ("hard_ci_low", "DOUBLE", ""),
        ("hard_ci_high", "DOUBLE", ""),
        ("gap", "DOUBLE", "source mIoU (own styled val) - target mIoU, points"),
        ("gap_share", "DOUBLE", "change / gap (NULL when there is no gap)"),
        ("verdict", "VARCHAR", "confirmed | inconclusive | rejected"),
        ("note", "VARCHAR", "why the verdict, and what the intervention did"),
    ]),
}

RUN_TABLES = [t for t in TABLES if t != "runs"]


def _create_sql(table: str) -> str:
    cols = ", ".join(f"{c} {t}" for c, t, _ in TABLES[table][1])
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# Append a Migration (never edit a released one) when the schema changes; bump SCHEMA_VERSION.
MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", tuple(_create_sql(t) for t in TABLES if t != "label_budget")),
    Migration(2, "label-budget curve", (_create_sql("label_budget"),)),
    Migration(3, "root-cause checks", (_create_sql("root_causes"),)),
    Migration(4, "one unit: mIoU, IoU and pixel accuracy in points everywhere (they were fractions)", (
        "UPDATE metrics SET value = 100 * value WHERE name IN ('miou', 'pixel_accuracy')",
        "UPDATE class_iou SET iou = 100 * iou",
        "UPDATE hard_samples SET miou = 100 * miou, pixel_accuracy = 100 * pixel_accuracy")),
]
SCHEMA_VERSION = max(m.version for m in MIGRATIONS)


def schema_markdown() -> str:
    """The SCHEMA section for the README, rendered from `TABLES`."""
    out = [f"Schema version {SCHEMA_VERSION} (table `schema_version` records the migrations applied).", ""]
    for table, (doc, cols) in TABLES.items():
        out += [f"**{table}**: {doc}", "", "| column | type | meaning |", "|---|---|---|"]
        out += [f"| {c} | {t} | {d.replace('|', chr(92) + '|')} |" for c, t, d in cols]
        out.append("")
    return "\n".join(out)


@dataclass
class RunRows:
    """All rows of one run: the `runs` row plus rows per table (each row a dict of columns)."""

    run: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])


def stage_run(stage: str, cfg: Any, root: Path, content: Any, note: str = "") -> dict[str, Any]:
    """The `runs` row of a stage that writes its own rows: a stable id from the params and `content`.

    Args:
        stage: the stage name (the id's prefix and the row's `stage`).
        cfg: the validated `Config` it ran with.
        root: the repository (for the git revision).
        content: what the run produced (JSON-able): the same params and content give the same id,
            so a re-run replaces its rows.
    """
    from sim2real.config import params_hash

    phash = params_hash(cfg)
    digest = hashlib.sha256(json.dumps([phash, content], sort_keys=True, default=str).encode()).hexdigest()[:12]
    return {"run_id": f"{stage}-{digest}", "stage": stage, "git_rev": git_revision(root), "params_hash": phash,
            "params_json": json.dumps(cfg.to_dict(), sort_keys=True), "target": cfg.real.source,
            "image_height": cfg.project.image_height, "image_width": cfg.project.image_width, "note": note}


def resolve_store_path(configured: str | Path, root: Path, explicit: str | Path | None = None) -> Path:
    """Store path: explicit argument > env SIM2REAL_STORE > params `store.path`; relative -> root."""
    chosen = explicit if explicit is not None else os.environ.get(ENV_STORE) or configured
    p = Path(chosen).expanduser()
    return p if p.is_absolute() else (root / p)


def git_revision(root: Path) -> str:
    """The commit of the checkout at `root`, read from .git without running git ('unknown' if none)."""
    git = root / ".git"
    try:
        if git.is_file():  # worktree / submodule: "gitdir: <path>"
            git = (root / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        ref_file = git / ref
        if ref_file.exists():
            return ref_file.read_text().strip()
        packed = git / "packed-refs"
        if packed.exists():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
        return "unborn"
    except (OSError, IndexError):
        return "unknown"


def _is_lock_error(err: Exception) -> bool:
    return isinstance(err, duckdb.IOException) and "lock" in str(err).lower()


class Store:
    """The DuckDB file at `path`. Connections are short-lived and retried while another process holds it.

    Args:
        path: the database file (created with its folder on first write).
        lock_timeout_s: how long to keep retrying while another process holds the file (default 120).
    """

    def __init__(self, path: str | Path, lock_timeout_s: float = 120.0):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self.lock_waits = 0  # how many times this object had to back off (for tests and logs)

    # -- opening -------------------------------------------------------------------------------
    def check_writable(self, min_free_mb: float = 8.0) -> None:
        """Fail now, in one line, if writing a run would fail later (call it BEFORE the expensive work).

        Checks: the path is a DuckDB file or absent; its folder exists or can be created; a probe file
        can be written and synced there; an existing store file opens for writing; and the disk has
        `min_free_mb` free. Reports the first cause ("Read-only file system", "No space left on
        device", "Not a directory", ...) naming the path. Touches no rows.
        """
        self._check_file()
        parent = self.path.parent
        existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise StoreError(f"{self.path}: the store is not writable: {existing} is a file, not a folder")
        try:
            parent.mkdir(parents=True, exist_ok=True)
            probe = parent / f".{self.path.name}.probe-{os.getpid()}"
            try:
                with open(probe, "wb") as f:
                    f.write(bytes(4096))
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                probe.unlink(missing_ok=True)
            if self.path.exists():
                with open(self.path, "r+b"):
                    pass
        except OSError as err:
            where = err.filename or parent
            raise StoreError(f"{self.path}: the store is not writable: {err.strerror or err} ({where})") from None
        free = shutil.disk_usage(parent).free
        if free < min_free_mb * 2**20:
            raise StoreError(f"{self.path}: the store is not writable: No space left on device "
                             f"({free / 2**20:.1f} MiB free in {parent}, need {min_free_mb:.0f} MiB)")

    def _check_file(self) -> None:
        if not self.path.exists():
            return
        if self.path.is_dir():
            raise StoreError(f"store path {self.path} is a directory, not a DuckDB file")
        with open(self.path, "rb") as f:
            head = f.read(16)
        if len(head) < 12 or head[8:12] != _MAGIC:
            raise StoreError(f"{self.path} exists but is not a DuckDB database file; refusing to touch it "
                             f"(move it away or point store.path / {ENV_STORE} elsewhere)")

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with the schema migrated (read-write) or checked (read-only); retried on lock."""
        self._check_file()
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"no store at {self.path} (run `sim2real run gap_report` or "
                                    f"`sim2real evaluate` first, or pass --store)")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open(read_only)
        if read_only and self._current_version(con) < SCHEMA_VERSION:
            con.close()  # an older file: migrate it once (a short write), then read
            self._open(False).close()
            con = self._open(True)
        try:
            if read_only:  # a read-write `_open` has migrated already
                self._migrate(con, read_only)
            yield con
        except duckdb.Error as err:
            if "corrupt" in str(err).lower() or "checksum" in str(err).lower():
                raise StoreError(f"{self.path}: the store is corrupt: {err}") from err
            raise
        finally:
            con.close()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """duckdb.connect, retried with exponential backoff + jitter while another process holds the file."""
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.02
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as err:
                if not _is_lock_error(err):
                    raise StoreError(f"{self.path}: cannot open the store: {err}") from err
                if time.monotonic() + delay > deadline:
                    raise StoreError(f"{self.path}: still locked by another process after "
                                     f"{self.lock_timeout_s:.0f}s (store.lock_timeout_s): {err}") from err
                self.lock_waits += 1
                time.sleep(delay * (0.5 + random.random()))  # jitter: two waiters don't retry in lockstep
                delay = min(delay * 2, 1.0)
                continue
            if not read_only:
                try:
                    self._migrate(con, read_only=False)
                except Exception:
                    con.close()
                    raise
            return con

    def _current_version(self, con: duckdb.DuckDBPyConnection) -> int:
        has = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'"
                          ).fetchone()[0]
        if not has:
            return 0
        v = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
        return int(v or 0)

    def _migrate(self, con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
        current = self._current_version(con)
        if current > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {current}, newer than this sim2real "
                             f"({SCHEMA_VERSION}); upgrade sim2real to read it")
        if current == SCHEMA_VERSION:
            return
        if read_only:
            raise StoreError(f"{self.path} has schema version {current} < {SCHEMA_VERSION} and is open "
                             f"read-only; it cannot be migrated now")
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("CREATE TABLE IF NOT EXISTS schema_version "
                        "(version INTEGER, applied_at TIMESTAMP, description VARCHAR)")
            for m in MIGRATIONS:
                if m.version <= current:
                    continue
                for sql in m.statements:
                    con.execute(sql)
                con.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                            [m.version, datetime.now(UTC).replace(tzinfo=None), m.description])
            con.execute("COMMIT")
        except Exception:
            _rollback(con)
            raise

    # -- writing -------------------------------------------------------------------------------
    def write_run(self, rows: RunRows) -> None:
        """Replace every row of `rows.run_id` with `rows`, in one transaction."""
        run = dict(rows.run)
        run.setdefault("created_at", datetime.now(UTC).replace(tzinfo=None))
        prepared = {"runs": _prepare("runs", [run])}
        for table, table_rows in rows.tables.items():
            if table not in TABLES or table == "runs":
                raise StoreError(f"unknown store table {table!r}; choose one of {RUN_TABLES}")
            for r in table_rows:
                if r.get("run_id", rows.run_id) != rows.run_id:
                    raise StoreError(f"table {table}: row for run {r.get('run_id')!r} in run {rows.run_id!r}")
            prepared[table] = _prepare(table, [{**r, "run_id": rows.run_id} for r in table_rows])
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table in TABLES:
                    con.execute(f"DELETE FROM {table} WHERE run_id = ?", [rows.run_id])
                for table, columns in prepared.items():
                    if columns[0]:
                        con.execute(_insert_sql(table), columns)
                con.execute("COMMIT")
            except duckdb.Error as err:
                # DuckDB aborts the transaction itself on I/O errors (a full disk): a failing ROLLBACK
                # must not hide the first cause ("cannot rollback - no transaction is active")
                _rollback(con)
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise StoreError(f"{self.path}: writing run {rows.run_id} failed, its earlier rows are "
                                 f"kept: {first}") from None
            except BaseException:
                _rollback(con)
                raise

    # -- reading -------------------------------------------------------------------------------
    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT; rows as dicts."""
        with self.connect(read_only=True) as con:
            cur = con.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def count(self, table: str, run_id: str | None = None) -> int:
        return self.counts([table], run_id)[table]

    def counts(self, tables: list[str] | tuple[str, ...] | None = None, run_id: str | None = None) -> dict[str, int]:
        """Rows per table (every table by default), read through one connection."""
        tables = list(TABLES if tables is None else tables)
        for table in tables:
            if table not in TABLES:
                raise StoreError(f"unknown store table {table!r}; choose one of {list(TABLES)}")
        where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
        with self.connect(read_only=True) as con:
            return {t: int(con.execute(f"SELECT count(*) FROM {t} {where}", params).fetchone()[0]) for t in tables}

    def latest_run(self, stage: str | None = None) -> str | None:
        where, params = ("WHERE stage = ?", [stage]) if stage else ("", [])
        rows = self.query(f"SELECT run_id FROM runs {where} ORDER BY created_at DESC LIMIT 1", params)
        return rows[0]["run_id"] if rows else None


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # no transaction left to roll back


def _prepare(table: str, rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The rows as one cleaned list per column of `table` (in `TABLES` order), for `_insert_sql`."""
    cols = [c for c, _, _ in TABLES[table][1]]
    known = set(cols)
    for r in rows:
        extra = set(r) - known
        if extra:
            raise StoreError(f"table {table}: unknown column(s) {sorted(extra)}; columns are {cols}")
    return [[_clean(r.get(c)) for r in rows] for c in cols]


def _insert_sql(table: str) -> str:
    """One INSERT of a whole table's rows: each column arrives as ONE list parameter and is unnested.

    DuckDB zips the unnests of one SELECT row by row and casts each list to the column's type the way
    it casts a single parameter (int -> VARCHAR, '3' -> INTEGER, a bad value is a Conversion Error),
    so this inserts what row-by-row `executemany` inserted, 20x (2000-row runs) to 44x (8800 rows)
    faster per row, the per-run open/commit/close being the rest (BENCHMARKS.md).
    """
    cols = TABLES[table][1]
    select = ", ".join(f"unnest(?::{t}[])" for _, t, _ in cols)
    return f"INSERT INTO {table} ({', '.join(c for c, _, _ in cols)}) SELECT {select}"


def _clean(v: Any) -> Any:
    """NaN -> NULL (SQL has no 'absent' float), numpy scalars -> Python, dicts/lists -> JSON."""
    kind = type(v)
    if v is None or kind is str or kind is int or kind is bool:  # the common cases, first (one call per value)
        return v
    if kind is float:
        return None if v != v else v
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, default=str)
    return v
