"""Root-cause checks: the registry, the bootstrap verdicts, and a tiny run with an injected cause.

The end-to-end test trains the tiny chain's source-only model, then makes the real target a darkened
copy of the model's own synthetic val images: darkness is the only difference, so the brightness
intervention must be *confirmed*, and sky cropping (nothing to equalize: same sky as the source) must
be *rejected*; the gap report then ends its findings in those tested causes, confirmed first.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from sim2real.config import ConfigError, load_config
from sim2real.rootcause import INTERVENTIONS, Intervened, Probe, get_intervention, intervention
from sim2real.rootcause.interventions import brightness_contrast, class_presence, luma_stats, sky_crop
from sim2real.rootcause.verdict import bootstrap_change, decide, miou_of
from sim2real.taxonomy import CLASS_ID, NUM_CLASSES
from tests.conftest import make_project

REPO = Path(__file__).resolve().parents[1]


def _probe(n: int = 6, seed: int = 0, dark: float = 1.0) -> Probe:
    rng = np.random.default_rng(seed)
    src = rng.integers(40, 220, (n, 16, 24, 3)).astype(np.uint8)
    masks = rng.integers(0, NUM_CLASSES, (n, 16, 24)).astype(np.uint8)
    masks[:, :5] = CLASS_ID["Sky"]
    tgt = (src.astype(np.float32) * dark).astype(np.uint8)
    return Probe(tgt, masks.copy(), src, masks.copy(), np.arange(2), rng.random(n), load_config(
        REPO / "params.yaml").rootcause)


# ---------------------------------------------------------------- registry: one function adds one
def test_a_user_adds_an_intervention_with_one_function() -> None:
    @intervention("test_grayscale", trait="colour saturation")
    def grayscale(p: Probe) -> Intervened:
        """Every target image in shades of grey."""
        g = p.images.mean(-1, keepdims=True).repeat(3, -1).astype(np.uint8)
        return Intervened(g, p.masks)

    try:
        iv = get_intervention("test_grayscale")
        assert iv.trait == "colour saturation" and iv.description == "Every target image in shades of grey."
        out = iv(_probe())
        assert out.images.shape == (6, 16, 24, 3) and (out.images[..., 0] == out.images[..., 1]).all()
        cfg = load_config(REPO / "params.yaml", overrides=["rootcause.interventions=[test_grayscale]"])
        assert cfg.rootcause.interventions == ["test_grayscale"]
        with pytest.raises(ValueError, match="already registered"):
            intervention("test_grayscale")(grayscale)
    finally:
        INTERVENTIONS.pop("test_grayscale", None)
    with pytest.raises(KeyError, match="brightness_contrast"):  # an unknown name lists the choices
        get_intervention("test_grayscale")


def test_an_intervention_returning_the_wrong_shape_is_a_clear_error() -> None:
    @intervention("test_bad")
    def bad(p: Probe) -> Intervened:
        return Intervened(p.images[:, :4], p.masks)

    try:
        with pytest.raises(ValueError, match="intervention 'test_bad' returned images"):
            get_intervention("test_bad")(_probe())
    finally:
        INTERVENTIONS.pop("test_bad", None)


def test_builtin_interventions_and_config_errors() -> None:
    for name in ("colour_to_source", "brightness_contrast", "sky_crop", "blur_noise", "class_presence",
                 "hard_sample_trait"):
        assert name in INTERVENTIONS
    with pytest.raises(ConfigError, match="rootcause.split"):
        load_config(REPO / "params.yaml", overrides=["rootcause.split=train"])


# ---------------------------------------------------------------- what the built-ins do
def test_brightness_contrast_restores_darkened_images() -> None:
    p = _probe(dark=0.3)
    out = brightness_contrast(p)
    mu_s, sd_s = luma_stats(p.source_images)
    mu, sd = luma_stats(out.images)
    assert abs(mu.mean() - mu_s.mean()) < 2 and abs(sd.mean() - sd_s.mean()) < 2
    assert luma_stats(p.images)[0].mean() < 0.5 * mu_s.mean()


def test_sky_crop_does_nothing_when_the_sky_matches_and_crops_when_it_does_not() -> None:
    p = _probe()
    same = sky_crop(p)
    assert (same.images == p.images).all() and "nothing cropped" in same.note
    masks = p.masks.copy()
    masks[:, :10] = CLASS_ID["Sky"]  # far more sky than the source
    more = sky_crop(Probe(p.images, masks, p.source_images, p.source_masks, p.hard, p.losses, p.settings))
    assert not (more.masks == masks).all() and "cropped" in more.note


def test_class_presence_keeps_a_matching_subset() -> None:
    p = _probe(n=9)
    masks = p.masks.copy()
    masks[:3] = CLASS_ID["Sky"]  # three images with nothing but sky: unlike the source
    out = class_presence(Probe(p.images, masks, p.source_images, p.source_masks, p.hard, p.losses, p.settings))
    assert out.keep is not None and not set(out.keep) & {0, 1, 2} and len(out.keep) >= 3


def test_hard_sample_trait_normalizes_what_the_hardest_images_share() -> None:
    from sim2real.rootcause.interventions import hard_sample_trait

    p = _probe(n=8)
    images = p.images.copy()
    images[:2] = (images[:2] * 0.3).astype(np.uint8)  # the two hardest images are the dark ones
    out = hard_sample_trait(Probe(images, p.masks, p.source_images, p.source_masks, np.arange(2), p.losses,
                                  p.settings))
    assert out.trait.startswith("brightness") or out.trait.startswith("contrast"), out.trait
    assert (out.images[2:] == images[2:]).all() and not (out.images[:2] == images[:2]).all()
    assert luma_stats(out.images[:2])[0].mean() > 2 * luma_stats(images[:2])[0].mean()


# ---------------------------------------------------------------- bootstrap and verdicts
def _cms(n: int, correct: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cms = np.zeros((n, NUM_CLASSES, NUM_CLASSES))
    for i in range(n):
        hits = rng.binomial(100, correct, NUM_CLASSES)
        cms[i][np.arange(NUM_CLASSES), np.arange(NUM_CLASSES)] = hits
        cms[i][np.arange(NUM_CLASSES), (np.arange(NUM_CLASSES) + 1) % NUM_CLASSES] = 100 - hits
    return cms


def test_bootstrap_is_seeded_and_the_verdicts_follow_the_rules() -> None:
    before, after = _cms(20, 0.4, 0), _cms(20, 0.7, 1)
    rows = np.arange(20)
    ch = bootstrap_change(before, after, None, rows, 200, 0.95, seed=3)
    assert ch == bootstrap_change(before, after, None, rows, 200, 0.95, seed=3)
    assert ch.low > 0 and ch.value == pytest.approx(miou_of(after.sum(0)) - miou_of(before.sum(0)))
    assert decide(ch, gap=ch.value * 2, min_share=0.1, band=0.5)[0] == "confirmed"
    assert decide(ch, gap=ch.value * 20, min_share=0.1, band=0.5)[0] == "inconclusive"  # closes too little
    same = bootstrap_change(before, before, None, rows, 200, 0.95, seed=3)
    assert (same.value, same.low, same.high) == (0, 0, 0) and decide(same, 10.0, 0.1, 0.5)[0] == "rejected"
    worse = bootstrap_change(after, before, None, rows, 200, 0.95, seed=3)
    assert decide(worse, 10.0, 0.1, 0.5)[0] == "rejected"
    # a subset: the kept images' mIoU against all images of the same resample
    keep = np.arange(10)
    sub = bootstrap_change(before, before[keep], keep, rows, 200, 0.95, seed=3)
    assert sub.images == 10 and sub.value == pytest.approx(miou_of(before[:10].sum(0)) - miou_of(before.sum(0)))


# ---------------------------------------------------------------- a tiny run with an injected cause
@pytest.mark.e2e  # a whole tiny chain
def test_darkened_target_brightness_confirmed_sky_crop_rejected(tmp_path: Path) -> None:
    from sim2real.runner import run_stage
    from sim2real.shards import ShardDataset, write_dataset

    root = make_project(tmp_path / "proj", dvc=False)
    cfg = load_config(root / "params.yaml", overrides=[
        "style.method=none", "style.ablation=[none]", "synthetic.num_val=24", "pretrain.steps=120",
        "pretrain.eval_every=120", "rootcause.interventions=[brightness_contrast,sky_crop,colour_to_source]",
        "rootcause.hardest_k=6", "rootcause.bootstrap=200",
        # same images, same sky: a sky difference this small is "nothing to equalize" (the irrelevant trait)
        "rootcause.sky_tolerance=0.05",
        # no online photometric augmentation: the tiny model must not learn to ignore brightness, the cause
        "augment.online=false"])
    for name, item in [("synthetic_scenes", None), ("real_target", None), ("augmented_scenes", None),
                       ("styled_scenes", "none"), ("pretrained_model", "none")]:
        run_stage(name, item, root=root, cfg=cfg)
    # the injected cause: the target is the model's own val images, made darker
    own = ShardDataset(root / "data/styled_scenes/none/val")
    images, masks = own.arrays()
    val = root / "data/real_target/val"
    write_dataset(val, (images.astype(np.float32) * 0.2).astype(np.uint8), masks)

    result = run_stage("root_causes", root=root, cfg=cfg)
    doc = json.loads((root / "data/root_causes/causes.json").read_text())
    verdicts = {c["intervention"]: c["verdict"] for c in doc["causes"]}
    assert doc["gap"]["gap"] > 1.0, doc["gap"]
    assert verdicts["brightness_contrast"] == "confirmed", doc["causes"]
    assert verdicts["sky_crop"] == "rejected", doc["causes"]
    assert doc["causes"][0]["verdict"] == "confirmed"  # confirmed causes first
    md = (root / "data/root_causes/causes.md").read_text()
    assert md.index("CONFIRMED: brightness and contrast") < md.index("| trait")
    assert (root / "data/root_causes/causes.png").stat().st_size > 5_000
    assert "brightness_contrast" in result.extra["confirmed"] and result.tables and result.plots
    con = duckdb.connect(str(root / "data/store/sim2real.duckdb"), read_only=True)
    try:
        rows = dict(con.execute("SELECT intervention, verdict FROM root_causes").fetchall())
    finally:
        con.close()
    assert rows == verdicts

    # the gap report's findings end in these tested causes, confirmed first (root_causes is its upstream)
    report = run_stage("gap_report", root=root, cfg=cfg)
    lines = report.text.splitlines()
    tested = next(i for i, line in enumerate(lines) if line.startswith("- **Root causes, tested** on source_only/none"))
    after = lines[tested + 1:]
    confirmed = [line for line in after if line.startswith("- **Confirmed cause:**")]
    # the injected cause is confirmed (darkening also moves the colour statistics, so colour_to_source may
    # be confirmed beside it); every confirmed line comes before the rejected one, which ends the findings
    assert any("(`brightness_contrast`)" in line for line in confirmed), lines
    assert after[:len(confirmed)] == confirmed and len(after) == len(confirmed) + 1, lines
    assert after[-1].startswith("- **Rejected:**") and "sky_crop" in after[-1], lines
    assert lines[0].startswith("- **How big:**")  # correlations and sizes come before the tested causes
    page = (root / "data/gap_report/report.html").read_text()
    assert page.index("<b>Confirmed cause:</b>") < page.index("<h2>Plots</h2>") < page.index("Root causes: tested")


# ---------------------------------------------------------------- the gap report ends in the tested causes
def _cause(name: str, verdict: str, value: float) -> dict:
    change = {"value": value, "low": value - 1, "high": value + 1, "before": 20.0, "after": 20 + value, "images": 8}
    return {"intervention": name, "trait": f"trait of {name}", "verdict": verdict, "all": change,
            "hardest": change, "gap_share": value / 10}


def test_gap_report_findings_list_confirmed_causes_first_then_rejected_then_inconclusive() -> None:
    from sim2real.evaluate.report import root_cause_findings, root_cause_rows

    doc = {"gap": {"model_id": "source_only/none", "target": "real/val", "gap": 10.0},
           "settings": {"hardest_k": 2, "ci": 0.95},
           "causes": [_cause("sky_crop", "rejected", -0.5), _cause("blur_noise", "inconclusive", 1.0),
                      _cause("colour_to_source", "confirmed", 2.0), _cause("brightness_contrast", "confirmed", 6.0)]}
    lines = root_cause_findings(doc)
    assert lines[0].startswith("<b>Root causes, tested</b> on source_only/none")
    order = [next(c["intervention"] for c in doc["causes"] if c["intervention"] in line) for line in lines[1:]]
    assert order == ["brightness_contrast", "colour_to_source", "sky_crop", "blur_noise"]
    assert lines[1].startswith("<b>Confirmed cause:</b> trait of brightness_contrast") and "+6.0 [+5.0, +7.0]" in lines[1]
    assert "closes 60% of the gap" in lines[1] and lines[3].startswith("<b>Rejected:</b>")
    assert [r["verdict"] for r in root_cause_rows(doc)] == ["confirmed", "confirmed", "rejected", "inconclusive"]
    none = root_cause_findings({**doc, "causes": [_cause("sky_crop", "rejected", 0.0)]})
    assert none[1].startswith("<b>No cause confirmed:</b>") and none[2].startswith("<b>Rejected:</b>")
    assert "not tested" in root_cause_findings(None)[0] and root_cause_rows(None) == []


def test_gap_report_reads_root_causes_and_flags_another_checkpoint(tmp_path: Path) -> None:
    from sim2real.evaluate.data import ModelEntry
    from sim2real.evaluate.stage import load_root_causes

    assert load_root_causes(tmp_path, []) is None  # the stage has not run
    out = tmp_path / "root_causes"
    out.mkdir()
    doc = {"gap": {"model_id": "source_only/none", "checkpoint_sha": "abc"}, "causes": []}
    (out / "causes.json").write_text(json.dumps(doc))
    model = ModelEntry("source_only/none", "source_only", tmp_path / "model.pt", None, {}, "none", sha="abc")
    assert load_root_causes(tmp_path, [model])["warnings"] == []
    model.sha = "def"
    assert "another checkpoint" in load_root_causes(tmp_path, [model])["warnings"][0]
    (out / "causes.json").write_text("{broken")
    with pytest.raises(ValueError, match="causes.json: not valid JSON"):
        load_root_causes(tmp_path, [model])
