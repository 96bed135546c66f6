"""core.run_progress: counted phases, an ETA only once stable, photos per second over real work."""
from __future__ import annotations

import pandas as pd

from core.run_progress import MIN_BATCHES, parse_task, progress_of, stable_eta


def _events(rows):
    return pd.DataFrame(rows)


def _finetune(n_batches=10, upto=3, seconds_per_batch=2.0, jitter=()):
    rows = [{"type": "status", "state": "running", "message": "training started", "time": 100.0},
            {"type": "status", "stage": "finetune", "message": "stage finetune: 4 epochs", "time": 101.0}]
    t = 101.0
    for b in range(1, upto + 1):
        t += seconds_per_batch * (jitter[b - 1] if b - 1 < len(jitter) else 1.0)
        rows.append({"type": "batch", "epoch": 1, "stage": "finetune", "batch": b, "n_batches": n_batches,
                     "loss": 0.5, "time": t})
    return rows


def test_parse_task_names_from_the_engine():
    assert parse_task("features (train)") == ("features", "train")
    assert parse_task("outputs (test)") == ("outputs", "test")
    assert parse_task("reading photos") == ("reading", None)


def test_no_eta_before_enough_batches_then_a_steady_one():
    early = progress_of(_events(_finetune(upto=MIN_BATCHES - 1)), 4)
    assert early.phase == "epoch" and (early.done, early.total) == (MIN_BATCHES - 1, 10)
    assert early.eta is None  # too few batches: no promise yet
    steady = progress_of(_events(_finetune(upto=8)), 4)
    assert steady.eta is not None
    # 40 batches at 2 s: 80 s in all, 16 s done -> 64 s left
    assert abs(steady.eta - 64.0) < 1.0


def test_eta_is_withheld_while_successive_estimates_disagree():
    # the pace doubles at every batch: each new reading predicts a later finish
    rows = _finetune(upto=8, jitter=(1, 1, 1, 1, 1, 4, 8, 16))
    assert stable_eta(rows, 4) is None
    assert progress_of(_events(rows), 4).eta is None


def test_features_phase_is_counted_and_its_rate_counts_only_photos_computed():
    rows = [{"type": "status", "state": "running", "message": "training started", "time": 10.0},
            {"type": "progress", "task": "features (train)", "done": 48, "total": 96, "time": 14.0},
            {"type": "progress", "task": "features (train)", "done": 96, "total": 96, "time": 18.0},
            {"type": "progress", "task": "features (val)", "done": 20, "total": 40, "time": 20.0}]
    now = progress_of(_events(rows), 15)
    assert (now.phase, now.split, now.done, now.total) == ("features", "val", 20, 40)
    assert now.rate == round(116 / 10.0, 1)  # 116 photos computed in 10 s (8 + 2)
    # the head epochs on cached features do not turn into tens of thousands of photos per second
    rows += [{"type": "status", "stage": "head", "time": 22.0},
             {"type": "epoch", "epoch": 1, "stage": "head", "images_per_s": 61640.0, "time": 22.01}]
    assert progress_of(_events(rows), 15).rate == now.rate


def test_stopping_replaces_the_epoch_phase_and_hides_the_eta():
    now = progress_of(_events(_finetune(upto=8)), 4, stopping=True)
    assert now.phase == "stopping" and now.eta is None


def test_starting_is_counted_from_the_photo_count():
    now = progress_of(pd.DataFrame(), 15, n_photos=398)
    assert now.phase == "starting" and (now.done, now.total) == (0, 398) and now.counted


def test_last_batch_of_a_finetune_epoch_means_validation():
    now = progress_of(_events(_finetune(n_batches=4, upto=4)), 4)
    assert now.phase == "validation"


def test_validation_pass_is_counted_for_the_epoch_it_checks():
    rows = _finetune(n_batches=4, upto=4) + [
        {"type": "progress", "task": "validation", "done": 8, "total": 20, "time": 120.0}]
    now = progress_of(_events(rows), 4)
    assert (now.phase, now.epoch, now.done, now.total) == ("validation", 1, 8, 20)
