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
    assert set(active.next_order(probs, unl, np.concatenate([lab, lab, lab]))[:2]) == {3, 7}


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
