"""Progress for long steps: a tqdm bar on a terminal, throttled log lines elsewhere (Dagster, CI)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("sim2real")


class Progress:
    """`for x in Progress(items, total, "training")`: bar on a tty, else a line every `every_s`."""

    def __init__(self, iterable: Iterable[T] | None = None, total: int | None = None, desc: str = "",
                 every_s: float = 10.0, unit: str = "it"):
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc, self.every_s, self.unit = desc, every_s, unit
        self.n = 0
        self.postfix: dict[str, str] = {}
        self._bar = None
        self._t0 = self._last = time.monotonic()
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, dynamic_ncols=True)

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def set(self, **values: float | str) -> None:
        self.postfix = {k: (f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s or (self.total is not None and self.n >= self.total):
            self._last = now
            rate = self.n / max(now - self._t0, 1e-9)
            total = f"/{self.total}" if self.total else ""
            extra = " ".join(f"{k}={v}" for k, v in self.postfix.items())
            log.info("%s: %d%s %s (%.1f %s/s) %s", self.desc, self.n, total, self.unit, rate, self.unit, extra)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
