"""Is data ever the bottleneck? Generator and augmentation speed vs the training throughput, side by side.

Measured in one run, on the same machine and threads, at one resolution (default 128x160, the camvid
profile's), with the arms interleaved round by round and each arm's best round kept (load from other
processes hits every arm alike):
- generator scenes/s (`generate_scenes`, default knobs);
- augmentation images/s: the project's kornia pipeline on batches, and albumentations per image with the
  same operations and probabilities (the CPU online-augmentation path);
- training images/s of the default model (DeepLabV3+ / tu-efficientnet_lite0, encoder_weights=None,
  batch 8, forward + backward + AdamW step).
Times are CPU seconds of this (single-threaded) process, so a busy core slows neither side's figure.
Then the whole machine (`--cores`, default every core this process may use; wall seconds, so the cores
must be quiet): the synthetic_scenes stage's renderer in `cores` processes of one thread
(`sim2real.synth.parallel.SceneBatches`), against training with `cores` torch threads, and against the
renderer in one process with `cores` threads. It prints each as a ratio to training, as `name: value` lines:

    generation vs training: 12.3x                     (target >= 10x)
    generation+augmentation vs training: 6.1x         (generate, then kornia; target >= 5x)
    generation (2 processes) vs training (2 threads): 9.0x

Usage (core 0 of the dev machine is reserved, hence the pinning):

    SIM2REAL_THREADS=1 taskset -c 1 python benchmarks/bench_synth_augment.py            # 128x160
    SIM2REAL_THREADS=1 taskset -c 1 python benchmarks/bench_synth_augment.py --profile  # + cProfile of the generator
    python benchmarks/bench_synth_augment.py --quick                                    # tiny sizes (the test)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from sim2real.augment import albumentations_pipeline, build_augmentation
from sim2real.config.augment import AugmentConfig
from sim2real.config.synthetic import SyntheticConfig
from sim2real.synth import generate_scenes
from sim2real.synth.parallel import SceneBatches
from sim2real.taxonomy import VOID

TARGET_GENERATION = 10.0  # generation alone >= 10x training (issue 15)
TARGET_GEN_AUGMENT = 5.0  # generation + kornia augmentation >= 5x training


def alternate(arms: dict[str, Callable[[], None]], rounds: int,
              clock: Callable[[], float] = time.process_time) -> dict[str, float]:
    """Best seconds (`clock`: CPU of this process by default) of each arm over `rounds` rounds (after one
    warm-up call each), arms interleaved."""
    for fn in arms.values():
        fn()  # warm-up: allocations, lazy init, kernel selection, worker start-up
    best = {k: float("inf") for k in arms}
    for _ in range(rounds):
        for name, fn in arms.items():
            t0 = clock()
            fn()
            best[name] = min(best[name], clock() - t0)
    return best


def whole_machine(cfg: SyntheticConfig, cores: int, scenes: int, h: int, w: int, train_steps: Callable[[], None],
                  train_images: int, rounds: int) -> dict[str, float]:
    """Wall-clock figures with every core busy, the way the stages run: the synthetic_scenes stage renders
    in `cores` processes of one thread (`SceneBatches`), training runs `cores` torch threads. Also the
    renderer in one process with `cores` threads, the alternative the processes replace. Needs quiet cores."""
    n = scenes * cores * 2  # two batches per worker per call
    counter = iter(range(10 ** 9))
    threads = torch.get_num_threads()
    with SceneBatches(cfg, h, w, "cpu", workers=cores) as pool:

        def procs() -> None:
            for _ in pool.batches(n, seed=500 + next(counter), batch_size=scenes):
                pass

        def in_threads() -> None:
            torch.set_num_threads(cores)
            generate_scenes(cfg, n, seed=500 + next(counter), height=h, width=w)

        def train() -> None:
            torch.set_num_threads(cores)
            train_steps()

        best = alternate({"procs": procs, "threads": in_threads, "training": train}, rounds, time.perf_counter)
    torch.set_num_threads(threads)
    gen, gen_threads, train_ips = n / best["procs"], n / best["threads"], train_images / best["training"]
    return {"machine_cores": cores, "machine_generator_scenes_per_s": gen,
            "machine_generator_threads_scenes_per_s": gen_threads, "machine_training_images_per_s": train_ips,
            "machine_generation_vs_training": gen / train_ips}


def profile_generator(cfg: SyntheticConfig, n: int, h: int, w: int, dev: str, top: int = 20) -> str:
    """cProfile of one `generate_scenes` call, the `top` functions by own time."""
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    generate_scenes(cfg, n, seed=3, height=h, width=w, device=dev)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("SIM2REAL_THREADS", "1")))
    ap.add_argument("--scenes", type=int, default=64, help="scenes per timed generator call")
    ap.add_argument("--aug-batch", type=int, default=64, help="images per timed augmentation call")
    ap.add_argument("--train-steps", type=int, default=2, help="training steps per timed round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)),
                    help="whole-machine figures: render processes and training threads (1 = skip them)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: shows every figure is produced (CI)")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of the generator")
    ap.add_argument("--json", default=None, help="also write the figures (images/s, ratios) to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.height, args.width, args.scenes, args.aug_batch, args.train_steps, args.rounds = 32, 48, 4, 4, 1, 1
    torch.set_num_threads(args.threads)
    h, w, dev = args.height, args.width, args.device
    cfg = SyntheticConfig()
    print(f"# {h}x{w}, {args.threads} thread(s), device {dev}, torch {torch.__version__}; "
          f"CPU seconds, best of {args.rounds} interleaved rounds", flush=True)

    images, masks, _ = generate_scenes(cfg, args.aug_batch, seed=2, height=h, width=w, device=dev)
    aug = build_augmentation(AugmentConfig())
    x = torch.as_tensor(images, device=dev).permute(0, 3, 1, 2).float() / 255.0
    y = torch.as_tensor(masks, device=dev).long()
    alb = albumentations_pipeline(AugmentConfig(), h, w)

    from sim2real.config.train import ModelConfig
    from sim2real.train.models import create_model, normalize

    model = create_model(ModelConfig(encoder_weights=None)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    xb = normalize(x[:8].repeat(1 + 8 // len(x), 1, 1, 1)[:8]).contiguous()
    yb = y[:8].repeat(1 + 8 // len(y), 1, 1)[:8]

    def train_steps() -> None:
        for _ in range(args.train_steps):
            loss = F.cross_entropy(model(xb), yb, ignore_index=VOID)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def run_alb() -> None:
        for i in range(len(images)):
            alb(image=images[i], mask=masks[i])

    counter = iter(range(10 ** 9))
    arms = {
        # a fresh seed each call: no cache can help
        "generator": lambda: generate_scenes(cfg, args.scenes, seed=100 + next(counter), height=h, width=w,
                                             device=dev),
        "kornia": lambda: aug(x, y, seed=0),
        "albumentations": run_alb,
        "training": train_steps,
    }
    best = alternate(arms, args.rounds)
    gen = args.scenes / best["generator"]
    kornia_ips = len(images) / best["kornia"]
    alb_ips = len(images) / best["albumentations"]
    train_ips = 8 * args.train_steps / best["training"]
    combined = 1.0 / (1.0 / gen + 1.0 / kornia_ips)  # generate, then augment: one core does both in turn
    combined_alb = 1.0 / (1.0 / gen + 1.0 / alb_ips)
    rows = [("generator (scenes/s)", gen), (f"augmentation kornia, batch {len(images)} (img/s)", kornia_ips),
            ("augmentation albumentations, per image (img/s)", alb_ips),
            ("generate + kornia augment, serial (img/s)", combined),
            ("generate + albumentations augment, serial (img/s)", combined_alb),
            ("training DeepLabV3+/effnet-lite0, batch 8 (img/s)", train_ips)]
    print("| what | images/s | x training |\n|---|---|---|")
    for name, v in rows:
        print(f"| {name} | {v:.2f} | {v / train_ips:.1f}x |")
    print(f"generation vs training: {gen / train_ips:.1f}x  (target >= {TARGET_GENERATION:g}x)")
    print(f"generation+augmentation vs training: {combined / train_ips:.1f}x  "
          f"(kornia; target >= {TARGET_GEN_AUGMENT:g}x)")
    print(f"generation+albumentations vs training: {combined_alb / train_ips:.1f}x")
    print(f"kornia vs albumentations: {kornia_ips / alb_ips:.2f}x")
    machine = {}
    if args.cores > 1 and dev == "cpu":
        machine = whole_machine(cfg, args.cores, args.scenes, h, w, train_steps, 8 * args.train_steps, args.rounds)
        c = args.cores
        print(f"# whole machine, wall seconds, {c} cores: the stage renders in {c} processes, training runs {c} "
              f"threads\n| what | images/s |\n|---|---|\n"
              f"| generator, {c} processes x 1 thread (scenes/s) | {machine['machine_generator_scenes_per_s']:.2f} |\n"
              f"| generator, 1 process x {c} threads (scenes/s) | "
              f"{machine['machine_generator_threads_scenes_per_s']:.2f} |\n"
              f"| training, {c} threads (img/s) | {machine['machine_training_images_per_s']:.2f} |")
        print(f"generation ({c} processes) vs training ({c} threads): "
              f"{machine['machine_generation_vs_training']:.1f}x  (target >= {TARGET_GENERATION:g}x)")
        print(f"generator: {c} processes vs {c} threads: "
              f"{machine['machine_generator_scenes_per_s'] / machine['machine_generator_threads_scenes_per_s']:.2f}x")
    if args.profile:
        print(profile_generator(cfg, args.scenes, h, w, dev))
    figures = {**machine, "size": f"{h}x{w}", "threads": args.threads, "device": dev, "generator_scenes_per_s": gen,
               "kornia_images_per_s": kornia_ips, "albumentations_images_per_s": alb_ips,
               "generate_augment_images_per_s": combined, "generate_albumentations_images_per_s": combined_alb,
               "training_images_per_s": train_ips, "generation_vs_training": gen / train_ips,
               "generation_augmentation_vs_training": combined / train_ips}
    if args.json:  # read by benchmarks/bench_all.py (`make bench`)
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return figures


if __name__ == "__main__":
    main()
