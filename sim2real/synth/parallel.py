"""Render batches of scenes in worker processes, handed back in order.

Scene i depends only on (seed, i, domain, cfg) (`generate.generate_scenes`), so a batch rendered in
another process holds the same bytes as one rendered here: the output of `SceneBatches` does not depend
on the number of workers. The renderer is a chain of many small tensor operations: on two cores a
second torch thread made it 1.36x faster, a second process 1.84x (BENCHMARKS.md), so on a CPU the cores
pay off as processes, one thread each (the cores this stage may use: `torch.get_num_threads()`, sized
by `sim2real.threads.thread_budget`).

Workers start with `spawn` (safe inside Dagster and next to torch's own threads), which costs a few
seconds, so fewer than two batches, or a CUDA device, stay in this process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
import torch

from sim2real.config.synthetic import SyntheticConfig
from sim2real.synth.generate import generate_scenes

__all__ = ["SceneBatches"]

Batch = tuple[np.ndarray, np.ndarray, list[dict]]


def _init_worker() -> None:
    os.environ["SIM2REAL_THREADS"] = "1"
    torch.set_num_threads(1)


class SceneBatches:
    """`with SceneBatches(cfg, h, w, device, workers) as r: for images, masks, records in r.batches(n, seed, k)`.

    Args:
        cfg: the `synthetic:` section.
        height, width: image size.
        device: torch device; anything but the CPU renders in this process.
        workers: processes to render in (1 = this process). At most two batches per worker are in
            flight, so memory stays bounded whatever the number of scenes.
    """

    def __init__(self, cfg: SyntheticConfig, height: int, width: int, device: str = "cpu", workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.cfg, self.height, self.width, self.device = cfg, height, width, str(device)
        self.workers = workers if self.device == "cpu" else 1
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> SceneBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _args(self, n: int, seed: int, start: int, domain: str) -> tuple:
        """`generate_scenes`'s arguments for scenes start..start+n-1 (here or in a worker)."""
        return self.cfg, n, seed, self.height, self.width, start, domain, self.device

    def batches(self, n: int, seed: int, batch_size: int, domain: str = "synthetic") -> Iterator[Batch]:
        """Scenes 0..n-1 of dataset `seed`, `batch_size` at a time, in order."""
        starts = list(range(0, n, batch_size))
        if self.workers == 1 or len(starts) < 2:
            for s in starts:
                yield generate_scenes(*self._args(min(batch_size, n - s), seed, s, domain))
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker)
        pending: deque[Future] = deque()
        todo = iter(starts)

        def submit() -> None:
            s = next(todo, None)
            if s is not None:
                pending.append(self._pool.submit(generate_scenes, *self._args(min(batch_size, n - s), seed, s,
                                                                              domain)))

        for _ in range(2 * self.workers):
            submit()
        try:
            while pending:
                batch = pending.popleft().result()
                submit()
                yield batch
        finally:
            for f in pending:
                f.cancel()
