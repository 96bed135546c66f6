import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.errors import RunError
from core.evaluate import NO_TEST_NOTE, evaluate_run, metrics
from core.stats import bootstrap_ci, bootstrap_cis
from core.ood import OODDetector


def synthetic(n, c=2, seed=0, signal=1.5, sharpen=3.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += signal
    return (sharpen * logits).astype(np.float32), y.astype(np.int64)


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_metrics_match_sklearn_and_binary_auc_is_positive_class():
    logits, y = synthetic(200)
    p = softmax(logits)
    m = metrics(p, y, ["neg", "pos"])
    assert m["accuracy"] == pytest.approx((p.argmax(1) == y).mean())
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p[:, 1]))
    assert np.array(m["confusion_matrix"]).sum() == 200
    assert np.allclose(np.array(m["confusion_matrix_normalized"]).sum(1), 1)
    assert [c["support"] for c in m["per_class"]] == [100, 100]


def test_multiclass_macro_auc_matches_sklearn_ovr():
    logits, y = synthetic(300, c=3)
    p = softmax(logits)
    m = metrics(p, y, list("abc"))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_samples():
    widths = []
    for n in (60, 1200):
        logits, y = synthetic(n, c=3, seed=n)
        p = softmax(logits)
        m = metrics(p, y, list("abc"))
        cis = bootstrap_cis(p, y, n=500)
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc"):
            lo, hi = cis[key]
            assert lo <= m[key] <= hi, key
        widths.append(cis["accuracy"][1] - cis["accuracy"][0])
    assert widths[1] < widths[0] / 2.5  # ~ 1/sqrt(n): 20x the data, ~4.5x narrower


def test_vectorised_bootstrap_agrees_with_callable_path():
    logits, y = synthetic(150, c=2, seed=3)
    p = softmax(logits)
    fast = bootstrap_ci(p, y, "roc_auc", n=300, seed=7)
    slow = bootstrap_ci(p, y, lambda P, Y: roc_auc_score(Y, P[:, 1]), n=300, seed=7)
    assert fast == pytest.approx(slow, abs=1e-9)


def write_run(tmp_path, splits=("train", "val", "test"), positive_class=None, n=120, d=16):
    rng = np.random.default_rng(0)
    for i, split in enumerate(splits):
        logits, y = synthetic(n, seed=i)
        feats = rng.normal(size=(n, d)).astype(np.float32) + y[:, None] * 2.0 + 3.0
        paths = np.array([f"/photos/{split}/{k}.jpg" for k in range(n)])
        np.savez(tmp_path / f"outputs_{split}.npz", logits=logits, labels=y, features=feats, paths=paths)
    meta = {"class_names": ["normal", "glaucoma"], "backbone": "resnet18", "positive_class": positive_class,
            "input_size": [3, 64, 64], "note": "kept"}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    return tmp_path


def strict_load(path):
    return json.loads(path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_evaluate_run_screening_writes_evaluation_and_updates_meta(tmp_path):
    run = write_run(tmp_path, positive_class="glaucoma")
    ev = evaluate_run(run, n_boot=200)
    saved = strict_load(run / "evaluation.json")  # valid JSON: no NaN
    meta = strict_load(run / "meta.json")
    assert saved["evaluated_on"] == "test" and NO_TEST_NOTE not in saved["notes"]
    assert meta["note"] == "kept" and meta["positive_class"] == "glaucoma"
    assert 3.0 > meta["temperature"] > 1.0  # logits were sharpened x3
    assert saved["calibration"]["ece_after"] < saved["calibration"]["ece_before"]
    assert meta["threshold"] == pytest.approx(saved["screening"]["threshold"])
    assert saved["screening"]["validation"]["sensitivity"] >= 0.95
    lo, hi = saved["ci"]["accuracy"]
    assert lo <= saved["metrics"]["accuracy"] <= hi
    assert saved["split_sizes"]["test"]["n"] == 120
    assert saved["misclassified"] and {"path", "true", "predicted", "confidence"} <= set(saved["misclassified"][0])
    assert len(saved["roc"]["glaucoma"]["fpr"]) <= 200
    det = OODDetector.from_meta(meta["ood"], run)
    assert (run / "ood.npz").exists() and det.threshold == pytest.approx(meta["ood"]["threshold"])
    assert ev["metrics"]["n"] == 120


def test_evaluate_run_without_test_says_so_and_does_not_apply_unrequested_threshold(tmp_path):
    run = write_run(tmp_path, splits=("train", "val"))
    saved = evaluate_run(run, n_boot=100)
    meta = strict_load(run / "meta.json")
    assert saved["evaluated_on"] == "val" and NO_TEST_NOTE in saved["notes"]
    assert saved["screening"]["applied_to_predictions"] is False
    assert meta["threshold"] is None and meta["positive_class"] is None


def test_evaluate_run_missing_pieces_are_run_errors(tmp_path):
    with pytest.raises(RunError, match="meta.json"):
        evaluate_run(tmp_path)
    run = write_run(tmp_path, splits=("train",))
    with pytest.raises(RunError, match="validation"):
        evaluate_run(run)


def test_figures_build_from_evaluation(tmp_path):
    import pandas as pd

    from core import figures
    ev = evaluate_run(write_run(tmp_path, positive_class="glaucoma"), n_boot=50)
    assert figures.confusion_matrix_figure(ev).data[0].z[0][0] == pytest.approx(
        ev["metrics"]["confusion_matrix_normalized"][0][0])
    roc = figures.roc_figure(ev)
    point = [t for t in roc.data if t.name.startswith("operating point")]
    assert point and point[0].y[0] == pytest.approx(ev["screening"]["evaluation"]["sensitivity"])
    assert len(figures.reliability_figure(ev).data) == 3
    assert len(figures.per_class_bar_figure(ev).data) == 3
    df = pd.DataFrame({"run": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2], "val_acc": [0.5, 0.6, 0.4, 0.7]})
    assert len(figures.curves_figure(df, ["val_acc"]).data) == 2


def test_small_test_set_never_gets_a_zero_width_interval():
    # Each class all right or all wrong: a stratified bootstrap alone collapses to a point.

    probs = np.array([[.1, .2, .7]] * 2 + [[.1, .8, .1]] * 2 + [[.1, .1, .8]] * 2)
    labels = np.array([0, 0, 1, 1, 2, 2])
    cis = bootstrap_cis(probs, labels, n=200)
    low, high = cis["accuracy"]
    assert low < 4 / 6 < high and high - low > 0.3
    low, high = cis["balanced_accuracy"]
    assert high - low > 0.3
    assert cis["macro_f1"] is None and cis["roc_auc"] is None  # not estimable, not "exactly 55.6%"


def test_screening_interval_is_wide_on_few_positives():
    from core.stats import operating_point_ci

    ci = operating_point_ci(np.array([.9, .8, .7, .2, .1]), np.array([1, 1, 1, 0, 0]), threshold=.5, n=200)
    assert ci["sensitivity"][0] < 0.6 and ci["sensitivity"][1] == 1.0
