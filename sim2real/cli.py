"""`sim2real` command line: run stages, render dvc.yaml, the demo, reports and tools."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from sim2real.config import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="sim2real: synthetic scenes to segmentation models that work on real cameras.")


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(code)


@app.command()
def run(
    stage: Annotated[str, typer.Argument(help="stage name (see `sim2real stages`)")],
    item: Annotated[str | None, typer.Option(help="matrix item, e.g. a style method")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", "-S", help="override KEY=VALUE")] = None,
    verbose: bool = False,
) -> None:
    """Run one stage in-process (this is what each DVC stage calls)."""
    from sim2real.runner import run_stage

    _setup_logging(verbose)
    try:
        result = run_stage(stage, item=item, overrides=set_)
    except (ConfigError, KeyError, ValueError, FileNotFoundError) as err:
        _fail(str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err))
    for name, table in result.tables.items():
        typer.echo(f"\n## {name}\n{table}")


@app.command()
def stages() -> None:
    """List the registered stages in run order."""
    from sim2real.stages import STAGES, topological_order

    for name in topological_order():
        s = STAGES[name]
        up = ", ".join(s.upstream) or "-"
        typer.echo(f"{name:18s} <- {up:60s} {s.description}")


@app.command("dvc-yaml")
def dvc_yaml(check: Annotated[bool, typer.Option(help="only check that dvc.yaml is current")] = False) -> None:
    """Render dvc.yaml from the stage registry."""
    from sim2real import dvcyaml
    from sim2real.context import repo_root

    root = repo_root()
    if check:
        if not dvcyaml.is_current(root):
            _fail("dvc.yaml is stale: run `sim2real dvc-yaml`", code=1)
        typer.echo("dvc.yaml is current")
        return
    typer.echo(f"wrote {dvcyaml.write(root)}")


@app.command()
def profile(name: Annotated[str, typer.Argument(help="profile in profiles/ (e.g. camvid, tiny)")],
            params: Path = Path("params.yaml")) -> None:
    """Merge a profile's overrides into params.yaml (comments are kept)."""
    from sim2real.profiles import apply_profile

    try:
        changed = apply_profile(params, name)
    except ConfigError as err:
        _fail(str(err))
    for key, value in changed:
        typer.echo(f"{key} = {value!r}")


@app.command()
def demo(
    force: Annotated[bool, typer.Option(help="re-run every stage")] = False,
) -> None:
    """The main job: `dvc repro` the whole chain, then print the gap table."""
    from sim2real.context import repo_root

    _setup_logging()
    root = repo_root()
    if not (root / ".dvc").exists():
        _fail(f"{root} is not a DVC repository (run `git init && dvc init` first)")
    cmd = ["dvc", "repro"] + (["--force"] if force else [])
    dvc = Path(sys.executable).with_name("dvc")
    cmd[0] = str(dvc) if dvc.exists() else "dvc"
    rc = subprocess.call(cmd, cwd=root)
    if rc != 0:
        _fail(f"dvc repro failed with exit code {rc}", code=rc)
    gap(store=None, run_id=None)
    report = root / "data" / "gap_report" / "report.html"
    if report.exists():
        typer.echo(f"\nreport: {report}")


@app.command()
def gap(
    store: Annotated[Path | None, typer.Option(help="DuckDB file (default: store.path)")] = None,
    run_id: Annotated[str | None, typer.Option(help="a run id (default: the latest)")] = None,
) -> None:
    """Print the headline gap table of a run from the DuckDB store."""
    from sim2real.evaluate.cli import gap_main

    try:
        typer.echo(gap_main(store=store, run_id=run_id))
    except (ConfigError, FileNotFoundError, ValueError) as err:
        _fail(str(err))


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="model checkpoint (.pt)")],
    root: Annotated[Path, typer.Option(help="labelled folder in an importer's format")],
    split: Annotated[str | None, typer.Option(help="split name (camvid: val/test; cityscapes: val)")] = None,
    mapping: Annotated[Path | None, typer.Option(help="label mapping file for a plain folder")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="camvid | cityscapes | folder (default: guess)")] = None,
    store: Annotated[Path | None, typer.Option(help="DuckDB file (default: store.path)")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="skip unreadable/invalid files instead of "
                                                              "failing (they are counted in the run)")] = False,
) -> None:
    """Evaluate any checkpoint on any labelled folder; rows go to the store."""
    from sim2real.evaluate.cli import evaluate_main

    _setup_logging()
    try:
        typer.echo(evaluate_main(checkpoint=checkpoint, root=root, split=split, mapping=mapping,
                                 fmt=fmt, store=store, skip_bad=skip_bad))
    except (ConfigError, FileNotFoundError, ValueError) as err:
        _fail(str(err))


@app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="dataset name, e.g. camvid")],
    dest: Annotated[Path | None, typer.Option(help="target folder")] = None,
    url: Annotated[str | None, typer.Option(help="archive URL (default: the known public one)")] = None,
    sha256: Annotated[str | None, typer.Option(help="expected sha256 of the archive")] = None,
) -> None:
    """Download a public dataset archive, verify its sha256, unpack atomically."""
    from sim2real.real.fetch import FetchError, fetch_dataset

    _setup_logging()
    try:
        path = fetch_dataset(name, dest=dest, url=url, sha256=sha256)
    except FetchError as err:
        _fail(str(err))
    typer.echo(f"fetched {name} into {path}")


@app.command()
def ui(port: int = 3000, host: str = "127.0.0.1",
       stop_timeout: Annotated[float, typer.Option(help="seconds to wait before SIGKILL on stop")] = 20.0,
       watch: Annotated[bool, typer.Option(help="reload the definitions when a params or code edit changes "
                                                "a stage's code version")] = True) -> None:
    """Open the Dagster UI (`dagster dev`) with the project-local instance in .dagster_home/.

    `dagster dev` runs in its own process group with default signal handling; SIGTERM, SIGINT and
    SIGHUP sent to this command stop the whole group (SIGKILL after --stop-timeout seconds).
    With --watch (the default) a params.yaml or code edit that changes a stage's code version reloads
    the definitions, so the UI shows the edited stages stale at once (orchestration/reload.py).
    """
    import os

    from sim2real.context import repo_root
    from sim2real.procgroup import run_group

    root = repo_root()
    env = dict(os.environ, DAGSTER_HOME=str(root / ".dagster_home"), SIM2REAL_ROOT=str(root))
    (root / ".dagster_home").mkdir(exist_ok=True)
    exe = Path(sys.executable).with_name("dagster")
    cmd = [str(exe) if exe.exists() else "dagster", "dev", "-w", str(root / "workspace.yaml"),
           "-p", str(port), "-h", host]
    watcher = None
    if watch:
        from orchestration.reload import DefinitionsWatcher

        watcher = DefinitionsWatcher(root, port, host, log=lambda line: typer.echo(line, err=True))
        watcher.start()
    try:
        rc = run_group(cmd, cwd=root, env=env, stop_timeout=stop_timeout)
    finally:
        if watcher is not None:
            watcher.stop()
    raise typer.Exit(rc)


@app.command()
def materialize() -> None:
    """Materialize every asset through Dagster in-process (same outputs as `dvc repro`)."""
    from orchestration.run import materialize_all
    from sim2real.context import repo_root

    _setup_logging()
    result = materialize_all(repo_root())
    n = len(result.get_asset_materialization_events())
    typer.echo(f"materialized {n} asset partitions; success={result.success}")
    if not result.success:
        raise typer.Exit(1)


recipe_app = typer.Typer(no_args_is_help=True, help="Recipe search for the label-budget curve, as DVC experiments.")
app.add_typer(recipe_app, name="recipe")


@recipe_app.command("queue")
def recipe_queue(
    grid: Annotated[list[str], typer.Option(help="KEY=V1,V2,... (repeat for more knobs)")],
) -> None:
    """Queue one DVC experiment per combination of the grid (all validated first)."""
    from sim2real.context import repo_root
    from sim2real.recipe import RecipeError, parse_grid, queue

    try:
        for name, overrides in queue(repo_root(), parse_grid(grid)):
            typer.echo(f"queued {name}: {' '.join(overrides)}")
    except RecipeError as err:
        _fail(str(err))
    typer.echo("run them with `sim2real recipe run` (or `dvc exp run --run-all`); list with `dvc exp show`")


@recipe_app.command("run")
def recipe_run(jobs: Annotated[int, typer.Option(help="experiments at once")] = 1) -> None:
    """Run every queued experiment (`dvc exp run --run-all`)."""
    from sim2real.context import repo_root
    from sim2real.recipe import RecipeError, run_all

    try:
        typer.echo(run_all(repo_root(), jobs=jobs))
    except RecipeError as err:
        _fail(str(err))


@recipe_app.command("show")
def recipe_show() -> None:
    """Rank the recipe experiments on real val; the real-test figure of the winner only."""
    from sim2real.context import markdown_table, repo_root
    from sim2real.recipe import RANK_BY, RecipeError, ranking, results

    try:
        rows, winner = ranking(results(repo_root()))
    except RecipeError as err:
        _fail(str(err))
    if not rows:
        _fail(f"no finished recipe experiment with {RANK_BY} yet (queue with `sim2real recipe queue`)", code=1)
    typer.echo(markdown_table(rows, ".4g"))
    typer.echo(f"\nwinner on val: {winner} (apply it with `dvc exp apply {winner}`)")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
