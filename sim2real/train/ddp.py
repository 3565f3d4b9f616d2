"""Distributed data-parallel training from the same entry point as `sim2real run`.

Under `torchrun` every process joins one process group (gloo on CPU, NCCL on CUDA, one GPU per local
rank); the training loop wraps the model in DDP, splits each global batch across ranks (same samples as
one process), reduces the loss, and only rank 0 validates, checkpoints and writes the stage's outs.
Without torchrun it is a plain single-process run.

Usage:
    torchrun --standalone --nproc_per_node=2 -m sim2real.train.ddp pretrained_model --item reinhard
    torchrun --nnodes=2 --node_rank=0 --rdzv_endpoint=HOST:29500 --nproc_per_node=8 \\
        -m sim2real.train.ddp finetuned_model -S finetune.steps=2000
    python -m sim2real.train.ddp real_only_model           # one process, same code path
"""

from __future__ import annotations

import argparse
import logging
import os
from datetime import timedelta

import torch

from sim2real.config import load_config
from sim2real.context import StageContext, repo_root
from sim2real.runner import run_stage, setup_threads
from sim2real.stages import get_stage
from sim2real.threads import PARALLEL_ENV, THREADS_ENV

TRAIN_STAGES = ("pretrained_model", "finetuned_model", "real_only_model")


def init_distributed(device_choice: str = "auto") -> tuple[int, int, str]:
    """Join the torchrun process group if there is one. Returns (rank, world size, backend or "")."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or torch.distributed.is_initialized():
        return int(os.environ.get("RANK", "0")), world, ""
    use_cuda = device_choice != "cpu" and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return torch.distributed.get_rank(), torch.distributed.get_world_size(), backend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sim2real.train.ddp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=TRAIN_STAGES)
    parser.add_argument("--item", default=None, help="matrix item (pretrained_model: the style method)")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], help="KEY=VALUE")
    args = parser.parse_args(argv)

    root = repo_root()
    cfg = load_config(root / "params.yaml", overrides=args.overrides)
    rank, world, backend = init_distributed(cfg.project.device)
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s rank{rank} %(levelname)s %(message)s", datefmt="%H:%M:%S")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if cfg.project.num_threads == 0 and THREADS_ENV not in os.environ:
        # ranks on one machine share its cores; oversubscription collapses CPU throughput
        os.environ[PARALLEL_ENV] = str(int(os.environ.get(PARALLEL_ENV) or 1) * local_world)
    if backend:
        logging.getLogger("sim2real").info("DDP: %d ranks, backend %s", world, backend)
    try:
        if rank == 0:
            run_stage(args.stage, item=args.item, root=root, cfg=cfg)  # writes summary + metrics
        else:
            setup_threads(cfg)
            get_stage(args.stage).resolve()(cfg, StageContext(root=root, stage=args.stage, item=args.item))
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
