"""Fault injection (issue 12): bad inputs, broken files, full or read-only disks, kills and lock fights.

Each case in `CASES` breaks one thing in a copy of a small project and runs one `sim2real` command.
Every case asserts the same four things:
1. the exit code;
2. a one-line `error: ...` naming the file or key at fault, and no traceback;
3. nothing half-written: no new or changed file under data/ (temp folders included);
4. earlier outputs and store rows intact (same bytes, same row counts).
docs/faults.md lists the cases; keep the two in step.

Kills and lock fights need real processes and have their own tests below the table.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from sim2real.cli import app
from tests.conftest import BIN, REPO, make_project
from tests.test_real_import import write_camvid

STORE = "data/store/sim2real.duckdb"


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project with real_target's shards, a checkpoint, a labelled folder and a store with one run."""
    from sim2real.config import load_config
    from sim2real.evaluate.store import RunRows, Store
    from sim2real.runner import run_stage
    from sim2real.train.checkpoint import save_checkpoint
    from sim2real.train.models import create_model

    root = make_project(tmp_path_factory.mktemp("faults") / "proj", dvc=False)
    torch.set_num_threads(1)
    run_stage("real_target", root=root)
    cfg = load_config(root / "params.yaml")
    model = create_model(cfg.model.model_copy(update={"encoder_weights": None})).eval()
    save_checkpoint(root / "ckpt" / "model.pt", {
        "model": model.state_dict(), "params": cfg.to_dict(), "stage": "finetuned_model", "step": 3,
        "init": {"kind": "init"}})
    write_camvid(root / "cam", {"val": 3})
    Store(root / STORE).write_run(RunRows(
        run={"run_id": "earlier", "stage": "gap_report", "target": "proxy", "image_height": 32,
             "image_width": 48},
        tables={"headline": [{"figure": "domain_gap", "split": "real/test", "value": 12.5, "n": 1}]}))
    return root


@pytest.fixture
def project(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of `base` per case; commands run in it (SIM2REAL_ROOT)."""
    root = tmp_path / "p"
    shutil.copytree(base, root, symlinks=True)
    monkeypatch.setenv("SIM2REAL_ROOT", str(root))
    monkeypatch.delenv("SIM2REAL_STORE", raising=False)
    monkeypatch.chdir(root)
    return root


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under data/ except the store (DuckDB rewrites its own file on open)."""
    out = {}
    for p in sorted((root / "data").rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith("data/store/"):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir() and not any(p.iterdir()):
            out[rel + "/"] = "empty dir"
    return out


def store_rows(path: Path) -> dict[str, int]:
    from sim2real.evaluate.store import Store

    if not path.exists():
        return {}
    st = Store(path)
    return st.counts()


def invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"`sim2real {' '.join(args)}` raised instead of a one-line error") \
            from result.exception
    return result.exit_code, result.output


# ------------------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[Path], list[str]]  # breaks something in the project; returns the command's args
    code: int  # expected exit code
    message: str  # a fragment of the one-line error (the file or key at fault), after `error: `
    changes: tuple[str, ...] = ()  # data/ files the setup itself broke (their new bytes are checked too)


def _write(root: Path, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def _truncate(root: Path, rel: str) -> None:
    p = root / rel
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _ckpt_case(content: bytes | None, name: str) -> Callable[[Path], list[str]]:
    def setup(root: Path) -> list[str]:
        path = root / "bad" / name
        if content is None:
            path.parent.mkdir(exist_ok=True)
            shutil.copy(REPO / "dvc.yaml", path)  # a dvc file (dvc.lock is absent in fresh checkouts)
        else:
            _write(root, f"bad/{name}", content)
        return ["evaluate", "--checkpoint", str(path), "--root", str(root / "cam")]
    return setup


def _garbage_upstream(root: Path) -> list[str]:
    from sim2real.config import load_config

    method = load_config(root / "params.yaml").style.method
    _write(root, f"data/pretrained_model/{method}/model.pt", b"\x00\x01garbage" * 100)
    return ["run", "finetuned_model"]


def _broken_params(root: Path) -> list[str]:
    (root / "params.yaml").write_text((root / "params.yaml").read_text() + "\nproject: [unclosed\n")
    return ["gap", "--store", str(root / STORE)]


def _broken_params_run(root: Path) -> list[str]:
    (root / "params.yaml").write_text((root / "params.yaml").read_text() + "\nproject: [unclosed\n")
    return ["run", "real_only_model"]


def _bad_image(root: Path) -> list[str]:
    (root / "cam" / "val" / sorted(os.listdir(root / "cam" / "val"))[0]).write_bytes(b"not a png")
    return ["evaluate", "--checkpoint", str(root / "ckpt" / "model.pt"), "--root", str(root / "cam"),
            "--store", str(root / STORE)]


def _store_parent_is_a_file(root: Path) -> list[str]:
    (root / "afile").write_text("x")
    return ["evaluate", "--checkpoint", str(root / "ckpt" / "model.pt"), "--root", str(root / "cam"),
            "--store", str(root / "afile" / "sub" / "s.duckdb")]


def _store_not_duckdb(root: Path) -> list[str]:
    (root / "notdb.duckdb").write_text("a,b\n1,2\n")
    return ["evaluate", "--checkpoint", str(root / "ckpt" / "model.pt"), "--root", str(root / "cam"),
            "--store", str(root / "notdb.duckdb")]


CASES = [
    # datasets
    Case("truncated shard", lambda r: (_truncate(r, "data/real_target/val/images-00000.npy"),
                                       ["run", "real_only_model"])[1],
         2, "data/real_target/val/images-00000.npy: unreadable or truncated shard",
         ("data/real_target/val/images-00000.npy",)),
    Case("broken index.json", lambda r: (_write(r, "data/real_target/few_shot/index.json", b'{"format": '),
                                         ["run", "real_only_model"])[1],
         2, "data/real_target/few_shot/index.json: broken index", ("data/real_target/few_shot/index.json",)),
    Case("evaluate: one unreadable image", _bad_image, 2, "pass --skip-bad to skip them): "),
    # params
    Case("params.yaml YAML error", _broken_params_run, 2, "params.yaml: not valid YAML"),
    Case("unknown -S key", lambda r: ["run", "real_only_model", "-S", "finetune.no_such_key=1"], 2,
         "finetune.no_such_key"),
    Case("-S resolution differs from the input data",
         lambda r: ["run", "real_only_model", "-S", "project.image_height=64"], 2,
         "project.image_height=64"),
    # checkpoints
    Case("--checkpoint is a text file", _ckpt_case(b"hello\nworld\n", "notes.txt"), 2,
         "notes.txt: not a torch checkpoint"),
    Case("--checkpoint is a CSV", _ckpt_case(b"a,b,c\n1,2,3\n", "table.csv"), 2, "table.csv: not a torch checkpoint"),
    Case("--checkpoint is a dvc file", _ckpt_case(None, "dvc.lock"), 2, "dvc.lock: not a torch checkpoint"),
    Case("--checkpoint is garbage bytes", _ckpt_case(bytes(range(256)) * 8, "model.pt"), 2,
         "model.pt: not a torch checkpoint"),
    Case("--checkpoint is a truncated torch file",
         lambda r: (_write(r, "bad/cut.pt", (r / "ckpt" / "model.pt").read_bytes()[:5000]),
                    _ckpt_case(b"", "x")(r))[1][:1] + ["--checkpoint", str(r / "bad" / "cut.pt"), "--root",
                                                        str(r / "cam")],
         2, "cut.pt: not a readable torch checkpoint"),
    Case("garbage upstream model.pt", _garbage_upstream, 2, "model.pt: not a torch checkpoint",
         ("data/pretrained_model/",)),
    # store
    Case("store's parent is a file", _store_parent_is_a_file, 2, "afile is a file, not a folder"),
    Case("store file is not DuckDB", _store_not_duckdb, 2, "notdb.duckdb exists but is not a DuckDB database"),
    Case("gap_report's store not writable (checked before the work)",
         lambda r: ((r / "afile").write_text("x"), ["run", "gap_report", "-S", "store.path=afile/s.duckdb"])[1],
         2, "afile/s.duckdb: the store is not writable: "),
    Case("gap --store with a broken params.yaml", _broken_params, 0, ""),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(case: Case, project: Path) -> None:
    rows_before = store_rows(project / STORE)
    args = case.setup(project)
    before = snapshot(project)
    code, output = invoke(args)
    assert code == case.code, output
    if case.code != 0:
        errors = [line for line in output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and case.message in errors[0], output
        assert "Traceback" not in output and not output.split(errors[0], 1)[1].strip(), output  # one line
    error = next((line for line in output.splitlines() if line.startswith("error: ")), "")
    print(f"\nFAULT | {case.name} | {code} | {error}")  # the docs table (pytest -s)
    after = snapshot(project)
    assert after == before, f"files under data/ changed: {set(after.items()) ^ set(before.items())}"
    assert store_rows(project / STORE) == rows_before


# ------------------------------------------------------------------------------------------ store
def _readonly_dir() -> Path | None:
    """A directory on a read-only mount (containers mount /sys or /proc/sys read-only), if any."""
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 3 and "ro" in parts[3].split(",") and Path(parts[1]).is_dir():
            try:
                (Path(parts[1]) / ".sim2real-probe").mkdir()
            except OSError as err:
                if err.errno == errno.EROFS:
                    return Path(parts[1])
            else:  # pragma: no cover - not read-only after all
                (Path(parts[1]) / ".sim2real-probe").rmdir()
    return None


def test_store_on_read_only_fs_fails_before_the_work(project: Path) -> None:
    """Issue 12.4: a read-only filesystem and a missing parent: one line, before any evaluation."""
    ro = _readonly_dir()
    if ro is None:
        pytest.skip("no read-only mount on this machine")
    t0 = time.perf_counter()
    code, output = invoke(["evaluate", "--checkpoint", str(project / "ckpt" / "model.pt"), "--root",
                           str(project / "cam"), "--store", str(ro / "missing" / "s.duckdb")])
    assert code == 2 and "Read-only file system" in output and "Traceback" not in output, output
    assert "mIoU" not in output and time.perf_counter() - t0 < 10


def test_store_full_disk_is_named_before_the_work(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sim2real.evaluate import store as store_mod

    rows = store_rows(project / STORE)
    monkeypatch.setattr(store_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 0))
    code, output = invoke(["evaluate", "--checkpoint", str(project / "ckpt" / "model.pt"), "--root",
                           str(project / "cam")])
    assert code == 2 and "No space left on device" in output and "mIoU" not in output, output
    assert store_rows(project / STORE) == rows


def test_store_write_failure_keeps_the_first_cause(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk mid-write: DuckDB aborts the transaction, so ROLLBACK fails; the cause must survive,
    and so must the run's earlier rows (the DELETE and the inserts before the failure are undone)."""
    import duckdb

    from sim2real.evaluate.store import RunRows, Store, StoreError

    st = Store(project / STORE)
    metric = {"model_id": "m", "split": "real/val", "adaptation": "none", "name": "miou", "value": 0.5}
    st.write_run(RunRows(run={"run_id": "later", "stage": "evaluate"}, tables={"metrics": [metric]}))
    rows = store_rows(st.path)
    real_connect = Store.connect
    inserts: list[str] = []

    class Full:
        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self.con = con

        def execute(self, sql: str, *a: object) -> object:
            if sql == "ROLLBACK":
                raise duckdb.TransactionException("TransactionContext Error: cannot rollback - no transaction is active")
            if sql.startswith("INSERT INTO"):
                inserts.append(sql.split()[2])
                if len(inserts) == 2:  # the runs row is in, the metrics rows hit the full disk
                    raise duckdb.IOException('IO Error: Could not write file "sim2real.duckdb.wal": '
                                             'No space left on device')
            return self.con.execute(sql, *a)

    from contextlib import contextmanager

    @contextmanager
    def connect(self: Store, read_only: bool = False):
        with real_connect(self, read_only) as con:
            yield Full(con)

    monkeypatch.setattr(Store, "connect", connect)
    with pytest.raises(StoreError, match="writing run later failed, its earlier rows are kept: IO Error.*No space"):
        st.write_run(RunRows(run={"run_id": "later", "stage": "evaluate", "note": "rewrite"},
                             tables={"metrics": [metric, {**metric, "name": "pixel_accuracy"}]}))
    monkeypatch.undo()
    assert inserts == ["runs", "metrics"]
    assert store_rows(st.path) == rows
    assert st.query("SELECT note FROM runs WHERE run_id = 'later'") == [{"note": None}]
    assert st.query("SELECT name FROM metrics WHERE run_id = 'later'") == [{"name": "miou"}]


# ------------------------------------------------------------------------------------------ fetch (CLI)
def test_fetch_cli_truncated_tar_is_an_error(tmp_path: Path) -> None:
    """Issue 12.1 end to end: a tar cut at a member boundary, served without Content-Length."""
    import http.server
    import io
    import tarfile
    import threading

    src = write_camvid(tmp_path / "src", {"train": 3, "val": 2})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                t.add(p, f"mine/{p.relative_to(src).as_posix()}")
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as t:
        cut = buf.getvalue()[: t.getmembers()[-3].offset]

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(cut)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        dest = tmp_path / "out" / "mine"
        code, output = invoke(["fetch", "mine", "--dest", str(dest), "--url",
                               f"http://127.0.0.1:{httpd.server_address[1]}/mine.tar"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 2 and "truncated tar" in output and "fetched" not in output, output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------------------ evaluate / gap
def test_evaluate_skip_bad_then_gap_shows_the_latest_gap_report(project: Path) -> None:
    """Issue 12.6: `evaluate --skip-bad` skips the broken file; `gap` afterwards still shows the gap report."""
    args = _bad_image(project)
    code, output = invoke([*args, "--skip-bad"])
    assert code == 0 and "(1 skipped)" in output, output
    code, output = invoke(["gap"])
    assert code == 0 and output.startswith("run earlier (gap_report") and "headline" in output, output


# ------------------------------------------------------------------------------------------ processes
def _dvc_repo(root: Path) -> Path:
    """`root` as its own git + DVC repository (the project's .dvcignore included)."""
    from tests.conftest import run

    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    run(["git", "init", "-q"], root)
    # what `dvc init` writes, without two more dvc start-ups (seconds each on a busy machine)
    (root / ".dvc").mkdir()
    (root / ".dvc" / "config").write_text("[core]\n    analytics = false\n")
    (root / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    return root


def _bare_env() -> dict[str, str]:
    """The environment of a shell without the venv: system PATH only, no SIM2REAL_ROOT."""
    env = {k: v for k, v in os.environ.items() if k not in ("SIM2REAL_ROOT", "VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/bin:/bin"
    return env


@pytest.mark.e2e  # launches dvc
def test_stage_commands_do_not_depend_on_path(tmp_path: Path) -> None:
    """Issue 12.6: `.venv/bin/dvc repro` without the venv on PATH ran `sim2real: command not found`."""
    from sim2real import dvcyaml

    root = _dvc_repo(tmp_path / "repo")
    shutil.copytree(REPO / "bin", root / "bin")
    cmd = yaml.safe_load(dvcyaml.render())["stages"]["real_target"]["cmd"].replace("run real_target", "stages")
    (root / "dvc.yaml").write_text(f"stages:\n  list:\n    cmd: {cmd} > stages.txt\n    outs: [stages.txt]\n")
    proc = subprocess.run([str(BIN / "dvc"), "repro"], cwd=root, env=_bare_env(), text=True, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "real_target" in (root / "stages.txt").read_text()


def _points_to(fd: Path, target: Path) -> bool:
    try:
        return os.readlink(fd) == str(target)
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has stopped writing


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.e2e  # launches dvc
def test_dvc_lock_collision_is_retried_then_named(tmp_path: Path) -> None:
    """Issue 12.3: DVC's '... is busy, it is being blocked by: (PID n)' is retried; when the wait runs
    out the error is one line naming the other process; with enough patience the second run lands."""
    import threading

    from orchestration.dvc import DvcError, run_dvc

    root = _dvc_repo(tmp_path / "repo")
    # the first run holds its stage's lock until the test creates `release` (no timing guesses)
    (root / "dvc.yaml").write_text("stages:\n  slow:\n    cmd: while [ ! -f release ]; do sleep 0.05; done; "
                                   "echo done > out.txt\n    outs: [out.txt]\n")
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    first = subprocess.Popen([str(BIN / "dvc"), "repro", "-f", "slow"], cwd=root, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rwlock = root / ".dvc" / "tmp" / "rwlock"
        _wait(lambda: rwlock.exists() and "slow" in rwlock.read_text(), 30, "the first dvc to take its lock")
        logged: list[str] = []
        with pytest.raises(DvcError) as info:
            run_dvc(["repro", "-f", "slow"], root, log=logged.append, retries=1, backoff_s=0.1)
        msg = str(info.value)
        assert "\n" not in msg and f"PID {first.pid}" in msg and "repro -f slow" in msg, msg
        assert any("retrying in" in line for line in logged)
        # retried while busy: the second run lands as soon as the first is done
        threading.Timer(0.5, (root / "release").touch).start()
        out = run_dvc(["repro", "-f", "slow"], root, log=logged.append, retries=6, backoff_s=0.5)
        assert "Running stage 'slow'" in out and first.wait(30) == 0
    finally:
        first.kill()
        first.wait()


@pytest.mark.e2e  # launches dvc
def test_partial_work_folders_never_touch_dvc_status(tmp_path: Path) -> None:
    """Issue 12.2: a leftover `.<item>.partial` (and its lock) inside a folder another stage depends on."""
    from tests.conftest import run

    root = _dvc_repo(tmp_path / "repo")
    (root / "dvc.yaml").write_text(
        "stages:\n"
        "  a:\n    cmd: mkdir -p data/a/x && echo 1 > data/a/x/f\n    outs: [data/a/x]\n"
        "  b:\n    cmd: ls data/a > b.txt\n    deps: [data/a]\n    outs: [b.txt]\n")
    run([str(BIN / "dvc"), "repro", "-q"], root)
    (root / "data" / "a" / ".y.partial").mkdir()
    (root / "data" / "a" / ".y.partial" / "last.pt").write_bytes(b"half a checkpoint")
    (root / "data" / "a" / ".y.partial.lock").write_text("123\n")
    (root / "data" / "a" / ".x.tmp-99").mkdir()
    status = run([str(BIN / "dvc"), "status"], root).stdout
    assert "up to date" in status, status


@pytest.mark.e2e  # launches dvc
def test_killed_dvc_takes_its_stage_along_and_a_second_writer_is_refused(base: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12.2: SIGKILL of `dvc repro` alone stops the training child; while it ran, a second writer
    of the same work folder was refused naming the folder and the PID; the lock is free afterwards."""
    import fcntl

    from tests.conftest import run

    root = tmp_path / "proj"
    shutil.copytree(base, root, symlinks=True)
    run(["git", "init", "-q"], root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["finetune"]["real_only_steps"] = 100000  # trains until killed
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    lock = root / "data" / ".real_only_model.partial.lock"
    # the venv is NOT on PATH (issue 12.6): the stage command finds its Python through bin/sim2real
    dvc = subprocess.Popen([str(BIN / "dvc"), "repro", "-s", "real_only_model"], cwd=root, env=_bare_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: lock.exists() and lock.read_text().strip().isdigit(), 90, "the stage to lock its work folder")
        stage_pid = int(lock.read_text())
        assert stage_pid != dvc.pid and _alive(stage_pid)
        monkeypatch.setenv("SIM2REAL_ROOT", str(root))
        code, output = invoke(["run", "real_only_model"])
        assert code == 2, output
        assert f"{root / 'data' / '.real_only_model.partial'}: work folder in use by another process (PID " \
               f"{stage_pid})" in output, output
        dvc.kill()  # the dvc process alone, as a CI timeout does
        dvc.wait()
        _wait(lambda: not _alive(stage_pid), 10, f"the orphaned stage {stage_pid} to stop")
    finally:
        if dvc.poll() is None:
            dvc.kill()
            dvc.wait()

    def lock_free() -> bool:
        with open(lock) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

    try:  # the kernel drops the lock with the holder's last file descriptor: the next run may resume
        _wait(lock_free, 10, "the work-folder lock to be released")
    except AssertionError:
        holders = [f"{d.parts[2]}: {Path(d.parents[1], 'cmdline').read_bytes()[:200]!r}"
                   for d in Path("/proc").glob("[0-9]*/fd/*") if _points_to(d, lock)]
        raise AssertionError(f"{lock} still locked by {holders}") from None
    assert not (root / "data" / "real_only_model").exists()
