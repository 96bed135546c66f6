"""The operating point after training (issue 11, item 4): figures at any threshold, saving one."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core import operating_point as op
from core.errors import LatihError, RunError
from core.evaluate import evaluate_run

CLASSES = ["normal", "glaucoma"]


def _logits(p_pos) -> np.ndarray:
    """Two-class logits whose softmax (T = 1) gives p(glaucoma) = p_pos exactly."""
    p = np.asarray(p_pos, dtype=np.float64)
    return np.stack([np.zeros_like(p), np.log(p / (1 - p))], axis=1).astype(np.float32)


def _hand_run(tmp_path, splits: dict, threshold=0.5, positive="glaucoma"):
    """A run folder with given p(glaucoma) and truth per split, temperature 1."""
    for split, (p, y) in splits.items():
        np.savez(tmp_path / f"outputs_{split}.npz", logits=_logits(p), labels=np.asarray(y, dtype=np.int64),
                 paths=np.array([f"/photos/{split}/{i}.png" for i in range(len(y))]))
    meta = {"class_names": CLASSES, "positive_class": positive, "temperature": 1.0, "threshold": threshold,
            "target_sensitivity": 0.95}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "config.json").write_text(json.dumps({"data_path": "/photos"}))
    return tmp_path


VAL = ([0.9, 0.8, 0.3, 0.6, 0.1, 0.2], [1, 1, 1, 0, 0, 0])
TEST = ([0.95, 0.55, 0.45, 0.35, 0.7, 0.05, 0.15, 0.25], [1, 1, 1, 1, 0, 0, 0, 0])


def test_figures_at_a_threshold_match_hand_counts(tmp_path):
    scores = op.load_scores(_hand_run(tmp_path, {"val": VAL, "test": TEST}))
    fig = op.figures_at(scores, 0.5, n_boot=200)
    val, test = fig["splits"]["val"], fig["splits"]["test"]
    # val at 0.5: flagged 0.9, 0.8 (sick) and 0.6 (healthy); 0.3 (sick) missed
    assert (val["tp"], val["fn"], val["fp"], val["tn"]) == (2, 1, 1, 2)
    assert val["sensitivity"] == pytest.approx(2 / 3) and val["specificity"] == pytest.approx(2 / 3)
    # test at 0.5: flagged 0.95, 0.55 (sick) and 0.7 (healthy); 0.45, 0.35 missed
    assert (test["tp"], test["fn"], test["fp"], test["tn"]) == (2, 2, 1, 3)
    assert test["sensitivity"] == 0.5 and test["specificity"] == 0.75
    assert test["ppv"] == pytest.approx(2 / 3) and test["npv"] == pytest.approx(3 / 5)
    for rate in op.RATES:
        lo, hi = test["ci"][rate]
        assert lo <= test[rate] <= hi and hi - lo > 0.2  # 8 photos: wide intervals
    assert fig["measured_on"] == "test" and not fig["validation_only"]
    # a lower threshold catches the two missed test photos
    low = op.figures_at(scores, 0.3, n_boot=50)["splits"]["test"]
    assert (low["tp"], low["fn"], low["fp"]) == (4, 0, 1)


def test_without_test_photos_the_figures_say_validation_only(tmp_path):
    scores = op.load_scores(_hand_run(tmp_path, {"val": VAL}))
    fig = op.figures_at(scores, 0.5, n_boot=50)
    assert fig["validation_only"] and fig["measured_on"] == "val" and set(fig["splits"]) == {"val"}


def test_candidate_thresholds_cover_every_validation_score_highest_first(tmp_path):
    scores = op.load_scores(_hand_run(tmp_path, {"val": VAL, "test": TEST}, threshold=0.42))
    options = op.candidate_thresholds(scores)
    assert options == sorted(options, reverse=True)
    for score in VAL[0]:  # each validation score is a threshold with its own operating point
        assert any(abs(o - score) < 1e-6 for o in options), score
    assert 0.42 in options  # the saved threshold is always one of the choices


def test_bad_thresholds_and_non_screening_runs_are_plain_errors(tmp_path):
    run = _hand_run(tmp_path, {"val": VAL})
    for bad in ("abc", 1.5, -0.1, float("nan"), None):
        with pytest.raises(LatihError, match="from 0 to 1"):
            op.check_threshold(bad)
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "positive_class": None}))
    assert not op.is_screening(run)
    with pytest.raises(RunError, match="no positive class"):
        op.load_scores(run)


def _synthetic_run(tmp_path, splits=("train", "val", "test"), n=120):
    rng = np.random.default_rng(0)
    for i, split in enumerate(splits):
        y = np.r_[np.zeros(n // 2), np.ones(n // 2)].astype(np.int64)
        z = rng.normal(size=n) * 1.2 + (2 * y - 1) * 1.3
        logits = np.stack([-z, z], axis=1).astype(np.float32) * 1.5
        feats = rng.normal(size=(n, 8)).astype(np.float32) + y[:, None] * 2.0 + 3.0
        np.savez(tmp_path / f"outputs_{split}.npz", logits=logits, labels=y, features=feats,
                 paths=np.array([f"/photos/{split}/{k}.jpg" for k in range(n)]))
    meta = {"class_names": CLASSES, "backbone": "resnet18", "positive_class": "glaucoma",
            "target_sensitivity": 0.95, "input_size": [3, 64, 64], "note": "kept"}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    (tmp_path / "config.json").write_text(json.dumps({"data_path": "/photos", "strategy": "feature-extraction"}))
    evaluate_run(tmp_path, n_boot=200)
    return tmp_path


def test_saving_updates_meta_history_evaluation_and_model_card(tmp_path):
    from core.export import model_card

    run = _synthetic_run(tmp_path)
    before_meta = json.loads((run / "meta.json").read_text())
    before_ev = json.loads((run / "evaluation.json").read_text())
    old = before_meta["threshold"]
    scores = op.load_scores(run)
    new = float(np.quantile(scores.scores("val"), 0.8))  # stricter: fewer false alarms, more missed
    assert new > old
    expected = op.figures_at(scores, new, n_boot=200)["splits"]["test"]

    op.set_threshold(run, new, source="evaluate page")

    meta = json.loads((run / "meta.json").read_text())
    ev = json.loads((run / "evaluation.json").read_text())
    assert meta["threshold"] == new and meta["note"] == "kept" and meta["temperature"] == before_meta["temperature"]
    (entry,) = meta["threshold_history"]
    assert entry["old"] == old and entry["new"] == new and entry["where"] == "evaluate page" and entry["when"]
    assert entry["sensitivity"] == pytest.approx(expected["sensitivity"])
    screen = ev["screening"]
    assert screen["threshold"] == new and screen["chosen_by"] == "user"
    assert screen["threshold_from_target"] == pytest.approx(old)
    for key in ("tp", "fp", "tn", "fn", "sensitivity", "specificity", "ppv", "npv"):
        assert screen["evaluation"][key] == pytest.approx(expected[key]), key
    assert screen["evaluation_ci"]["sensitivity"] == pytest.approx(expected["ci"]["sensitivity"])
    # the decisions scored by the headline metrics moved with the threshold
    predicted_positive = np.array(ev["metrics"]["confusion_matrix"])[:, 1].sum()
    assert predicted_positive == expected["tp"] + expected["fp"]
    assert ev["metrics"]["accuracy"] != before_ev["metrics"]["accuracy"]
    assert len(ev["misclassified"]) == expected["fp"] + expected["fn"]
    card = model_card(run)
    assert f"threshold {new:.4f}" in card and "chosen by a person" in card

    # a second change is appended, and going back to the target's threshold says so
    op.set_threshold(run, old, source="cli")
    meta = json.loads((run / "meta.json").read_text())
    assert [(e["old"], e["new"], e["where"]) for e in meta["threshold_history"]] == \
        [(old, new, "evaluate page"), (new, old, "cli")]
    assert json.loads((run / "evaluation.json").read_text())["screening"]["chosen_by"] == "target"


def test_target_shortfall_is_judged_on_the_interval():
    def ev(sens, band, applied=True):
        return {"evaluated_on": "test", "screening": {
            "applied_to_predictions": applied, "target_sensitivity": 0.95,
            "evaluation": {"sensitivity": sens}, "evaluation_ci": {"sensitivity": band}}}

    missed = op.target_shortfall(ev(0.884, [0.799, 0.942]))
    assert missed == {"target": 0.95, "split": "test", "sensitivity": 0.884, "low": 0.799, "high": 0.942,
                      "point_below": True}
    unsure = op.target_shortfall(ev(0.97, [0.90, 0.99]))
    assert unsure and not unsure["point_below"]
    assert op.target_shortfall(ev(0.99, [0.96, 1.0])) is None
    assert op.target_shortfall(ev(0.5, [0.3, 0.7], applied=False)) is None  # not a screening run


def test_cli_threshold_shows_and_saves(tmp_path, capsys):
    from core.cli import main

    run = _synthetic_run(tmp_path)
    assert main(["threshold", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "validation (120 photos" in shown and "test (120 photos" in shown and "sensitivity" in shown
    assert main(["threshold", str(run), "0.8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["threshold"] == 0.8 and out["history"][-1]["where"] == "cli"
    assert json.loads((run / "meta.json").read_text())["threshold"] == 0.8
    assert main(["threshold", str(run), "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the threshold must be a number from 0 to 1") and len(err.splitlines()) == 1
