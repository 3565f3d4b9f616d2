"""Sharded image+mask datasets: few files (DVC-friendly), memory-mapped, streamed.

A dataset folder holds `index.json`, `images-00000.npy` (N, H, W, 3 uint8),
`masks-00000.npy` (N, H, W uint8, ids 0..11) and `samples.jsonl` (one JSON record per sample:
its seed, sampled parameters, source file, ...). `.npy` files are byte-deterministic.

Example:
    >>> with ShardWriter(tmp / "scenes", shard_size=256) as w:
    ...     w.add(images, masks, records)
    >>> ds = ShardDataset(tmp / "scenes"); image, mask = ds[0]
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.taxonomy import VOID

FORMAT = "sim2real-shards/1"


class ShardFormatError(ValueError):
    """A dataset folder that is missing, incomplete or inconsistent."""


def replace_dir(tmp: Path, final: Path) -> None:
    """Atomically move a finished folder `tmp` to `final` (old contents survive until the swap)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_sibling(final: Path) -> Path:
    """A fresh temp folder next to `final`; litter from killed writers (dead pids) is removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """A fresh temp folder next to `final` that replaces `final` atomically when the block ends.

    On any error (Ctrl-C included) the temp folder is removed and `final` keeps its old contents.

    Example:
        >>> with staged_dir(ctx.stage_dir()) as tmp:
        ...     (tmp / "report.html").write_text(html)
    """
    tmp = temp_sibling(final)
    try:
        yield tmp
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class ShardWriter:
    """Write samples to a temp folder; on clean exit it replaces `out_dir` atomically."""

    def __init__(self, out_dir: str | Path, shard_size: int = 256, extra: dict | None = None):
        self.out_dir = Path(out_dir)
        self.shard_size = shard_size
        self.extra = extra or {}
        self._images: list[np.ndarray] = []
        self._masks: list[np.ndarray] = []
        self._records: list[dict] = []
        self._shards: list[dict] = []
        self._count = 0
        self._hw: tuple[int, int] | None = None
        self.tmp: Path | None = None

    def __enter__(self) -> ShardWriter:
        self.tmp = temp_sibling(self.out_dir)
        self._records_f = open(self.tmp / "samples.jsonl", "w")
        return self

    def add(self, images: np.ndarray, masks: np.ndarray, records: Sequence[dict] | None = None) -> None:
        images = np.asarray(images)
        masks = np.asarray(masks)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ShardFormatError(f"images must be (N,H,W,3) uint8, got {images.shape} {images.dtype}")
        if masks.shape != images.shape[:3] or masks.dtype != np.uint8:
            raise ShardFormatError(f"masks must be (N,H,W) uint8 matching images, got {masks.shape}")
        if masks.size and masks.max() > VOID:
            raise ShardFormatError(f"mask ids must be 0..{VOID}, found {int(masks.max())}")
        hw = images.shape[1:3]
        if self._hw is None:
            self._hw = hw
        elif hw != self._hw:
            raise ShardFormatError(f"all samples need one size {self._hw}, got {hw}")
        records = list(records) if records is not None else [{} for _ in range(len(images))]
        if len(records) != len(images):
            raise ShardFormatError("one record per sample")
        for i in range(len(images)):
            self._images.append(images[i])
            self._masks.append(masks[i])
            rec = dict(records[i])
            rec.setdefault("index", self._count)
            self._records_f.write(json.dumps(rec, sort_keys=True) + "\n")
            self._count += 1
            if len(self._images) >= self.shard_size:
                self._flush()

    def _flush(self) -> None:
        if not self._images:
            return
        k = len(self._shards)
        names = {"images": f"images-{k:05d}.npy", "masks": f"masks-{k:05d}.npy"}
        assert self.tmp is not None
        np.save(self.tmp / names["images"], np.stack(self._images))
        np.save(self.tmp / names["masks"], np.stack(self._masks))
        self._shards.append({**names, "count": len(self._images)})
        self._images, self._masks = [], []

    def __exit__(self, exc_type, exc, tb) -> None:
        self._records_f.close()
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        self._flush()
        h, w = self._hw or (0, 0)
        index = {"format": FORMAT, "count": self._count, "height": h, "width": w,
                 "shards": self._shards, **self.extra}
        (self.tmp / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True))
        replace_dir(self.tmp, self.out_dir)


def write_dataset(out_dir: str | Path, images: np.ndarray, masks: np.ndarray,
                  records: Sequence[dict] | None = None, shard_size: int = 256,
                  extra: dict | None = None) -> Path:
    with ShardWriter(out_dir, shard_size=shard_size, extra=extra) as w:
        w.add(images, masks, records)
    return Path(out_dir)


class ShardDataset:
    """Random access and streaming over a shard folder (memory-mapped)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index_path = self.root / "index.json"
        if not index_path.exists():
            raise ShardFormatError(f"{self.root}: not a dataset folder (no index.json); run its stage first")
        try:
            self.index: dict[str, Any] = json.loads(index_path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise ShardFormatError(f"{index_path}: broken index (not valid JSON: {err}); re-run its stage") from None
        if not isinstance(self.index, dict) or self.index.get("format") != FORMAT:
            found = self.index.get("format") if isinstance(self.index, dict) else type(self.index).__name__
            raise ShardFormatError(f"{index_path}: unknown format {found!r}")
        try:
            shards = [(s["images"], s["masks"], int(s["count"])) for s in self.index["shards"]]
            int(self.index["count"]), int(self.index["height"]), int(self.index["width"])
        except (KeyError, TypeError, ValueError) as err:
            raise ShardFormatError(f"{index_path}: broken index (missing or bad entry {err}); re-run its stage") from None
        self._images = [self._open(name, count) for name, _, count in shards]
        self._masks = [self._open(name, count) for _, name, count in shards]
        self._offsets = np.cumsum([0] + [count for _, _, count in shards])
        self._records: list[dict] | None = None

    def _open(self, name: str, count: int) -> np.ndarray:
        """Memory-map one shard file; a truncated or foreign file is an error naming it."""
        path = self.root / name
        try:
            arr = np.load(path, mmap_mode="r")
        except FileNotFoundError:
            raise ShardFormatError(f"{path}: shard file missing (listed in {self.root / 'index.json'})") from None
        except (ValueError, OSError, EOFError) as err:
            raise ShardFormatError(f"{path}: unreadable or truncated shard file ({err})") from None
        if len(arr) != count:
            raise ShardFormatError(f"{path}: holds {len(arr)} samples, index.json says {count}")
        return arr

    def __len__(self) -> int:
        return int(self.index["count"])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.index["height"]), int(self.index["width"])

    def _locate(self, i: int) -> tuple[int, int]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return k, i - int(self._offsets[k])

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        k, j = self._locate(int(i))
        return np.asarray(self._images[k][j]), np.asarray(self._masks[k][j])

    def take(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self[i] for i in indices]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All images and masks in memory (small datasets)."""
        if not self._images:
            return np.zeros((0, 0, 0, 3), np.uint8), np.zeros((0, 0, 0), np.uint8)
        return np.concatenate([np.asarray(a) for a in self._images]), np.concatenate(
            [np.asarray(m) for m in self._masks])

    def records(self) -> list[dict]:
        if self._records is None:
            with open(self.root / "samples.jsonl") as f:
                self._records = [json.loads(line) for line in f if line.strip()]
        return self._records

    def iter_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(self), batch_size):
            yield self.take(range(start, min(start + batch_size, len(self))))
