"""Take a model out of Latih: ONNX, TorchScript, or one zip with everything needed to use it.

The package carries the weights, the exact preprocessing, temperature, threshold, the
evaluation and a model card, so the model can be run (and judged) without Latih.
Every exported file is checked against PyTorch on the same inputs before it is handed over.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core import runs
from core.jsonfile import read_json as _read_json
from core.errors import LatihError, RunError
from core.evaluate import evaluate_run
from core.runs import crop_pct_of, image_size_of, load_run, resolve_run_dir

log = logging.getLogger(__name__)

ONNX_OPSET = 17
PARITY_ATOL = 1e-3  # float32 kernels differ slightly between runtimes; real bugs are >> this


# ---------------------------------------------------------------------------------------
# run folder -> model + preprocessing
# ---------------------------------------------------------------------------------------
def preprocessing(meta: dict) -> dict:
    """The eval-time preprocessing as plain numbers, for the package and the model card.

    Mirrors core.augment.build_eval_transform: shorter side to round(size / crop_pct)
    (OpenCV area interpolation when shrinking, bilinear when enlarging), centre crop to size,
    scale to [0, 1], normalise with mean/std, RGB, NCHW.
    """
    size = image_size_of(meta)
    crop_pct = crop_pct_of(meta)
    return {
        "image_size": size, "crop_pct": crop_pct,
        "resize_shorter_side": int(round(size / crop_pct)), "center_crop": size,
        "interpolation": "area when shrinking, bilinear when enlarging",
        "mean": [float(v) for v in meta.get("mean", (0.485, 0.456, 0.406))],
        "std": [float(v) for v in meta.get("std", (0.229, 0.224, 0.225))],
        "channel_order": "RGB", "layout": "NCHW", "scale": "pixel / 255",
    }


def load_model(run_dir) -> torch.nn.Module:
    """The trained model of a run, on CPU in eval mode."""
    return load_run(run_dir).model("cpu").eval()


# ---------------------------------------------------------------------------------------
# ONNX / TorchScript
# ---------------------------------------------------------------------------------------
def _probe_images(image_size: int, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))


def _torch_logits(model, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(images).float().cpu().numpy()


def check_onnx_parity(model, onnx_path, images: torch.Tensor) -> float:
    """Largest |logit difference| between onnxruntime and PyTorch on the same images."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out = session.run(None, {name: images.cpu().numpy().astype(np.float32)})[0]
    return float(np.abs(out - _torch_logits(model, images.cpu())).max())


def check_torchscript_parity(model, ts_path, images: torch.Tensor) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(ts_path), map_location="cpu")
    with torch.no_grad():
        out = loaded(images.cpu()).float().numpy()
    return float(np.abs(out - _torch_logits(model, images.cpu())).max())


def _require_parity(diff: float, what: str) -> None:
    if not diff <= PARITY_ATOL:  # also catches NaN
        raise LatihError(f"The exported {what} model gives different answers from the trained "
                         f"model (largest difference {diff:.2g}); please report this backbone.")


def export_onnx(model, path, image_size: int, check: bool = True) -> Path:
    """ONNX (opset 17, input "image" NCHW float32 with dynamic batch, output "logits")."""
    path = Path(path)
    model = model.cpu().eval()
    dummy = _probe_images(image_size, 1)
    kwargs = dict(opset_version=ONNX_OPSET, input_names=["image"], output_names=["logits"],
                  dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    try:
        # The TorchScript-based exporter works with what is installed (the dynamo exporter
        # needs onnxscript, which Latih does not ship).
        with warnings.catch_warnings():  # the deprecation notice is known; it is a choice
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, dummy, str(path), dynamo=False, **kwargs)
    except Exception as exc:  # exporter failures come as many types (tracer, ONNX checker)
        log.warning("legacy ONNX export failed (%s); trying the dynamo exporter", exc)
        torch.onnx.export(model, (dummy,), str(path), dynamo=True, **kwargs)
    if check:
        _require_parity(check_onnx_parity(model, path, _probe_images(image_size, 2, seed=1)), "ONNX")
    return path


def export_torchscript(model, path, image_size: int, check: bool = True) -> Path:
    """TorchScript by tracing (timm models are trace-safe; scripting many of them is not)."""
    path = Path(path)
    model = model.cpu().eval()
    with torch.no_grad(), warnings.catch_warnings():  # TorchScript is deprecated but still
        warnings.simplefilter("ignore", FutureWarning)  # what many C++/mobile users run
        traced = torch.jit.trace(model, _probe_images(image_size, 1))
    traced.save(str(path))
    if check:
        _require_parity(check_torchscript_parity(model, path, _probe_images(image_size, 2, seed=1)),
                        "TorchScript")
    return path


# ---------------------------------------------------------------------------------------
# model card
# ---------------------------------------------------------------------------------------
def _fmt(v, pct: bool = True) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def _fmt_ci(ci, pct: bool = True) -> str:
    return f"{_fmt(ci[0], pct)} – {_fmt(ci[1], pct)}" if ci else "n/a"


def _split_table(run_dir: Path, evaluation: dict, class_names: list[str]) -> list[str]:
    counts: dict[str, dict[str, int]] = {}
    splits_csv = run_dir / "splits.csv"
    if splits_csv.exists():
        df = pd.read_csv(splits_csv)
        if {"label", "split"} <= set(df.columns):
            counts = {s: g["label"].value_counts().to_dict() for s, g in df.groupby("split")}
    if not counts:  # fall back on what the evaluation saw
        counts = {s: v["per_class"] for s, v in evaluation.get("split_sizes", {}).items()}
    splits = [s for s in ("train", "val", "test") if s in counts] + sorted(set(counts) - {"train", "val", "test"})
    lines = ["| class | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for c in class_names:
        lines.append(f"| {c} | " + " | ".join(str(int(counts[s].get(c, 0))) for s in splits) + " |")
    lines.append("| **total** | " + " | ".join(str(int(sum(counts[s].values()))) for s in splits) + " |")
    return lines


def _findings(run_dir: Path) -> list[str]:
    data = _read_json(run_dir / "findings.json", [], want=None)  # a data-check report, when one was saved
    items = data.get("findings", []) if isinstance(data, dict) else data
    return [f"- data check ({f.get('severity', 'info')}): {f.get('message', '')}"
            for f in items if isinstance(f, dict) and f.get("severity") in ("error", "warning")]


def _metrics_section(ev: dict) -> list[str]:
    m, ci = ev["metrics"], ev.get("ci", {})
    rows = [("accuracy", "accuracy"), ("balanced accuracy", "balanced_accuracy"),
            ("macro-F1", "macro_f1"), ("ROC AUC", "roc_auc")]
    lines = [f"Measured on the **{ev['evaluated_on']}** split ({m['n']} photos); 95% bootstrap intervals.",
             "", "| metric | value | 95% interval |", "|---|---|---|"]
    lines += [f"| {label} | {_fmt(m.get(key))} | {_fmt_ci(ci.get(key))} |" for label, key in rows]
    lines += ["", "| class | precision | recall | F1 | photos |", "|---|---|---|---|---|"]
    lines += [f"| {c['name']} | {_fmt(c['precision'])} | {_fmt(c['recall'])} | {_fmt(c['f1'])} | {c['support']} |"
              for c in m["per_class"]]
    return lines


def _calibration_section(ev: dict) -> list[str]:
    cal = ev.get("calibration") or {}
    return [f"Temperature T = {cal.get('temperature', 1.0):.3f} (fitted on validation). Expected "
            f"calibration error {_fmt(cal.get('ece_before'))} before, {_fmt(cal.get('ece_after'))} after: "
            "a confidence of 80% should be right about 80% of the time."]


def _screening_section(ev: dict) -> list[str]:
    s = ev.get("screening")
    if not s:
        return ["Not a screening model (no positive class)."]
    op, ci = s["evaluation"], s.get("evaluation_ci") or {}
    pos = ev["class_names"][s["positive_index"]]
    head = (f"Positive class **{pos}**; threshold {s['threshold']:.4f} on its calibrated probability, "
            f"chosen on validation for sensitivity ≥ {_fmt(s['target_sensitivity'])}.")
    if s.get("chosen_by") == "user":  # moved after training (core.operating_point)
        head = (f"Positive class **{pos}**; threshold {s['threshold']:.4f} on its calibrated probability, "
                f"chosen by a person after training (the target sensitivity ≥ {_fmt(s['target_sensitivity'])} "
                f"gave {s.get('threshold_from_target', float('nan')):.4f} on validation).")
    if not s.get("applied_to_predictions"):
        head += " (Analysis only: no positive class was chosen, predictions use the most likely class.)"
    sens = op.get("sensitivity")
    if sens is not None and sens < s["target_sensitivity"]:
        head += (f" On the {ev['evaluated_on']} photos it caught {_fmt(sens)} of {pos}, below the "
                 "target: expect to miss more than the target allows.")
    lines = [head, "", "| | value | 95% interval |", "|---|---|---|"]
    lines += [f"| {k} | {_fmt(op.get(k))} | {_fmt_ci(ci.get(k))} |" for k in ("sensitivity", "specificity", "ppv", "npv")]
    return lines


def _usage_snippet(meta: dict) -> list[str]:
    pre = preprocessing(meta)
    size, shorter = pre["image_size"], pre["resize_shorter_side"]
    resize = "\n".join([
        f"s = {shorter} / min(img.size)  # shorter side -> {shorter} px, then centre crop {size}",
        "img = img.resize((round(img.width * s), round(img.height * s)),",
        "                 Image.HAMMING if s < 1 else Image.BILINEAR)  # ~ OpenCV area / linear",
        f"left, top = (img.width - {size}) // 2, (img.height - {size}) // 2",
        f"img = img.crop((left, top, left + {size}, top + {size}))",
    ])
    thr, positive = meta.get("threshold"), meta.get("positive_class")
    decide = "\n".join([
        f"pos = CLASSES.index({positive!r})  # screening: flag when p(positive) >= threshold",
        "others = p.copy(); others[pos] = -1",
        f"label = CLASSES[pos] if p[pos] >= {thr!r} else CLASSES[int(others.argmax())]",
    ]) if thr is not None and positive else "label = CLASSES[int(p.argmax())]"
    return ["```python", "import numpy as np, onnxruntime as ort", "from PIL import Image", "",
            f"CLASSES = {list(meta.get('class_names', []))!r}",
            f"MEAN, STD, T = np.array({pre['mean']!r}), np.array({pre['std']!r}), {float(meta.get('temperature') or 1.0)!r}",
            "", 'img = Image.open("photo.jpg").convert("RGB")', resize,
            "x = ((np.asarray(img, dtype=np.float32) / 255 - MEAN) / STD).astype(np.float32)",
            "x = x.transpose(2, 0, 1)[None]  # HWC -> NCHW, batch of one",
            'logits = ort.InferenceSession("model.onnx").run(None, {"image": x})[0][0]',
            "z = logits / T  # temperature scaling: calibrated probabilities",
            "p = np.exp(z - z.max()); p /= p.sum()", decide, "print(label, float(p.max()))", "```"]


def model_card(run_dir) -> str:
    """Markdown model card: data, model, metrics with intervals, calibration, limits, usage."""
    run_dir = Path(run_dir)
    meta = runs.read_json_required(run_dir / runs.META_FILE)
    config = runs.read_json(run_dir / runs.CONFIG_FILE) or {}
    ev = runs.read_json_required(run_dir / runs.EVALUATION_FILE)
    classes = list(meta.get("class_names", []))
    warnings_ = [f"- data check: {w}" for w in meta.get("data_warnings") or [] if isinstance(w, str)]
    limits = [f"- {n}" for n in ev.get("notes", [])] + _findings(run_dir) + warnings_ + [
        "- Distribution shift: the numbers hold for photos like the training photos (same "
        "camera, lighting, population). New clinics, phones or fields can be much worse; check "
        "on a few labelled photos from the new setting first.",
        "- Photos flagged as unusual (out-of-distribution check) should be looked at by a person; "
        f"about {100 - float((meta.get('ood') or {}).get('percentile', 95)):.0f}% of ordinary photos are flagged too."]
    lines = [f"# Model card: {run_dir.name}", "",
             "## Intended use",
             "Decision support for sorting photos into the classes below. Not a diagnosis: a "
             "trained person reviews the results, especially low-confidence and flagged photos.", "",
             "## Data", "Photos per class and split:", "", *_split_table(run_dir, ev, classes), "",
             "## Model",
             f"Backbone `{meta.get('backbone', config.get('backbone', '?'))}`, training strategy "
             f"`{config.get('strategy', meta.get('strategy', '?'))}`, weights `{config.get('weights', '?')}`, "
             f"input {image_size_of(meta)} px, best epoch {meta.get('best_epoch', '?')}.", "",
             "## Performance", *_metrics_section(ev), "",
             "## Calibration", *_calibration_section(ev), "",
             "## Screening operating point", *_screening_section(ev), "",
             "## Known limits", *limits, "",
             "## How to run the ONNX model",
             "Needs `pip install onnxruntime pillow numpy`. The preprocessing is the one used in "
             "training (Latih resizes with OpenCV; PIL's HAMMING filter matches its area "
             "interpolation to within about one grey level — use `cv2.resize(..., "
             "interpolation=cv2.INTER_AREA)` for bit-exact input).", "", *_usage_snippet(meta), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# package + CLI
# ---------------------------------------------------------------------------------------
def _ensure_evaluation(run_dir: Path) -> None:
    if (run_dir / "evaluation.json").exists():
        return
    if not (run_dir / "outputs_val.npz").exists():
        raise RunError(f"Run {run_dir.name} has not been evaluated and has no saved outputs; "
                       "train it again before exporting.")
    log.info("no evaluation.json in %s; evaluating now", run_dir)
    evaluate_run(run_dir)


def export_package(run_dir, out_zip) -> Path:
    """One zip: model.safetensors, model.onnx, config.json, meta.json (with preprocessing),
    evaluation.json, model_card.md. The ONNX file is checked against PyTorch first."""
    run_dir, out_zip = Path(run_dir), Path(out_zip)
    _ensure_evaluation(run_dir)
    meta = runs.read_json_required(run_dir / runs.META_FILE)
    meta_out = {**meta, "preprocessing": preprocessing(meta)}
    meta_out.pop("ood", None)  # its arrays live in the run folder, not in the package
    model = load_model(run_dir)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", image_size_of(meta))
        partial = out_zip.with_name(out_zip.name + ".partial")
        from core.diskspace import partial_file

        with partial_file(partial, (run_dir / "model.safetensors").stat().st_size * 2), \
                zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.write(run_dir / "model.safetensors", "model.safetensors")
            zf.write(onnx_path, "model.onnx")
            zf.writestr(runs.CONFIG_FILE, json.dumps(runs.read_json(run_dir / runs.CONFIG_FILE) or {}, indent=2))
            zf.writestr(runs.META_FILE, json.dumps(meta_out, indent=2))
            zf.write(run_dir / runs.EVALUATION_FILE, runs.EVALUATION_FILE)
            zf.writestr("model_card.md", model_card(run_dir))
        partial.replace(out_zip)
    return out_zip


def export_path(run_dir: Path, out: str | None, suffix: str) -> Path:
    """Where an export goes: --out as given (a folder gets <run id><suffix> inside it), else the
    run's own exports/ folder, so a model never lands in whatever folder the shell was in."""
    name = f"{run_dir.name}{suffix}"
    if not out:
        return run_dir / "exports" / name
    path = Path(out).expanduser()
    return path / name if path.is_dir() or out.endswith(("/", "\\")) else path


def _export_command(args: argparse.Namespace) -> int:
    run_dir = resolve_run_dir(args.run)
    suffix = {"onnx": ".onnx", "torchscript": ".pt", "package": ".zip"}[args.format]
    out = export_path(run_dir, args.out, suffix)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "package":
        export_package(run_dir, out)
        print(f"wrote {out}")
        return 0
    meta = runs.read_json_required(run_dir / runs.META_FILE)
    model, size = load_model(run_dir), image_size_of(meta)
    probe = _probe_images(size, 2, seed=1)
    if args.format == "onnx":
        diff = check_onnx_parity(model, export_onnx(model, out, size), probe)
    else:
        diff = check_torchscript_parity(model, export_torchscript(model, out, size), probe)
    print(f"wrote {out} (largest logit difference vs PyTorch: {diff:.2e})")
    return 0


def register_export_command(subparsers) -> argparse.ArgumentParser:
    """Adds `latih export RUN --format onnx|torchscript|package [--out PATH]`."""
    parser = subparsers.add_parser("export", help="export a trained run (ONNX, TorchScript or a zip package)",
                                   description="Export a trained run. The package zip holds the model, "
                                               "ONNX file, preprocessing, evaluation and a model card.")
    parser.add_argument("run", help="run folder or run id")
    parser.add_argument("--format", choices=("onnx", "torchscript", "package"), default="package")
    parser.add_argument("--out", default=None, help="output file or folder (default: the run's exports/ folder)")
    parser.set_defaults(func=_export_command)
    return parser
