"""Shard datasets: round trip, byte-determinism, atomic replace, interrupted writes."""

from pathlib import Path

import numpy as np
import pytest

from sim2real.shards import ShardDataset, ShardFormatError, ShardWriter, write_dataset


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 8, 12, 3), dtype=np.uint8),
            rng.integers(0, 12, (n, 8, 12), dtype=np.uint8))


def test_round_trip_across_shards(tmp_path: Path) -> None:
    images, masks = _data(7)
    write_dataset(tmp_path / "d", images, masks, [{"i": i} for i in range(7)], shard_size=3)
    ds = ShardDataset(tmp_path / "d")
    assert len(ds) == 7 and ds.size == (8, 12) and len(ds.index["shards"]) == 3
    for i in range(7):
        img, m = ds[i]
        assert (img == images[i]).all() and (m == masks[i]).all()
    a, b = ds.arrays()
    assert (a == images).all() and (b == masks).all()
    assert [r["i"] for r in ds.records()] == list(range(7))
    assert sum(len(x) for x, _ in ds.iter_batches(4)) == 7


def test_same_input_same_bytes(tmp_path: Path) -> None:
    images, masks = _data(5)
    write_dataset(tmp_path / "a", images, masks, shard_size=2)
    write_dataset(tmp_path / "b", images, masks, shard_size=2)
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def test_interrupted_write_keeps_previous_output(tmp_path: Path) -> None:
    images, masks = _data(4)
    write_dataset(tmp_path / "d", images, masks)
    before = (tmp_path / "d" / "images-00000.npy").read_bytes()
    with pytest.raises(RuntimeError), ShardWriter(tmp_path / "d") as w:
        w.add(*_data(2, seed=1))
        raise RuntimeError("killed")
    assert (tmp_path / "d" / "images-00000.npy").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_bad_samples_are_rejected(tmp_path: Path) -> None:
    images, masks = _data(2)
    with pytest.raises(ShardFormatError, match="ids must be 0..11"), ShardWriter(tmp_path / "d") as w:
        w.add(images, np.full_like(masks, 40))
    with pytest.raises(ShardFormatError, match="matching images"), ShardWriter(tmp_path / "d") as w:
        w.add(images, masks[:, :4])
    with pytest.raises(ShardFormatError, match="no index.json"):
        ShardDataset(tmp_path / "missing")
    assert not (tmp_path / "d").exists()


def test_stale_temp_of_a_dead_writer_is_cleaned(tmp_path: Path) -> None:
    stale = tmp_path / ".d.tmp-999999999"
    stale.mkdir()
    write_dataset(tmp_path / "d", *_data(1))
    assert not stale.exists()
