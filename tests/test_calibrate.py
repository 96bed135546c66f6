import numpy as np

from core.calibrate import (T_MAX, T_MIN, apply_temperature, expected_calibration_error,
                            fit_temperature, reliability_bins)


def overconfident(n=2000, c=4, sharpen=4.0, seed=0):
    """Labels drawn from true probabilities; logits are those log-probs sharpened x4."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(scale=1.5, size=(n, c))
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(c, p=row) for row in p])
    return sharpen * true_logits, labels


def test_temperature_scaling_reduces_ece_on_overconfident_logits():
    logits, labels = overconfident()
    T = fit_temperature(logits[:1000], labels[:1000])
    assert 3.0 < T < 5.5  # the sharpening factor it should undo
    before = expected_calibration_error(apply_temperature(logits[1000:]), labels[1000:])
    after = expected_calibration_error(apply_temperature(logits[1000:], T), labels[1000:])
    assert before > 0.15
    assert after < before / 3


def test_apply_temperature_keeps_ranking_and_sums_to_one():
    logits, _ = overconfident(n=50)
    p = apply_temperature(logits, 2.5)
    assert np.allclose(p.sum(1), 1)
    assert (p.argmax(1) == logits.argmax(1)).all()
    assert apply_temperature(logits[0], 2.5).shape == (4,)


def test_fit_temperature_degenerate_inputs_fall_back_to_one():
    assert fit_temperature(np.zeros((1, 3)), np.array([0])) == 1.0
    assert fit_temperature(np.random.randn(10, 3), np.zeros(10, int)) == 1.0


def test_fit_temperature_stays_in_bounds_for_separable_data():
    labels = np.arange(100) % 2
    logits = np.stack([-(labels * 2 - 1), labels * 2 - 1], 1).astype(float) * 0.01
    T = fit_temperature(logits, labels)  # perfectly separable: wants T -> 0
    assert T_MIN <= T <= T_MAX and T < 1


def test_reliability_bins_count_everything_and_ece_small_when_calibrated():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.5, 1.0, 20000)
    correct = rng.uniform(size=20000) < conf  # right exactly as often as it claims
    probs = np.stack([conf, 1 - conf], 1)
    labels = np.where(correct, 0, 1)
    bins = reliability_bins(probs, labels, n_bins=10)
    assert sum(b["count"] for b in bins) == 20000
    assert expected_calibration_error(probs, labels) < 0.02
