"""core.active: the "label these next" order, the head's suggestions and accuracy so far."""
from __future__ import annotations

import numpy as np

from core import active


def _blobs(n_per=30, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (2, dim))
    x = np.concatenate([c + rng.normal(0, 1, (n_per, dim)) for c in centres])
    y = np.array(["a"] * n_per + ["b"] * n_per)
    return x.astype(np.float32), y


def test_twenty_near_identical_photos_are_not_all_asked():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 64)
    twins = base + rng.normal(0, 0.01, (20, 64))  # one scene shot twenty times
    others = rng.normal(0, 1, (20, 64))
    x = np.concatenate([twins, others])
    probs = np.full((40, 2), 0.5)  # the head is equally unsure of all of them
    first = active.next_order(probs, x, np.zeros((0, 64)))[:10]
    assert sum(i < 20 for i in first) <= 1, first
    assert sorted(active.next_order(probs, x, np.zeros((0, 64)))) == list(range(40))


def test_uncertain_photos_come_first_once_many_are_labelled():
    x, y = _blobs()
    lab, unl = x[::2], x[1::2]
    probs = np.tile([0.99, 0.01], (len(unl), 1))
    probs[[3, 7]] = [0.5, 0.5]  # the two the head cannot tell
    order = active.next_order(probs, unl, np.concatenate([lab, lab, lab]))
    assert order[0] in {3, 7} and {3, 7} <= set(order[:3]), order[:4]  # every other label: coverage


def test_most_uncertain_first_and_its_near_copy_not_in_the_same_round():
    x, y = _blobs()
    lab, unl = x[::2], x[1::2].copy()
    unl[5] = unl[4] + 0.001  # photo 5 is a near-copy of photo 4
    probs = np.tile([0.95, 0.05], (len(unl), 1))
    probs[4], probs[5] = [0.5, 0.5], [0.51, 0.49]  # the two most uncertain: the copies
    probs[[9, 11, 13]] = [[0.6, 0.4], [0.65, 0.35], [0.7, 0.3]]
    order = active.next_order(probs, unl, lab, greedy=8)
    assert order[0] == 4, order
    assert 5 not in order[:8], order  # not asked again in this round, although the second most unsure
    assert order[2] == 9 and order[4] == 11, order  # the uncertain labels go by the margin
    assert sorted(order) == list(range(len(unl)))


def test_a_cluster_the_head_is_sure_of_is_still_asked():
    # Uncertainty alone never asks for photos the head is sure of, even when they are a whole
    # group unlike anything labelled (and may be confidently wrong): coverage picks ask for one.
    x, y = _blobs()
    rng = np.random.default_rng(3)
    far = rng.normal(0, 3, x.shape[1]) * 3 + rng.normal(0, 1, (10, x.shape[1]))
    unl = np.concatenate([x[1::2], far]).astype(np.float32)
    probs = np.tile([0.99, 0.01], (len(unl), 1))
    probs[:30] = np.linspace([0.5, 0.5], [0.9, 0.1], 30)  # near the labels: the head hesitates
    order = active.next_order(probs, unl, x[::2], greedy=4)
    assert order[0] == 0 and any(i >= 30 for i in order[:2]), order[:4]


def test_suggestions_cv_and_curve_on_separable_features():
    x, y = _blobs()
    assert not active.can_train(y[:4]) and active.can_train(np.array(["a"] * 3 + ["b"] * 3))
    probs = active.suggest(x[::3], y[::3], x[1::3])
    assert probs.shape == (20, 2)
    predicted = np.array(["a", "b"])[probs.argmax(axis=1)]
    assert (predicted == y[1::3]).mean() >= 0.95
    accuracy, folds = active.cv_accuracy(x, y)
    assert accuracy >= 0.95 and folds == 5
    assert active.cv_accuracy(x[:3], np.array(["a", "a", "b"])) is None  # one photo of b: no estimate
    curve = active.learning_curve(x[np.r_[0:30:3, 30:60:3]], y[np.r_[0:30:3, 30:60:3]])
    assert curve and curve[-1][0] == 20 and all(0 <= a <= 1 for _, a in curve)


def test_uncertainty_is_one_minus_the_margin():
    u = active.uncertainty(np.array([[0.5, 0.5, 0.0], [0.9, 0.05, 0.05], [1.0, 0.0, 0.0]]))
    assert np.allclose(u, [1.0, 0.15, 0.0])


def test_shown_confidence_is_calibrated_on_cross_validation():
    # Photo features are strongly correlated (a few factors spread over many dimensions), which
    # makes a head fitted on 8 labels per class far too sure: ~60% of photos at >= 90%, of which
    # only ~88% are right, on a task it gets 77% right. The shown confidence must be honest.
    rng = np.random.default_rng(0)
    n, factors, dim = 400, 8, 600
    z = rng.normal(0, 1, (2 * n, factors))
    z[n:, 0] += 2.0
    x = (z @ rng.normal(0, 1, (factors, dim)) + rng.normal(0, 0.5, (2 * n, dim))).astype(np.float32)
    y = np.array(["a"] * n + ["b"] * n)
    lab = np.r_[0:8, n:n + 8]
    rest = np.setdiff1d(np.arange(2 * n), lab)
    plain = active.suggest(x[lab], y[lab], x[rest], calibrated=False)
    shown = active.suggest(x[lab], y[lab], x[rest])
    right = np.array(["a", "b"])[shown.argmax(axis=1)] == y[rest]
    assert 0.7 < right.mean() < 0.85
    plain_gap = plain.max(axis=1).mean() - right.mean()
    assert plain_gap > 0.1, plain_gap  # the overconfidence being fixed
    assert abs(shown.max(axis=1).mean() - right.mean()) < plain_gap * 0.75  # nearer the accuracy
    sure, plain_sure = shown.max(axis=1) >= 0.9, plain.max(axis=1) >= 0.9
    plain_right = np.array(["a", "b"])[plain.argmax(axis=1)] == y[rest]
    print(f"plain: {plain_sure.mean():.0%} at >= 90%, {plain_right[plain_sure].mean():.1%} right; "
          f"calibrated: {sure.mean():.0%}, {right[sure].mean():.1%} right")
    assert sure.mean() < plain_sure.mean() and right[sure].mean() > plain_right[plain_sure].mean()
    assert np.allclose(shown.sum(axis=1), 1) and (shown.argmax(1) == plain.argmax(1)).mean() > 0.95
