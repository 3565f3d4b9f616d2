"""gap_report on a tiny fake chain built in tmp: real checkpoints (TRAIN's format), real shard folders.

The chain: 32x48 two-domain road scenes (a "synthetic" palette and a darker, noisy "real" one), tiny
FPN/MobileNetV3 models with different init seeds saved through `sim2real.train.checkpoint`, with budgets
where the real-only baseline got fewer steps than pretraining + fine-tuning (the report must warn).
`build_tiny_chain` is also used by tests/test_report_html.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sim2real.config import Config, load_config
from sim2real.context import StageContext
from sim2real.shards import write_dataset
from tests.conftest import scratch

pytestmark = pytest.mark.e2e  # trains a whole tiny chain: not in `make test-fast`

REPO = Path(__file__).resolve().parents[1]
H, W = 32, 48
TINY = [
    f"project.image_height={H}", f"project.image_width={W}", "project.device=cpu",
    "model.arch=FPN", "model.encoder=tu-mobilenetv3_small_050", "model.encoder_weights=null",
    "style.ablation=[none, reinhard]", "style.method=reinhard",
    "evaluate.batch_size=16", "evaluate.hardest_k=3", "evaluate.feature_images=24",
    "evaluate.reverse_styles=[reinhard]", "evaluate.style_references=16", "evaluate.adabn_images=16",
    "store.path=store/sim2real.duckdb",
]


def make_scenes(n: int, seed: int, domain: str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Road-like scenes: sky over buildings over road, a car and a pole; 'real' = other palette + noise."""
    rng = np.random.default_rng(seed)
    palette = ({0: (120, 170, 230), 1: (150, 90, 70), 3: (90, 90, 90), 8: (200, 30, 30), 2: (230, 230, 60)}
               if domain == "synthetic" else
               {0: (190, 200, 210), 1: (110, 100, 95), 3: (70, 65, 75), 8: (60, 60, 140), 2: (120, 120, 110)})
    images = np.zeros((n, H, W, 3), np.uint8)
    masks = np.zeros((n, H, W), np.uint8)
    for i in range(n):
        horizon = int(rng.integers(8, 14))
        road = int(rng.integers(18, 24))
        m = np.full((H, W), 1, np.uint8)
        m[:horizon] = 0
        m[road:] = 3
        cx, cw = int(rng.integers(0, W - 12)), int(rng.integers(6, 12))
        m[road - 4:road + 3, cx:cx + cw] = 8
        px = int(rng.integers(0, W - 2))
        m[horizon:road, px:px + 2] = 2
        if rng.random() < 0.3:
            m[:2, :] = 11  # a void strip, as real labels have
        img = np.zeros((H, W, 3), np.float32)
        for c, col in palette.items():
            img[m == c] = col
        img[m == 11] = (0, 0, 0)
        if domain == "real":
            img = img * rng.uniform(0.6, 1.0) + rng.normal(0, 12, img.shape)
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
        masks[i] = m
    return images, masks, [{"name": f"{domain}_{seed}_{i:03d}"} for i in range(n)]


def _save_model(cfg: Config, path: Path, stage: str, init_seed: int, budget: dict, init: dict) -> str:
    from sim2real.train.checkpoint import save_checkpoint
    from sim2real.train.models import create_model

    model_cfg = cfg.model.model_copy(update={"init_seed": init_seed})
    model = create_model(model_cfg)
    # a few BN-statistics passes so train/eval differ and AdaBN has something to change
    model.train()
    from sim2real.train.models import preprocess

    with torch.no_grad():
        images, _, _ = make_scenes(8, init_seed + 100, "synthetic")
        model(preprocess(images))
    model.eval()
    params = cfg.to_dict()  # like TRAIN: every stage records the same model section
    save_checkpoint(path, {"model": model.state_dict(), "params": params, "stage": stage,
                           "step": budget.get("total_steps", 0), "init": init, "budget": budget})
    return init.get("state_sha", "")


def build_tiny_chain(root: Path, extra: list[str] | None = None) -> Config:
    """Write every upstream output gap_report reads under root/data; return the matching config."""
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    cfg = load_config(root / "params.yaml", overrides=TINY + (extra or []))
    data = root / "data"
    for name, (n, seed, dom) in {"synthetic_scenes/val": (24, 1, "synthetic"), "synthetic_scenes/train": (24, 2, "synthetic"),
                                 "real_target/val": (20, 3, "real"), "real_target/test": (16, 4, "real"),
                                 "real_target/train": (20, 5, "real")}.items():
        write_dataset(data / name, *make_scenes(n, seed, dom))
    # "reinhard"-styled synthetic sets: synthetic geometry, colours pulled toward real
    for split, seed in (("val", 1), ("train", 2)):
        img, msk, rec = make_scenes(24, seed, "synthetic")
        real, _, _ = make_scenes(24, seed, "real")
        write_dataset(data / "styled_scenes" / "reinhard" / split,
                      ((img.astype(np.float32) + real) / 2).astype(np.uint8), msk, rec)
        write_dataset(data / "styled_scenes" / "none" / split, img, msk, rec)
    (data / "real_target").mkdir(parents=True, exist_ok=True)
    (data / "real_target" / "split.json").write_text(json.dumps({"source": "tiny-test", "few_shot": {"size": 4}}))
    start = {"kind": "init", "encoder_weights": None, "init_seed": 0, "state_sha": "start-0"}
    for i, m in enumerate(cfg.style.ablation):
        _save_model(cfg, data / "pretrained_model" / m / "model.pt", "pretrained_model", 10 + i,
                    {"pretrain_steps": 20, "total_steps": 20}, start)
    for seed in (0, 1):
        pre = {"kind": "checkpoint", "checkpoint": "data/pretrained_model/reinhard/model.pt",
               "checkpoint_step": 20, "pretrained_init": start}
        _save_model(cfg, data / "finetuned_model" / f"seed-{seed}" / "model.pt", "finetuned_model", 20 + seed,
                    {"finetune_steps": 10, "pretrain_steps": 20, "total_steps": 30}, pre)
        # deliberately fewer steps than 20 + 10: the report must warn that the comparison is unfair
        _save_model(cfg, data / "real_only_model" / f"seed-{seed}" / "model.pt", "real_only_model", 30 + seed,
                    {"total_steps": 25}, start)
    return cfg


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory):
    from sim2real.evaluate.stage import gap_report

    torch.set_num_threads(1)
    with scratch(tmp_path_factory, "chain") as root:
        cfg = build_tiny_chain(root)
        mp = pytest.MonkeyPatch()
        mp.delenv("SIM2REAL_STORE", raising=False)
        result = gap_report(cfg, StageContext(root=root, stage="gap_report"))
        yield root, cfg, result
        mp.undo()


def test_gap_report_writes_report_plots_and_store(chain) -> None:
    from sim2real.evaluate.store import Store

    root, cfg, result = chain
    out = root / "data" / "gap_report"
    assert (out / "report.html").exists()
    for rel in result.plots.values():
        assert (root / rel).exists() and (root / rel).stat().st_size > 1000, rel
    assert {"class_iou.png", "confusion.png", "embedding.png", "hardest.png", "history.png"} <= {
        Path(p).name for p in result.plots.values()}
    store = Store(root / "store" / "sim2real.duckdb")
    run_id = result.extra["run_id"]
    models = {r["model_id"] for r in store.query("SELECT model_id FROM models WHERE run_id = ?", [run_id])}
    assert models == {"source_only/none", "source_only/reinhard", "finetuned/seed-0", "finetuned/seed-1",
                      "real_only/seed-0", "real_only/seed-1"}
    splits = {(r["model_id"], r["split"], r["adaptation"]) for r in store.query(
        "SELECT DISTINCT model_id, split, adaptation FROM metrics WHERE run_id = ?", [run_id])}
    assert ("source_only/reinhard", "styled/reinhard/val", "none") in splits
    assert ("source_only/none", "synthetic/val", "none") in splits
    assert ("finetuned/seed-1", "real/test", "none") in splits
    assert ("source_only/reinhard", "real/val", "adabn") in splits
    assert ("source_only/none", "real/val", "reverse_reinhard") in splits
    assert ("source_only/reinhard", "real/test", "reverse_reinhard") in splits  # the headline model
    for table in ("domain_stats", "latent_gap", "hard_samples", "gap_metric_fit", "class_iou", "headline"):
        assert store.count(table, run_id) > 0, table


def test_headline_numbers_follow_from_the_stored_mious(chain) -> None:
    from sim2real.evaluate.store import Store

    root, cfg, result = chain
    store = Store(root / "store" / "sim2real.duckdb")
    run_id = result.extra["run_id"]

    def miou(model_id: str, split: str, adaptation: str = "none") -> float:
        return store.query("SELECT value FROM metrics WHERE run_id=? AND model_id=? AND split=? "
                           "AND adaptation=? AND name='miou'", [run_id, model_id, split, adaptation])[0]["value"]

    head = {(r["figure"], r["split"]): r for r in store.query("SELECT * FROM headline WHERE run_id=?", [run_id])}
    gap = miou("source_only/none", "synthetic/val") - miou("source_only/none", "real/val")
    assert head[("domain_gap", "real/val")]["value"] == pytest.approx(gap, abs=1e-9)
    style = miou("source_only/reinhard", "real/val") - miou("source_only/none", "real/val")
    assert head[("recovered_by_style/reinhard", "real/val")]["value"] == pytest.approx(style, abs=1e-9)
    ft = [miou(f"finetuned/seed-{s}", "real/val") for s in (0, 1)]
    ro = [miou(f"real_only/seed-{s}", "real/val") for s in (0, 1)]
    gain = head[("synthetic_pretraining_gain", "real/val")]
    assert gain["value"] == pytest.approx(np.mean(ft) - np.mean(ro), abs=1e-9)
    assert gain["n"] == 2 and gain["spread"] is not None
    assert "20 pretraining + 10 fine-tuning = 30" in gain["note"] and "real-only = 25" in gain["note"]
    assert "WARNING" in gain["note"]
    assert any("25 steps < 30" in w for w in result.extra["warnings"])
    tta = head[("tta/adabn", "real/val")]["value"]
    assert tta == pytest.approx(miou("source_only/reinhard", "real/val", "adabn")
                                - miou("source_only/reinhard", "real/val"), abs=1e-9)
    fit = store.query("SELECT * FROM gap_metric_fit WHERE run_id=?", [run_id])
    # 2 source-only x (plain, adabn, reverse) + 2 fine-tuned = 8 points
    assert max(r["n_points"] for r in fit) == 8
    assert {"latent/frechet", "latent/mmd2", "latent/proxy_a_distance", "image/brightness"} <= {
        r["statistic"] for r in fit}


def test_rematerializing_the_same_run_keeps_row_counts(chain) -> None:
    from sim2real.evaluate.stage import gap_report
    from sim2real.evaluate.store import Store

    root, cfg, first = chain
    store = Store(root / "store" / "sim2real.duckdb")
    before = store.counts()
    again = gap_report(cfg, StageContext(root=root, stage="gap_report"))
    assert again.extra["run_id"] == first.extra["run_id"]
    assert store.counts() == before


def test_gap_command_prints_the_headline(chain) -> None:
    from typer.testing import CliRunner

    from sim2real.cli import app

    root, cfg, result = chain
    res = CliRunner().invoke(app, ["gap", "--store", str(root / "store" / "sim2real.duckdb")])
    assert res.exit_code == 0, res.output
    assert result.extra["run_id"] in res.output
    assert "Domain gap" in res.output and "What synthetic pretraining bought" in res.output
    assert "WARNING" in res.output


def _chromium() -> str | None:
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


_CHECK = """
<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src"));
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = JSON.stringify({total: imgs.length, broken: bad});
  document.body.appendChild(out);
});
</script>
"""


def test_report_opens_in_headless_chromium_with_every_image_loaded(chain, tmp_path: Path) -> None:
    import re
    import subprocess

    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium); the report check needs it")
    root, cfg, result = chain
    out = root / "data" / "gap_report"
    html = (out / "report.html").read_text()
    # what a person sees first: headline table, then findings, then plots
    assert html.index("Headline") < html.index("Findings") < html.index("<h2>Plots")
    # a copy with a checker script, next to the report so relative image paths resolve the same way
    check = out / "report_check.html"
    check.write_text(html.replace("</body>", _CHECK + "</body>"))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=10000", "--dump-dom",
           check.as_uri()]
    try:
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90).stdout
    finally:
        check.unlink()
    found = re.search(r'<pre id="image-check">(.*?)</pre>', dom)
    assert found, f"the check script did not run; chromium printed: {dom[:500]}"
    status = json.loads(found.group(1).replace("&quot;", '"'))
    assert status["broken"] == [], status
    assert status["total"] == len(result.plots) >= 5


def test_features_from_the_evaluation_pass_match_encoder_features() -> None:
    from sim2real.config.train import ModelConfig
    from sim2real.evaluate.predict import evaluate_model
    from sim2real.train.models import create_model, encoder_features, preprocess

    model = create_model(ModelConfig(arch="FPN", encoder="tu-mobilenetv3_small_050", encoder_weights=None)).eval()
    images, masks, _ = make_scenes(5, 0, "real")
    result = evaluate_model(model, images[:, :30, :46], masks[:, :30, :46], batch_size=2, features=True)
    with torch.no_grad():
        expected = encoder_features(model, preprocess(images[:, :30, :46])).numpy()
    np.testing.assert_allclose(result.features, expected, rtol=1e-4, atol=1e-6)
    assert result.predictions.shape == (5, 30, 46) and np.isfinite(result.losses).all()
