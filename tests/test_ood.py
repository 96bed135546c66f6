import json

import numpy as np
import pytest

from core.errors import RunError
from core.ood import OODDetector


def clusters(n_per, rng, d=64, c=3):
    centres = np.eye(c, d) * 5 + 1.0  # a shared offset so normalised clusters stay distinct
    y = np.repeat(np.arange(c), n_per)
    return centres[y] + rng.normal(size=(len(y), d)), y


def test_flags_far_features_and_about_five_percent_of_in_distribution():
    rng = np.random.default_rng(0)
    train, ytr = clusters(100, rng)
    val, _ = clusters(100, rng)
    fresh, _ = clusters(400, rng)
    det = OODDetector.fit(train, ytr)
    det.calibrate(val)
    far = np.zeros((50, 64))
    far[:, 40:] = rng.normal(size=(50, 24)) + 5  # a direction no class occupies
    assert det.flag(far).mean() > 0.95
    assert 0.01 <= det.flag(fresh).mean() <= 0.12
    assert det.flag(val).mean() == pytest.approx(0.05, abs=0.01)


def test_meta_round_trip_keeps_scores(tmp_path):
    rng = np.random.default_rng(1)
    x, y = clusters(50, rng)
    det = OODDetector.fit(x, y)
    det.calibrate(x)
    det.save(tmp_path)
    meta = json.loads(json.dumps(det.to_meta()))  # must be plain JSON, and small
    assert len(json.dumps(meta)) < 1000 and meta["file"] == "ood.npz"
    back = OODDetector.from_meta(meta, tmp_path)
    assert np.allclose(back.score(x), det.score(x), rtol=1e-4)
    assert (back.flag(x) == det.flag(x)).mean() > 0.99


def test_uncalibrated_or_missing_is_a_run_error(tmp_path):
    det = OODDetector.fit(np.random.randn(20, 8), np.arange(20) % 2)
    with pytest.raises(RunError):
        det.flag(np.random.randn(2, 8))
    with pytest.raises(RunError):
        OODDetector.from_meta({"file": "ood.npz", "threshold": 1.0}, tmp_path)
