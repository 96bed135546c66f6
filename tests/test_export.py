import argparse
import json
import re
import zipfile

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from core.augment import build_eval_transform
from core.config import TrainConfig
from core.evaluate import evaluate_run
from core.export import (check_onnx_parity, check_torchscript_parity, export_onnx, export_package,
                         export_torchscript, model_card, register_export_command)

SIZE = 64
CLASSES = ["normal", "glaucoma"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False, num_classes=2).eval()


def images(n=4, seed=3):
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def run_dir(tmp_path, model):
    """A finished run folder as train() leaves it, with outputs from the real model."""
    run = tmp_path / "run1"
    run.mkdir()
    TrainConfig(data_path=str(tmp_path), backbone="resnet18", weights="scratch",
                positive_class="glaucoma").to_json(run / "config.json")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(run / "model.safetensors"))
    meta = {"class_names": CLASSES, "backbone": "resnet18", "input_size": [3, SIZE, SIZE],
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "best_epoch": 3,
            "positive_class": "glaucoma"}
    (run / "meta.json").write_text(json.dumps(meta))
    rows = []
    for i, split in enumerate(("train", "val", "test")):
        x = images(40, seed=10 + i)
        y = np.arange(40) % 2
        with torch.no_grad():
            fmap = model.forward_features(x)
            feats, logits = model.forward_head(fmap, pre_logits=True), model.forward_head(fmap)
        paths = np.array([f"/p/{split}/{k}.png" for k in range(40)])
        np.savez(run / f"outputs_{split}.npz", logits=logits.numpy(), labels=y,
                 features=feats.numpy(), paths=paths)
        rows += [{"path": p, "label": CLASSES[c], "split": split} for p, c in zip(paths, y)]
    import pandas as pd
    pd.DataFrame(rows).to_csv(run / "splits.csv", index=False)
    (run / "findings.json").write_text(json.dumps([{"code": "imbalance", "severity": "warning",
                                                    "message": "glaucoma has 3x fewer photos", "files": []}]))
    return run


def test_onnx_and_torchscript_match_pytorch(tmp_path, model):
    onnx_path = export_onnx(model, tmp_path / "m.onnx", SIZE)
    assert check_onnx_parity(model, onnx_path, images(5)) < 1e-4  # dynamic batch: 5 != 1
    ts_path = export_torchscript(model, tmp_path / "m.pt", SIZE)
    assert check_torchscript_parity(model, ts_path, images(3)) < 1e-4


def test_package_zip_holds_everything_and_its_usage_snippet_works(tmp_path, run_dir, model, monkeypatch, capsys):
    out = export_package(run_dir, tmp_path / "pkg.zip")  # evaluates first: no evaluation.json yet
    with zipfile.ZipFile(out) as zf:
        assert set(zf.namelist()) == {"model.safetensors", "config.json", "meta.json",
                                      "evaluation.json", "model_card.md", "model.onnx"}
        zf.extractall(tmp_path / "pkg")
    meta = json.loads((tmp_path / "pkg" / "meta.json").read_text())
    assert meta["preprocessing"]["image_size"] == SIZE and meta["class_names"] == CLASSES
    assert meta["temperature"] > 0 and meta["threshold"] is not None
    assert check_onnx_parity(model, tmp_path / "pkg" / "model.onnx", images()) < 1e-4

    # the card's snippet, copy-pasted, must run and agree with PyTorch
    card = (tmp_path / "pkg" / "model_card.md").read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    yy, xx = np.mgrid[:150, :120] / 150.0  # smooth photo, larger than the input: shrinks
    photo = (np.stack([xx, yy, (xx + yy) / 2], -1) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "pkg" / "photo.png")
    code = code.replace("photo.jpg", "photo.png")
    monkeypatch.chdir(tmp_path / "pkg")
    ns: dict = {}
    exec(code, ns)  # the user's copy-paste must work as written
    T = json.loads((tmp_path / "pkg" / "meta.json").read_text())["temperature"]
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(ns["x"])) / T, 1)[0].numpy()
    assert np.allclose(ns["p"], expected, atol=1e-5)
    assert ns["label"] in CLASSES and ns["label"] in capsys.readouterr().out
    # and its preprocessing is the one training and prediction use
    ref = build_eval_transform(SIZE, meta["mean"], meta["std"], meta["preprocessing"]["crop_pct"])
    assert np.abs(ns["x"][0] - ref(image=photo)["image"].numpy()).mean() < 0.01


def test_model_card_content(run_dir):
    evaluate_run(run_dir, n_boot=100)
    card = model_card(run_dir)
    for text in ("glaucoma", "resnet18", "95% interval", "Temperature T", "sensitivity",
                 "glaucoma has 3x fewer photos", "Distribution shift", "onnxruntime", "0.485"):
        assert text in card, text
    assert "| **total** | 40 | 40 | 40 |" in card


def test_cli_export_command(tmp_path, run_dir, model):
    parser = argparse.ArgumentParser()
    register_export_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", str(run_dir), "--format", "onnx", "--out", str(tmp_path / "x.onnx")])
    assert args.func(args) == 0
    assert check_onnx_parity(model, tmp_path / "x.onnx", images()) < 1e-4


def test_cli_export_goes_to_the_run_folder_or_the_given_folder(tmp_path, run_dir, monkeypatch):
    parser = argparse.ArgumentParser()
    register_export_command(parser.add_subparsers(dest="command"))
    elsewhere = tmp_path / "shell-was-here"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    args = parser.parse_args(["export", str(run_dir), "--format", "torchscript"])
    assert args.func(args) == 0
    assert (run_dir / "exports" / f"{run_dir.name}.pt").is_file()
    assert not list(elsewhere.iterdir())  # nothing written where the shell happened to be
    folder = tmp_path / "usb"
    folder.mkdir()
    args = parser.parse_args(["export", str(run_dir), "--format", "torchscript", "--out", str(folder)])
    assert args.func(args) == 0
    assert (folder / f"{run_dir.name}.pt").is_file()
