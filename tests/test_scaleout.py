"""Scale-out is configuration (issue 17, "Also"): the multiprocess executor runs the chain without DVC lock
errors, and the cluster configuration (Celery executor, DVC remote on S3-compatible storage) in
deploy/cluster/ is loaded and validated by the same code a worker and DVC use.

dagster-celery and dvc-s3 are the optional extra `cluster`, which `make install` installs: these tests
import them and fail (not skip) without them.
"""

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.executors import EXECUTOR_ENV, ExecutorConfigError, chain_job, executor_def
from tests.conftest import BIN, REPO, make_project, run

CLUSTER = REPO / "deploy" / "cluster"
RUN_CONFIG = CLUSTER / "run_config.yaml"
DVC_REMOTE = CLUSTER / "dvc_remote.config"
DVC = str(BIN / "dvc")


def test_executor_is_chosen_by_configuration() -> None:
    assert executor_def("in_process") is dg.in_process_executor
    assert executor_def("multiprocess") is dg.multiprocess_executor
    assert executor_def("celery").name == "celery"
    with pytest.raises(ExecutorConfigError, match=f"{EXECUTOR_ENV}='k9s' is not one of"):
        executor_def("k9s")


def test_cluster_run_config_is_valid_for_the_celery_chain(tmp_path: Path, monkeypatch) -> None:
    """deploy/cluster/run_config.yaml against the Celery executor's schema, as the launcher and a worker read it."""
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster_celery.cli import get_app, get_validated_config

    from orchestration.definitions import build_definitions

    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    defs = build_definitions(make_project(tmp_path / "p", dvc=False))
    job = defs.resolve_job_def("sim2real_chain")
    assert job.executor_def.name == "celery"
    config = yaml.safe_load(RUN_CONFIG.read_text())
    dg.validate_run_config(job, config)  # raises DagsterInvalidConfigError on any bad key or type
    # what `dagster-celery worker start -y deploy/cluster/run_config.yaml` builds: the Celery app
    worker = get_validated_config(str(RUN_CONFIG))
    assert worker["broker"] == config["execution"]["config"]["broker"]
    app = get_app(str(RUN_CONFIG))
    assert app.conf.broker_url == worker["broker"] and app.conf.result_backend == "rpc://"
    assert app.conf.task_acks_late is True and app.conf.worker_prefetch_multiplier == 1
    # a typo is refused, naming the key
    broken = yaml.safe_load(RUN_CONFIG.read_text())
    broken["execution"]["config"]["brokr"] = broken["execution"]["config"].pop("broker")
    with pytest.raises(DagsterInvalidConfigError, match="brokr"):
        dg.validate_run_config(job, broken)
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump(broken))
    with pytest.raises(DagsterInvalidConfigError, match="brokr"):
        get_validated_config(str(bad_file))


def test_steps_side_by_side_share_the_cores(monkeypatch) -> None:
    """The multiprocess executor's concurrency reaches the stage processes as SIM2REAL_PARALLEL."""
    from orchestration import dvc as dvc_mod
    from orchestration.executors import concurrent_steps

    assert concurrent_steps("in_process", {"execution": {"config": {"max_concurrent": 4}}}) == 1
    assert concurrent_steps("celery", None) == 1
    assert concurrent_steps("multiprocess", {"execution": {"config": {"max_concurrent": 2}}}, steps=9) == 2
    assert concurrent_steps("multiprocess", {"execution": {"multiprocess": {"config": {"max_concurrent": 3}}}}) == 3
    assert concurrent_steps("multiprocess", {}, steps=9, cores=2) == 2  # unset = one per core (Dagster's default)
    assert concurrent_steps("multiprocess", {"execution": {"config": {"max_concurrent": 0}}}, cores=16) == 16
    assert concurrent_steps("multiprocess", {"execution": {"config": {"max_concurrent": 8}}}, steps=1) == 1

    seen = {}

    class FakeDvc:  # stands in for the dvc process: what environment would the stage get?
        def __init__(self, cmd, **kw) -> None:
            seen.update(kw["env"])
            self.stdout = iter(["Stage 'x' didn't change, skipping\n"])

        def wait(self) -> int:
            return 0

    monkeypatch.setattr(dvc_mod.subprocess, "Popen", FakeDvc)
    dvc_mod.run_dvc(["repro", "x"], Path("."), log=lambda _l: None, env={"SIM2REAL_PARALLEL": "2"})
    assert seen["SIM2REAL_PARALLEL"] == "2" and seen["SIM2REAL_ROOT"] == "."


def test_dvc_loads_the_object_storage_remote(tmp_path: Path) -> None:
    """deploy/cluster/dvc_remote.config: DVC validates it and builds the S3 filesystem (no network)."""
    from dvc.config import ConfigError
    from dvc.repo import Repo

    root = tmp_path / "repo"
    Repo.init(str(root), no_scm=True).close()
    shutil.copy(DVC_REMOTE, root / ".dvc" / "config.local")
    with Repo(str(root)) as repo:
        assert repo.config["core"]["remote"] == "cluster"
        assert repo.config["remote"]["cluster"]["url"] == "s3://sim2real-dvc/cache"
        remote = repo.cloud.get_remote()  # the default remote, through dvc-s3
        assert remote.fs.protocol in ("s3", ("s3", "s3a"))
        assert remote.path.startswith("sim2real-dvc/cache")
        assert remote.fs.fs_args["client_kwargs"]["endpoint_url"] == "https://minio.internal:9000"
    # a wrong key is refused by DVC's schema, naming it
    (root / ".dvc" / "config.local").write_text(DVC_REMOTE.read_text().replace("endpointurl", "endpoint_url"))
    with pytest.raises(ConfigError, match="endpoint_url"):
        Repo(str(root))


@pytest.mark.e2e  # a real dvc repro chain, one process per step
@pytest.mark.timeout(900)
def test_multiprocess_executor_runs_the_chain_without_lock_errors(repro_project: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    """The chain job under the multiprocess executor, two steps at a time and no pool limit, so steps meet at
    DVC's repository lock: the two roots (synthetic_scenes, real_target) are forced to re-run at once, the
    rest are checked by DVC. Every step succeeds, in its own process, and `dvc status` is clean."""
    from orchestration.assets import FORCE_TAG
    from orchestration.definitions import all_partitions_tags
    from sim2real.config import load_config

    root = tmp_path / "proj"
    shutil.copytree(repro_project, root, ignore=shutil.ignore_patterns(".dagster_home"), symlinks=True)
    monkeypatch.setenv(EXECUTOR_ENV, "multiprocess")
    monkeypatch.setenv("SIM2REAL_ROOT", str(root))
    monkeypatch.delenv("SIM2REAL_THREADS")  # the stages choose their threads: the executor's share
    tags = {**all_partitions_tags(load_config(root / "params.yaml")), FORCE_TAG: "synthetic_scenes,real_target"}
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        result = dg.execute_job(dg.reconstructable(chain_job), instance=instance, tags=tags,
                                run_config={"execution": {"config": {"max_concurrent": 2}}})
        events = result.all_events
        failed = [e.step_key for e in events if e.event_type_value == "STEP_FAILURE"]
        assert result.success and not failed, failed
        logs = " ".join(str(e.message) for e in events)
        assert "Unable to acquire lock" not in logs or "retrying" in logs  # a collision is waited out, never fatal
        starts = [e for e in events if e.event_type_value == "STEP_START"]
        pids = {e.pid for e in starts}
        assert len(pids) == len(starts) and os.getpid() not in pids  # one process per step
        assert any(e.event_type_value == "ENGINE_EVENT" and "multiprocess" in str(e.message).lower()
                   for e in events)
        mats = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert {"synthetic_scenes", "real_target", "styled_scenes", "gap_report"} <= mats, mats
        # each forced stage heard that it shares the cores with one more step (SIM2REAL_PARALLEL=2)
        budgets = [e.user_message for e in instance.all_logs(result.run_id) if "torch threads:" in e.user_message]
        assert len(budgets) >= 2 and all("/ 2 process(es) side by side" in b for b in budgets), budgets
    assert "up to date" in run([DVC, "status"], root).stdout
