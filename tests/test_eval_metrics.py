"""Metrics against hand-computed confusion matrices; latent and domain gap measures on known inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim2real.evaluate import domain_stats, latent
from sim2real.evaluate.hard_samples import compare_hard_vs_rest, rank_by_loss
from sim2real.evaluate.metrics import confusion_matrix, mean_iou, per_class_iou, pixel_accuracy, summarize

VOID = 11


def test_confusion_matrix_by_hand_void_absent_and_prediction_only_classes() -> None:
    truth = np.array([[0, 0, 1], [1, VOID, 2]])
    pred = np.array([[0, 1, 1], [1, 0, 3]])  # the void pixel is predicted 0: must not count
    cm = confusion_matrix(pred, truth, num_classes=5)
    expected = np.array([
        [1, 1, 0, 0, 0],  # truth 0: one right, one predicted 1
        [0, 2, 0, 0, 0],  # truth 1: both right
        [0, 0, 0, 1, 0],  # truth 2: predicted 3 (class 2 only in truth)
        [0, 0, 0, 0, 0],  # class 3 only in prediction
        [0, 0, 0, 0, 0],  # class 4 absent from both
    ])
    np.testing.assert_array_equal(cm, expected)
    iou = per_class_iou(cm)
    np.testing.assert_allclose(iou[:4], [1 / 2, 2 / 3, 0.0, 0.0])
    assert math.isnan(iou[4]), "a class absent from truth and prediction has no IoU"
    # mean over the 4 present classes: the hallucinated class 3 counts as 0, absent class 4 is left out
    assert mean_iou(cm) == pytest.approx((1 / 2 + 2 / 3) / 4)
    assert pixel_accuracy(cm) == pytest.approx(3 / 5)
    s = summarize(cm)
    rows = s.class_rows(("a", "b", "c", "d", "e"))
    assert rows[4]["iou"] is None and rows[4]["present"] is False
    assert rows[0]["iou"] == pytest.approx(100 * s.iou[0]), "the store's unit: points"
    assert rows[3] == {"class_id": 3, "class_name": "d", "iou": 0.0, "present": True, "tp": 0, "fp": 1, "fn": 0}
    assert s.class_accuracy[0] == pytest.approx(0.5) and math.isnan(s.class_accuracy[3])


def test_all_void_is_undefined_not_zero_or_one() -> None:
    cm = confusion_matrix(np.zeros((2, 2), int), np.full((2, 2), VOID))
    assert cm.sum() == 0
    assert math.isnan(mean_iou(cm)) and math.isnan(pixel_accuracy(cm))


def test_perfect_prediction_and_bad_ids() -> None:
    truth = np.array([0, 3, 3, 10])
    cm = confusion_matrix(truth, truth)
    assert mean_iou(cm) == 1.0 and np.isnan(per_class_iou(cm)).sum() == 8
    with pytest.raises(ValueError, match="predicted ids"):
        confusion_matrix(np.array([0, 11]), np.array([0, 1]))
    with pytest.raises(ValueError, match="truth ids"):
        confusion_matrix(np.array([0, 1]), np.array([0, 12]))
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros(3, int), np.zeros(4, int))


def _features(seed: int = 0, n: int = 200, c: int = 16) -> np.ndarray:
    """n samples of one fixed correlated Gaussian (the distribution does not depend on seed or n)."""
    dist = np.random.default_rng(1234)
    mix, mean = dist.normal(size=(c, c)) / np.sqrt(c), dist.normal(size=c)
    return np.random.default_rng(seed).normal(size=(n, c)) @ mix + mean


def test_frechet_and_mmd_zero_for_identical_and_monotone_in_shift() -> None:
    a = _features()
    assert latent.frechet_distance(a, a.copy()) == pytest.approx(0.0, abs=1e-8)
    assert latent.mmd2(a, a.copy()) == pytest.approx(0.0, abs=1e-12)
    direction = np.random.default_rng(1).normal(size=a.shape[1])
    direction /= np.linalg.norm(direction)
    fd = [latent.frechet_distance(a, a + k * 0.5 * direction) for k in range(6)]
    mmd = [latent.mmd2(a, a + k * 0.5 * direction) for k in range(6)]
    fdn = [latent.frechet_normalized(a, a + k * 0.5 * direction) for k in range(6)]
    for series in (fd, mmd, fdn):
        assert all(y > x for x, y in zip(series, series[1:], strict=False)), series
    # Fréchet of a pure mean shift is exactly the squared shift
    assert fd[4] == pytest.approx(4.0, rel=1e-6)
    # a scale change alone is also seen (covariance term)
    assert latent.frechet_distance(a, a * 1.5) > 0.1


def test_proxy_a_distance_chance_for_one_domain_high_for_two() -> None:
    a, b = _features(0, 150), _features(1, 150)  # two samples of the same distribution
    pad, acc = latent.proxy_a_distance(a, b)
    assert abs(acc - 0.5) < 0.12, acc
    assert pad < 0.5
    pad2, acc2 = latent.proxy_a_distance(a, b + 1.0)
    assert acc2 > 0.9 and pad2 > 1.5


def test_embedding_keeps_set_sizes() -> None:
    a, b = _features(0, 30), _features(1, 20) + 3.0
    ea, eb = latent.embed_2d(a, b)
    assert ea.shape == (30, 2) and eb.shape == (20, 2)


def test_domain_stats_zero_for_same_images_and_see_brightness() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(40, 180, size=(12, 16, 24, 3), dtype=np.uint8)
    masks = rng.integers(0, 12, size=(12, 16, 24), dtype=np.uint8)
    s = domain_stats.summarize_domain("a", images, masks)
    rows = {r["statistic"]: r for r in domain_stats.compare_domains(s, domain_stats.summarize_domain("b", images, masks))}
    assert all(r["distance"] == pytest.approx(0.0, abs=1e-9) for r in rows.values())
    brighter = domain_stats.summarize_domain("c", np.clip(images.astype(int) + 50, 0, 255).astype(np.uint8), masks)
    rows = {r["statistic"]: r for r in domain_stats.compare_domains(s, brighter)}
    assert rows["brightness"]["distance"] == pytest.approx(50 / 255, rel=0.02)
    assert rows["hist_rgb"]["distance"] > 0.3
    assert rows["class_distribution"]["distance"] == pytest.approx(0.0, abs=1e-9)
    props = domain_stats.image_properties(images, masks)
    assert props["sky_fraction"].shape == (12,) and 0 <= props["void_fraction"].min()
    edges = np.zeros((1, 16, 24, 3), np.uint8)
    edges[:, :, 12:] = 255  # one vertical step edge: 2 columns above threshold out of 24
    assert domain_stats.image_properties(edges)["edge_density"][0] == pytest.approx(2 / 24)


def test_hard_samples_rank_and_share() -> None:
    losses = np.array([0.1, 2.0, np.nan, 1.5, 0.2, 0.3])
    assert list(rank_by_loss(losses, 3)) == [1, 3, 5]
    props = {"brightness": np.array([0.5, 0.1, 0.5, 0.12, 0.5, 0.55]),
             "sky_fraction": np.array([0.3, 0.3, 0.3, 0.3, 0.3, 0.3])}
    rows = compare_hard_vs_rest(props, np.array([1, 3]))
    assert rows[0]["property"] == "brightness" and rows[0]["effect_size"] < -5
    sky = next(r for r in rows if r["property"] == "sky_fraction")
    assert sky["effect_size"] is None and sky["difference"] == 0
