"""One source of truth for each stage's code: `Stage.code_deps` feeds dvc.yaml and the Dagster code version."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest
import yaml

from sim2real import dvcyaml
from sim2real.config import load_config
from sim2real.stages import CORE_CODE, DISPLAY_ONLY_CODE, STAGES

REPO = Path(__file__).resolve().parents[1]


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split("."))
    for cand in (REPO / rel.with_suffix(".py"), REPO / rel / "__init__.py"):
        if cand.exists():
            return cand
    return None


def _imports(path: Path) -> set[str]:
    """Every `sim2real.*` module a file imports, at top level or inside functions."""
    tree = ast.parse(path.read_text())
    pkg = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import module`
    return {m for m in found if m == "sim2real" or m.startswith("sim2real.")}


def import_closure(module: str) -> set[Path]:
    todo, seen = [module], set()
    while todo:
        path = _module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        todo += sorted(_imports(path))
    return seen


def _covered(path: Path, deps: tuple[str, ...]) -> bool:
    rel = path.relative_to(REPO).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_code_deps_cover_every_imported_module(name: str) -> None:
    """A stage's code deps cover everything it runs, but package markers and progress display."""
    stage = STAGES[name]
    missing = sorted(p.relative_to(REPO).as_posix() for p in import_closure(stage.func.split(":")[0])
                     if not _covered(p, stage.code_deps + DISPLAY_ONLY_CODE) and p.name != "__init__.py")
    assert not missing, f"{name} imports code outside its code_deps: {missing}"


def test_dvc_yaml_code_deps_are_the_registry_code_deps() -> None:
    doc = yaml.safe_load(dvcyaml.render())["stages"]
    for name, stage in STAGES.items():
        code = [d for d in doc[name]["deps"] if not d.startswith("data/")]
        assert code == list(stage.code_deps), name
        for core in CORE_CODE:
            assert core in code, (name, core)


def test_dagster_code_version_hashes_the_same_files(tmp_path: Path) -> None:
    """Editing any file DVC lists as a code dep (the taxonomy, the context) changes every code version."""
    from orchestration.assets import code_version

    root = tmp_path / "proj"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".venv", "data", ".git", "__pycache__", "tests"))
    cfg = load_config(root / "params.yaml")
    before = {n: code_version(s, cfg, root) for n, s in STAGES.items()}
    for rel in ("sim2real/taxonomy.py", "sim2real/context.py"):
        with (root / rel).open("a") as f:
            f.write("\n# edited\n")
        after = {n: code_version(s, cfg, root) for n, s in STAGES.items()}
        assert all(after[n] != before[n] for n in STAGES), (rel, before, after)
        before = after
    # a file no stage depends on changes nothing
    (root / "sim2real" / "cli.py").write_text((root / "sim2real" / "cli.py").read_text() + "\n# edited\n")
    assert {n: code_version(s, cfg, root) for n, s in STAGES.items()} == before
    # and the Dagster file list is exactly the DVC deps, expanded
    for stage in STAGES.values():
        files = stage.code_files(root)
        assert files, stage.name
        assert all(any(f.relative_to(root).as_posix().startswith(d) for d in stage.code_deps) for f in files)
