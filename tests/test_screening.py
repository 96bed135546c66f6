import numpy as np
import pytest

from core.errors import RunError
from core.screening import decide, operating_point, threshold_for_sensitivity
from core.stats import operating_point_ci, stratified_counts


def scores(n_pos=200, n_neg=300, seed=0):
    rng = np.random.default_rng(seed)
    s = np.r_[rng.beta(5, 2, n_pos), rng.beta(2, 5, n_neg)]
    y = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    return s, y


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 0.99])
def test_threshold_reaches_target_sensitivity_and_is_the_largest(target):
    s, y = scores()
    t = threshold_for_sensitivity(s, y, target)
    assert operating_point(s, y, t)["sensitivity"] >= target
    above = np.min(s[s > t])  # the next larger threshold that changes anything
    assert operating_point(s, y, above)["sensitivity"] < target


def test_threshold_exact_fraction_does_not_overshoot():
    s = np.arange(1, 21) / 20.0  # 20 positives
    t = threshold_for_sensitivity(s, np.ones(20, bool), 0.95)
    assert t == pytest.approx(0.10)  # 19 of 20 caught, not 20


def test_no_positive_in_validation_is_a_clear_error():
    with pytest.raises(RunError, match="positive class"):
        threshold_for_sensitivity([0.1, 0.2], [0, 0])


def test_operating_point_by_hand():
    op = operating_point([0.9, 0.8, 0.3, 0.6, 0.1], [1, 1, 1, 0, 0], 0.5)
    assert (op["tp"], op["fn"], op["fp"], op["tn"]) == (2, 1, 1, 1)
    assert op["sensitivity"] == pytest.approx(2 / 3) and op["specificity"] == 0.5
    assert op["ppv"] == pytest.approx(2 / 3) and op["npv"] == 0.5


def test_operating_point_ci_contains_estimate():
    s, y = scores()
    t = threshold_for_sensitivity(s, y, 0.9)
    op, ci = operating_point(s, y, t), operating_point_ci(s, y, t, n=500)
    for k in ("sensitivity", "specificity", "ppv", "npv"):
        assert ci[k][0] <= op[k] <= ci[k][1]


def test_stratified_counts_keep_class_sizes():
    y = np.r_[np.zeros(5, int), np.ones(95, int)]
    W = stratified_counts(y, 200, np.random.default_rng(0))
    assert (W[:, y == 0].sum(1) == 5).all() and (W[:, y == 1].sum(1) == 95).all()


def test_decide_uses_threshold_on_positive_class():
    p = np.array([[0.7, 0.3], [0.9, 0.1], [0.2, 0.8]])
    assert decide(p, 1, 0.25).tolist() == [1, 0, 1]
    assert decide(p, 1, None).tolist() == [0, 0, 1]
