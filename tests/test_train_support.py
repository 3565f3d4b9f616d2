"""Tiny learnable data in the brief's layout, and the tiny real config, shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from sim2real.config import Config, apply_overrides, config_from_dict, read_yaml
from sim2real.shards import write_dataset

REPO = Path(__file__).resolve().parents[1]
H, W = 32, 48

# the real params.yaml, made tiny (lightning-hydra style: the real config, shrunk)
TINY_OVERRIDES = [
    f"project.image_height={H}", f"project.image_width={W}", "project.device=cpu", "project.num_threads=1",
    "model.arch=DeepLabV3Plus", "model.encoder=tu-test_efficientnet", "model.encoder_weights=null",
    "augment.online=false",
    "pretrain.steps=12", "pretrain.batch_size=4", "pretrain.eval_every=6", "pretrain.lr=0.003",
    "finetune.steps=8", "finetune.batch_size=4", "finetune.eval_every=4", "finetune.lr=0.003",
    "finetune.seeds=[0, 1]", "style.method=none", "style.ablation=[none]",
]


def tiny_config(extra: list[str] | None = None) -> Config:
    data = apply_overrides(read_yaml(REPO / "params.yaml"), TINY_OVERRIDES + list(extra or []))
    return config_from_dict(data, source="tiny test config")


def scenes(n: int, seed: int, tint: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blocky scenes: each class a colour (+ tint + noise), a void border; learnable in a few steps."""
    rng = np.random.default_rng(seed)
    palette = np.random.default_rng(99).integers(0, 256, (11, 3))
    masks = np.zeros((n, H, W), np.uint8)
    for i in range(n):
        cls = rng.integers(0, 11, (4, 6))
        masks[i] = np.kron(cls, np.ones((H // 4, W // 6), np.int64)).astype(np.uint8)
    images = palette[masks] + tint + rng.normal(0, 12, (n, H, W, 3))
    masks[:, :1] = 11  # void row: ignored in loss and metrics
    return np.clip(images, 0, 255).astype(np.uint8), masks


def make_tiny_root(root: Path, extra: list[str] | None = None) -> Config:
    """A project root with params.yaml and the upstream folders the training stages read."""
    cfg = tiny_config(extra)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    data = root / "data"
    for method in cfg.style.ablation:
        write_dataset(data / "styled_scenes" / method / "train", *scenes(24, 1))
        write_dataset(data / "styled_scenes" / method / "val", *scenes(8, 2))
    for split, n, seed in [("few_shot", 6, 3), ("val", 8, 4), ("test", 8, 5), ("train", 12, 6)]:
        images, masks = scenes(n, seed, tint=25)  # the "real" domain: shifted colours
        write_dataset(data / "real_target" / split, images, masks,
                      records=[{"name": f"{split}_{i}"} for i in range(n)])
    return cfg


def test_tiny_root_layout(tmp_path: Path) -> None:
    from sim2real.shards import ShardDataset

    cfg = make_tiny_root(tmp_path)
    ds = ShardDataset(tmp_path / "data" / "real_target" / "few_shot")
    assert len(ds) == 6 and ds.size == (H, W)
    assert cfg.model.encoder == "tu-test_efficientnet"
