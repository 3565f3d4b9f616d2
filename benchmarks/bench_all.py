"""Every speed ratio of the project, measured side by side in one run (`make bench`).

One process, one machine state, one resolution (the camvid profile's, 128x160 unless told), so the
figures can be compared with each other. Each figure is printed as one line `name: value`, which is
also the form BENCHMARKS.md keeps them in (a script reads them with `^([^:]+): ([0-9.]+)`):

- generation, and generation + augmentation, against training consumption (`bench_synth_augment.py`,
  the generator's own benchmark, run as a subprocess and read back from its --json);
- kornia against albumentations (the same run);
- channels_last against contiguous tensors on this device, training and evaluation;
- our training loop against a bare smp loop (same memory format, data, steps);
- training with against without online augmentation: the path picked for this device
  (`sim2real.augment.online_augmentation`) and kornia;
- Dagster materialization against calling the stage directly, per step (synthetic_scenes,
  augmented_scenes), on a throw-away DVC project;
- a no-op `dvc repro` and a no-op Dagster chain on that project;
- DuckDB rows written per second (the report store's `class_iou` table);
- two stage processes in parallel against the same two in sequence (the thread budget at work:
  each process sizes its threads from `SIM2REAL_PARALLEL` and the idle cores).

The training comparisons alternate their arms round by round and keep each arm's best round, so
load from other processes hits both arms alike. `--quick` (CI) shrinks every size and only shows
that every figure is produced; targets are printed, never asserted.

    SIM2REAL_THREADS=1 taskset -c 1 python benchmarks/bench_all.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_train_loop import make_data  # noqa: E402

from sim2real.taxonomy import VOID  # noqa: E402

COPY_IGNORE = shutil.ignore_patterns(".venv", "data", ".git", "cache", "tmp", "__pycache__", ".pytest_cache",
                                     ".ruff_cache", "*.egg-info", "dvclive", "dvc.lock", ".dagster_home", "docs",
                                     "benchmarks", "tests", "shared")

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # Dagster's per-event console lines

# every figure `make bench` prints, in order (the --quick test checks each one is there)
FIGURES = [
    "generation vs training",
    "generation+augmentation vs training",
    "generation+augmentation (albumentations) vs training",
    "kornia vs albumentations",
    "channels_last vs contiguous, training",
    "channels_last vs contiguous, evaluation",
    "our loop vs bare smp loop",
    "training with vs without online augmentation",
    "training with vs without online augmentation, kornia",
    "dagster vs direct, synthetic_scenes",
    "dagster vs direct, augmented_scenes",
    "no-op dvc repro",
    "no-op dagster chain",
    "duckdb rows per second",
    "two stages parallel vs sequential",
]


class Figures:
    """The figures of this run, printed as they come."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.notes: dict[str, str] = {}

    def add(self, name: str, value: float, unit: str = "x", note: str = "") -> None:
        self.values[name] = float(value)
        self.notes[name] = note
        fmt = f"{value:.2f}{unit}" if unit == "x" else f"{value:.2f} {unit}" if unit else f"{value:.0f}"
        print(f"{name}: {fmt}" + (f"  ({note})" if note else ""), flush=True)


def camvid_size() -> tuple[int, int]:
    import yaml

    p = yaml.safe_load((REPO / "profiles" / "camvid.yaml").read_text())["project"]
    return int(p["image_height"]), int(p["image_width"])


def env_for(threads: int | None, parallel: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SIM2REAL_THREADS", None)
    env.pop("SIM2REAL_PARALLEL", None)
    env.pop("SIM2REAL_ROOT", None)
    if threads:
        env["SIM2REAL_THREADS"] = str(threads)
    if parallel:
        env["SIM2REAL_PARALLEL"] = str(parallel)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


# ------------------------------------------------------------------ generation and augmentation
def synth_section(fig: Figures, h: int, w: int, threads: int, quick: bool) -> None:
    """bench_synth_augment.py (the generator's benchmark) at this size; its figures read back as ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "synth.json"
        sizes = ["--scenes", "4", "--aug-batch", "4", "--train-steps", "1"] if quick else \
            ["--scenes", "32", "--aug-batch", "16", "--train-steps", "4"]
        cmd = [sys.executable, str(HERE / "bench_synth_augment.py"), "--height", str(h), "--width", str(w),
               "--threads", str(threads), "--cores", "1", "--json", str(out), *sizes]  # whole machine: run it alone
        proc = subprocess.run(cmd, env=env_for(threads), text=True, capture_output=True, cwd=REPO)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        r = json.loads(out.read_text())
    train = r["training_images_per_s"]
    fig.add("generation vs training", r["generator_scenes_per_s"] / train,
            note=f"{r['generator_scenes_per_s']:.1f} scenes/s vs {train:.1f} img/s; target >= 10x")
    fig.add("generation+augmentation vs training", r["generate_augment_images_per_s"] / train,
            note=f"generate then kornia augment, serial: {r['generate_augment_images_per_s']:.1f} img/s")
    alb_combined = 1.0 / (1.0 / r["generator_scenes_per_s"] + 1.0 / r["albumentations_images_per_s"])
    fig.add("generation+augmentation (albumentations) vs training", alb_combined / train,
            note=f"generate then albumentations, serial: {alb_combined:.1f} img/s (the CPU's online path)")
    fig.add("kornia vs albumentations", r["kornia_images_per_s"] / r["albumentations_images_per_s"],
            note=f"{r['kornia_images_per_s']:.1f} vs {r['albumentations_images_per_s']:.1f} img/s")


# ------------------------------------------------------------------ training loop
def alternate(arms: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Best (shortest) seconds of each arm over `rounds` rounds, arms interleaved within each round."""
    best = {k: float("inf") for k in arms}
    for r in range(rounds):
        order = list(arms) if r % 2 == 0 else list(reversed(arms))
        for k in order:
            best[k] = min(best[k], arms[k]())
    return best


def bare_loop(data, steps: int, batch: int, channels_last: bool) -> float:
    """Seconds for `steps` plain smp steps: slice, normalize, forward, cross-entropy, backward, AdamW."""
    from sim2real.config.train import ModelConfig
    from sim2real.train.models import create_model, preprocess

    torch.manual_seed(0)
    model = create_model(ModelConfig(encoder_weights=None)).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    n = len(data)
    t0 = time.perf_counter()
    for step in range(steps):
        idx = np.arange(step * batch, (step + 1) * batch) % n
        x = preprocess(data.images[idx], "cpu")
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), torch.as_tensor(data.masks[idx]).long(), ignore_index=VOID)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())
    return time.perf_counter() - t0


def eval_pass(data, batch: int, channels_last: bool) -> float:
    """Seconds for one evaluation pass (sim2real.train.metrics.evaluate) over `data`."""
    from sim2real.config.train import ModelConfig
    from sim2real.train.metrics import evaluate
    from sim2real.train.models import create_model

    torch.manual_seed(0)
    model = create_model(ModelConfig(encoder_weights=None)).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    t0 = time.perf_counter()
    evaluate(model, data.images, data.masks, "cpu", batch, channels_last=channels_last)
    return time.perf_counter() - t0


def our_loop(data, steps: int, batch: int, augment=None, device: str = "cpu", live: bool = True) -> float:
    """Seconds for the same steps through `sim2real.train.loop.train` (DVCLive, progress, checkpoint)."""
    from sim2real.config.train import ModelConfig
    from sim2real.train.loop import TrainJob, train
    from sim2real.train.models import create_model

    torch.manual_seed(0)
    cfg = ModelConfig(encoder_weights=None)
    model = create_model(cfg)
    job = TrainJob(name="bench", steps=steps, batch_size=batch, lr=1e-3, stage="bench", eval_every=10**9,
                   params={"model": cfg.model_dump(mode="json")})
    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        train(model, job, data, {}, Path(work), device=device, augment=augment, live=live, progress=False)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def train_section(fig: Figures, h: int, w: int, quick: bool) -> None:
    from sim2real.augment import Augmenter, online_augmentation
    from sim2real.config.augment import AugmentConfig

    batch, steps, rounds = (2, 2, 1) if quick else (8, 8, 3)
    data = make_data(32 if quick else 64, h, w)
    bare_loop(data, 1, batch, True)  # warm-up: allocator, kernels, imports
    imgs = steps * batch

    cl = alternate({"contiguous": lambda: bare_loop(data, steps, batch, False),
                    "channels_last": lambda: bare_loop(data, steps, batch, True)}, rounds)
    fig.add("channels_last vs contiguous, training", cl["contiguous"] / cl["channels_last"],
            note=f"{imgs / cl['channels_last']:.2f} vs {imgs / cl['contiguous']:.2f} img/s, bare smp loop, batch {batch}")
    ev = make_data(16 if quick else 64, h, w, seed=1)
    e = alternate({"contiguous": lambda: eval_pass(ev, batch, False),
                   "channels_last": lambda: eval_pass(ev, batch, True)}, rounds)
    fig.add("channels_last vs contiguous, evaluation", e["contiguous"] / e["channels_last"],
            note=f"{len(ev) / e['channels_last']:.2f} vs {len(ev) / e['contiguous']:.2f} img/s")

    from sim2real.train.loop import channels_last_for

    fmt = channels_last_for("cpu")
    picked = online_augmentation(AugmentConfig(), "cpu")
    kornia = Augmenter(AugmentConfig())
    t = alternate({"bare": lambda: bare_loop(data, steps, batch, fmt),
                   "ours": lambda: our_loop(data, steps, batch),
                   "ours+picked": lambda: our_loop(data, steps, batch, picked),
                   "ours+kornia": lambda: our_loop(data, steps, batch, kornia)}, rounds)
    fig.add("our loop vs bare smp loop", t["bare"] / t["ours"],
            note=f"{imgs / t['ours']:.2f} vs {imgs / t['bare']:.2f} img/s, channels_last={fmt}; target >= 0.95x")
    fig.add("training with vs without online augmentation", t["ours"] / t["ours+picked"],
            note=f"{type(picked).__name__} on cpu: {imgs / t['ours+picked']:.2f} vs {imgs / t['ours']:.2f} img/s; "
                 "target >= 0.9x")
    fig.add("training with vs without online augmentation, kornia", t["ours"] / t["ours+kornia"],
            note=f"kornia on cpu: {imgs / t['ours+kornia']:.2f} img/s")


# ------------------------------------------------------------------ DVC and Dagster
def set_params(params: Path, values: dict[str, object]) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    doc = yaml.load(params.read_text())
    for key, value in values.items():
        node = doc
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    with open(params, "w") as f:
        yaml.dump(doc, f)


def make_project(dest: Path, h: int, w: int, scenes: int) -> Path:
    """A copy of this project (code, params, dvc.yaml) as its own git + DVC repository, tiny profile at h x w."""
    from sim2real.profiles import apply_profile

    shutil.copytree(REPO, dest, ignore=COPY_IGNORE)
    (dest / "data").mkdir(exist_ok=True)
    apply_profile(dest / "params.yaml", "tiny")
    set_params(dest / "params.yaml", {"project.image_height": h, "project.image_width": w,
                                      "synthetic.num_train": scenes})
    env = env_for(1)
    init = [] if (dest / ".dvc").exists() else [[sys.executable, "-m", "dvc", "init", "-q"]]
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "bench@localhost"],
                ["git", "config", "user.name", "bench"], *init,
                [sys.executable, "-m", "dvc", "config", "core.analytics", "false"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return dest


def dvc(args: list[str], root: Path, threads: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env={**env_for(threads),
                          "SIM2REAL_ROOT": str(root)}, text=True, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} in {root} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def orchestration_section(fig: Figures, h: int, w: int, threads: int, quick: bool, whole_chain: bool) -> None:
    import dagster as dg

    from orchestration.assets import FORCE_TAG
    from orchestration.definitions import all_partitions_tags, build_definitions
    from orchestration.run import materialize_all
    from sim2real.config import load_config
    from sim2real.runner import run_stage

    steps = ["synthetic_scenes", "augmented_scenes"]
    old_env = {k: os.environ.get(k) for k in ("SIM2REAL_THREADS", "SIM2REAL_ROOT", "PATH")}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp) / "proj", h, w, 8 if quick else 64)
        os.environ.update({k: v for k, v in env_for(threads).items() if k in ("SIM2REAL_THREADS", "PATH")})
        os.environ["SIM2REAL_ROOT"] = str(root)
        try:
            t = time.perf_counter()
            dvc(["repro"] if whole_chain else ["repro", steps[-1]], root, threads)
            scope = "whole chain" if whole_chain else " + ".join(steps)
            print(f"# built the throw-away project ({scope}) in {time.perf_counter() - t:.1f} s", flush=True)
            cfg = load_config(root / "params.yaml")
            defs = build_definitions(root)
            everything = [*(defs.assets or []), *(defs.asset_checks or [])]
            instance = dg.DagsterInstance.ephemeral()

            def direct(stage: str) -> float:
                t0 = time.perf_counter()
                run_stage(stage, root=root, cfg=cfg)
                return time.perf_counter() - t0

            def dagster(stage: str) -> float:
                t0 = time.perf_counter()
                res = dg.materialize(everything, instance=instance, selection=[stage], run_config=QUIET,
                                     tags={**all_partitions_tags(cfg), FORCE_TAG: stage})
                if not res.success:
                    raise RuntimeError(f"Dagster materialization of {stage} failed")
                return time.perf_counter() - t0

            dagster(steps[0])  # warm-up: Dagster's first run (imports, instance tables)
            for stage in steps:
                best = alternate({"direct": lambda s=stage: direct(s), "dagster": lambda s=stage: dagster(s)},
                                 1 if quick else 2)
                fig.add(f"dagster vs direct, {stage}", best["dagster"] / best["direct"],
                        note=f"{best['dagster']:.1f} s materialized (dvc repro --single-item --force inside) "
                             f"vs {best['direct']:.1f} s run_stage in-process")

            noop = min(dvc(["repro"] if whole_chain else ["repro", steps[-1]], root, threads) for _ in range(2))
            fig.add("no-op dvc repro", noop, unit="s", note=f"{scope}, nothing to do")
            t0 = time.perf_counter()
            if whole_chain:
                ok = materialize_all(root, instance=instance).success
            else:
                ok = dg.materialize(everything, instance=instance, selection=steps, run_config=QUIET,
                                    tags=all_partitions_tags(cfg)).success
            if not ok:
                raise RuntimeError("no-op Dagster chain failed")
            fig.add("no-op dagster chain", time.perf_counter() - t0, unit="s",
                    note=f"{scope}, every asset's dvc repro finds it current")
        finally:
            for k, v in old_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


# ------------------------------------------------------------------ DuckDB
def duckdb_section(fig: Figures, quick: bool) -> None:
    from sim2real.evaluate.store import RunRows, Store
    from sim2real.taxonomy import CLASSES

    n_models = 20 if quick else 400
    rows = [{"model_id": f"m{m}", "split": split, "adaptation": "none", "class_id": c, "class_name": name,
             "iou": 0.5, "present": True, "tp": 10, "fp": 2, "fn": 3}
            for m in range(n_models) for split in ("val", "test") for c, name in enumerate(CLASSES)]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        best = float("inf")
        for i in range(2 if quick else 3):
            run = {"run_id": f"bench-{i}", "stage": "bench", "git_rev": "bench", "params_hash": "x",
                   "params_json": "{}", "target": "proxy", "image_height": 128, "image_width": 160, "note": ""}
            t0 = time.perf_counter()
            store.write_run(RunRows(run=run, tables={"class_iou": rows}))
            best = min(best, time.perf_counter() - t0)
        assert store.count("class_iou") == len(rows) * (2 if quick else 3)
    fig.add("duckdb rows per second", (len(rows) + 1) / best, unit="",
            note=f"{len(rows)} class_iou rows + 1 runs row in one write_run transaction")


# ------------------------------------------------------------------ thread budget
def parallel_section(fig: Figures, h: int, w: int, quick: bool) -> None:
    """Two `sim2real run synthetic_scenes` processes (own project folders): in sequence, each with the
    whole budget, then side by side with SIM2REAL_PARALLEL=2 handed down."""
    from sim2real.profiles import apply_profile

    scenes = 8 if quick else 96
    with tempfile.TemporaryDirectory() as tmp:
        roots = []
        for name in ("a", "b"):
            root = Path(tmp) / name
            root.mkdir()
            shutil.copy(REPO / "params.yaml", root / "params.yaml")
            apply_profile(root / "params.yaml", "tiny")
            set_params(root / "params.yaml", {"project.image_height": h, "project.image_width": w,
                                              "synthetic.num_train": scenes, "project.num_threads": 0})
            roots.append(root)

        def start(root: Path, parallel: int | None) -> subprocess.Popen:
            env = {**env_for(None, parallel), "SIM2REAL_ROOT": str(root)}
            return subprocess.Popen([sys.executable, "-m", "sim2real", "run", "synthetic_scenes"], cwd=root,
                                    env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def finish(procs: list[subprocess.Popen]) -> list[str]:
            threads = []
            for p in procs:
                out, _ = p.communicate()
                if p.returncode != 0:
                    raise RuntimeError(f"sim2real run synthetic_scenes failed:\n{out[-3000:]}")
                threads += [line.split("torch threads: ", 1)[1] for line in out.splitlines() if "torch threads: " in line]
            return threads

        t0 = time.perf_counter()
        seq_threads = finish([start(roots[0], None)]) + finish([start(roots[1], None)])
        seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        par_threads = finish([start(roots[0], 2), start(roots[1], 2)])
        par = time.perf_counter() - t0
    print(f"# sequential threads: {seq_threads}; parallel threads: {par_threads}")
    fig.add("two stages parallel vs sequential", par / seq,
            note=f"parallel {par:.1f} s, sequential {seq:.1f} s, synthetic_scenes x2 ({scenes} scenes); target <= 1.0x")


# ------------------------------------------------------------------ GPU (only when one is lent)
def gpu_section(fig: Figures, h: int, w: int, quick: bool) -> None:
    """kornia on CUDA against kornia on the CPU, and training images/s on the GPU (online augmentation
    on and off): printed only when CUDA is available (not in FIGURES: CI has no GPU)."""
    if not torch.cuda.is_available():
        print("# gpu: no CUDA device, skipped", flush=True)
        return
    from sim2real.augment import Augmenter
    from sim2real.config.augment import AugmentConfig

    n = 8 if quick else 64
    x, y = torch.rand(n, 3, h, w), torch.randint(0, 11, (n, h, w))
    aug = Augmenter(AugmentConfig())

    def kornia_on(device: str) -> float:
        xd, yd = x.to(device), y.to(device)
        aug(xd, yd, seed=0)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        aug(xd, yd, seed=1)
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    k = alternate({"cpu": lambda: kornia_on("cpu"), "cuda": lambda: kornia_on("cuda")}, 1 if quick else 3)
    fig.add("gpu: kornia cuda vs cpu", k["cpu"] / k["cuda"], note=f"batch {n} at {h}x{w}")
    data = make_data(64, h, w)
    steps, batch = (5, 8) if quick else (50, 32)

    def run(augment) -> float:
        return our_loop(data, steps, batch, augment, device="cuda", live=False)

    t = alternate({"plain": lambda: run(None), "kornia": lambda: run(aug)}, 2)  # kornia follows the tensors
    fig.add("gpu: training images per second", steps * batch / t["plain"], unit="",
            note=f"batch {batch}, {h}x{w}, no online augmentation")
    fig.add("gpu: training with vs without online augmentation", t["plain"] / t["kornia"], note="kornia on cuda")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {len(os.sched_getaffinity(0))} allowed "
            f"({sorted(os.sched_getaffinity(0))}), {platform.system()} {platform.release()}, torch {torch.__version__}")


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    h0, w0 = camvid_size()
    ap.add_argument("--height", type=int, default=h0)
    ap.add_argument("--width", type=int, default=w0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("SIM2REAL_THREADS") or 1))
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI): every figure, no meaningful timing")
    ap.add_argument("--whole-chain", action=argparse.BooleanOptionalAction, default=None,
                    help="no-op figures over the whole chain (default: yes, except --quick)")
    ap.add_argument("--only", default="", help="comma-separated sections: synth,train,orchestration,duckdb,parallel,gpu")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    h, w = (32, 48) if args.quick and (args.height, args.width) == (h0, w0) else (args.height, args.width)
    whole = (not args.quick) if args.whole_chain is None else args.whole_chain
    torch.set_num_threads(args.threads)
    print(f"# sim2real bench: {h}x{w}, {args.threads} torch thread(s), {'quick' if args.quick else 'full'}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"# machine: {machine()}", flush=True)
    fig = Figures()
    failed: list[str] = []
    only = {s for s in args.only.split(",") if s}
    t0 = time.perf_counter()
    for name, run in (("synth", lambda: synth_section(fig, h, w, args.threads, args.quick)),
                      ("train", lambda: train_section(fig, h, w, args.quick)),
                      ("orchestration", lambda: orchestration_section(fig, h, w, args.threads, args.quick, whole)),
                      ("duckdb", lambda: duckdb_section(fig, args.quick)),
                      ("parallel", lambda: parallel_section(fig, h, w, args.quick)),
                      ("gpu", lambda: gpu_section(fig, h, w, args.quick))):
        if not only or name in only:
            try:
                run()
            except Exception as err:  # the other sections still measure; the run fails at the end
                failed.append(name)
                print(f"# section {name} failed: {type(err).__name__}: {err}", flush=True)
    print(f"# done in {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"size": f"{h}x{w}", "threads": args.threads, "quick": args.quick,
                                         "figures": fig.values, "notes": fig.notes, "machine": machine()}, indent=1))
    if failed:
        raise SystemExit(f"bench: section(s) {', '.join(failed)} failed (see above)")
    return fig.values


if __name__ == "__main__":
    main()
