"""CUDA out-of-memory during a batch halves the batch and the run goes on (simulated on the CPU).

The error is raised from the model's own forward pass on its first calls, the way a GPU
raises it when a batch does not fit; no GPU is needed.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from core.oom import MicroBatches, OutOfMemory, is_out_of_memory


class OomOnFirstCalls(nn.Module):
    """A small linear model whose forward raises CUDA OOM for batches larger than `fits`."""

    def __init__(self, fits: int):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(6, 3)
        self.fits = fits
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if len(x) > self.fits:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(x)} MiB")
        return self.linear(x)


def run_batch(model, batches: MicroBatches, x, y):
    def forward_backward(images, labels, weight):
        logits = model(images)
        loss = nn.functional.cross_entropy(logits, labels)
        (loss * weight).backward()
        return loss.item(), logits.detach()

    return batches.run(x, y, forward_backward, lambda: model.zero_grad(set_to_none=True))


def test_out_of_memory_halves_the_parts_and_gives_the_full_batch_gradient():
    x, y = torch.randn(16, 6, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3
    reference = OomOnFirstCalls(fits=100)
    loss_ref, logits_ref = run_batch(reference, MicroBatches(16), x, y)
    halved = []
    model = OomOnFirstCalls(fits=5)  # 16 and 8 do not fit, 4 does
    batches = MicroBatches(16, on_halve=halved.append)
    loss, logits = run_batch(model, batches, x, y)
    assert halved == [8, 4] and batches.size == 4 and batches.halvings == 2
    assert loss == pytest.approx(loss_ref, rel=1e-5)
    torch.testing.assert_close(logits, logits_ref)
    # the failed attempts left no gradient behind: the parts add up to the full batch's gradient
    torch.testing.assert_close(model.linear.weight.grad, reference.linear.weight.grad)
    model.fits = 100  # the size stays halved for the rest of the run (no retry of a size that failed)
    calls = model.calls
    run_batch(model, batches, x, y)
    assert model.calls - calls == 4


def test_other_errors_are_not_taken_for_out_of_memory():
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("shape mismatch")

    model = Broken()
    with pytest.raises(ValueError, match="shape mismatch"):
        MicroBatches(8).run(torch.zeros(8, 2), torch.zeros(8, dtype=torch.long),
                            lambda i, l, w: (model(i), None), lambda: None)
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("expected scalar type Float"))


def test_one_photo_that_does_not_fit_is_a_plain_error():
    model = OomOnFirstCalls(fits=0)
    with pytest.raises(OutOfMemory, match="smaller image size"):
        run_batch(model, MicroBatches(4), torch.randn(4, 6), torch.zeros(4, dtype=torch.long))


def _small_full_run(make_dataset, workspace, monkeypatch):
    """Two epochs of full fine-tuning, batch 8, on 10 tiny photos (the evaluation report skipped)."""
    from core import train as train_module
    from core.config import TrainConfig

    monkeypatch.setattr(train_module, "_evaluate", lambda run_dir: (None, ""))
    data = make_dataset(("red", "green"), n=10)
    config = TrainConfig(data_path=str(data), strategy="full", image_size=64, epochs=2, batch_size=8, lr=1e-3,
                         augment="none", val_fraction=0.25, early_stopping_patience=0)
    return train_module.train(config, workspace=workspace)


def test_cuda_oom_during_a_batch_halves_the_batch_and_the_run_finishes(make_dataset, workspace, monkeypatch):
    from core import train as train_module
    from core.runs import read_metrics, read_status

    real_build = train_module.build_model
    calls = {"n": 0}

    def build_with_oom_on_first_calls(config, n_classes, ws=None):
        model, prep = real_build(config, n_classes, ws)
        forward = model.forward

        def forward_or_oom(x):  # the training pass goes through forward(); validation does not
            calls["n"] += 1
            if calls["n"] <= 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return forward(x)

        model.forward = forward_or_oom
        return model, prep

    monkeypatch.setattr(train_module, "build_model", build_with_oom_on_first_calls)
    result = _small_full_run(make_dataset, workspace, monkeypatch)
    assert result.status == "done" and result.best_epoch is not None
    epochs = read_metrics(result.run_dir).to_dict("records")
    assert [row["batch_part"] for row in epochs] == [2, 2]  # 8 -> 4 -> 2 after two out-of-memory errors
    status = read_status(result.run_dir)
    assert status["state"] == "done" and status["batch_part"] == 2 and status["batch_size"] == 8
    log_text = (result.run_dir / "train.log").read_text(encoding="utf-8")
    assert "out of GPU memory" in log_text and "parts of 2" in log_text


def test_fine_tune_step_clears_the_last_batch_gradients_even_when_a_batch_is_halved():
    """FineTuneStep clears gradients after the forward pass (faster on the CPU); each step must
    still apply exactly its own batch's gradient, after an out-of-memory retry too."""
    from core.finetune_step import FineTuneStep
    from core.precision import Precision

    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(8, 6, generator=g), torch.arange(8) % 3) for _ in range(3)]

    def sgd_steps(model, use_step: bool):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        step = FineTuneStep(model, optimizer, nn.functional.cross_entropy, Precision("cpu", None, False), 8)
        for x, y in batches:
            if use_step:
                step(x, y)
            else:  # the textbook step, one batch's gradient at a time
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
        return model.linear.weight.detach().clone()

    expected = sgd_steps(OomOnFirstCalls(fits=100), use_step=False)
    assert torch.allclose(sgd_steps(OomOnFirstCalls(fits=100), use_step=True), expected, atol=1e-6)
    halved = OomOnFirstCalls(fits=100)
    halved.fits = 4  # every batch of 8 fails once, then runs as two parts of 4
    assert torch.allclose(sgd_steps(halved, use_step=True), expected, atol=1e-6)


def test_a_pass_without_gradients_runs_again_with_half_the_batch_until_it_fits(caplog):
    from core.oom import halving_on_oom

    sizes = []

    def run(size):
        sizes.append(size)
        if size > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return f"done in parts of {size}"

    assert halving_on_oom(run, 32, "validation") == "done in parts of 4"
    assert sizes == [32, 16, 8, 4]
    assert "out of GPU memory during validation" in caplog.text
    with pytest.raises(ValueError):  # other errors are not retried
        halving_on_oom(lambda size: (_ for _ in ()).throw(ValueError("bad photo")), 8, "validation")
    with pytest.raises(OutOfMemory, match="one photo at a time"):
        halving_on_oom(lambda size: run(99), 2, "validation")


def test_out_of_memory_in_validation_too_finishes_the_run(make_dataset, workspace, monkeypatch):
    """Validation and the outputs run without gradients at the training batch size: a batch that
    only fits in halves must not lose the run there either, and the model must go back to
    training mode after a failed validation pass (BatchNorm would otherwise stop learning)."""
    from core import train as train_module
    from core.runs import read_metrics

    real_build = train_module.build_model
    modes_in_validation, modes_after_validation = [], []

    def build_that_fits_two(config, n_classes, ws=None):
        model, prep = real_build(config, n_classes, ws)
        features = model.forward_features

        def features_or_oom(x):  # training (forward) and validation (forward_features) both come here
            if len(x) > 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            if not torch.is_grad_enabled():
                modes_in_validation.append(model.training)
            return features(x)

        model.forward_features = features_or_oom
        return model, prep

    from core.loop import Trainer

    real_validate = Trainer._validate_photos

    def validate_and_note_the_mode(self):
        scores = real_validate(self)
        modes_after_validation.append(self.model.training)
        return scores

    monkeypatch.setattr(train_module, "build_model", build_that_fits_two)
    monkeypatch.setattr(Trainer, "_validate_photos", validate_and_note_the_mode)
    result = _small_full_run(make_dataset, workspace, monkeypatch)
    assert result.status == "done" and result.best_epoch is not None
    epochs = read_metrics(result.run_dir).to_dict("records")
    assert [row["batch_part"] for row in epochs] == [2, 2]
    assert all(row["val_acc"] is not None for row in epochs)
    assert all(0 <= row["data_wait_s"] <= row["seconds"] for row in epochs)  # time waiting for the loader
    log_text = (result.run_dir / "train.log").read_text(encoding="utf-8")
    assert "out of GPU memory during a pass over the photos" in log_text
    assert modes_in_validation and not any(modes_in_validation)  # eval mode inside the pass
    assert modes_after_validation == [True, True]  # and training mode again after it, retried or not
