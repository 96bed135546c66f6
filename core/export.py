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
import torch

from core import runs
from core.errors import LatihError, RunError
from core.evaluate import evaluate_run
from core.model_card import preprocessing
from core.runs import image_size_of, load_run, resolve_run_dir
from core.i18n import Msg

log = logging.getLogger(__name__)

ONNX_OPSET = 17
PARITY_ATOL = 1e-3  # float32 kernels differ slightly between runtimes; real bugs are >> this


# ---------------------------------------------------------------------------------------
# run folder -> model + preprocessing
# ---------------------------------------------------------------------------------------
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
        raise LatihError(Msg("err.export.differs", what=what, diff=f"{diff:.2g}"))


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
# model card (core.model_card, in the language asked for)
# ---------------------------------------------------------------------------------------
def model_card(run_dir, lang: str | None = None) -> str:
    from core.model_card import model_card as card

    return card(run_dir, lang)


# ---------------------------------------------------------------------------------------
# package + CLI
# ---------------------------------------------------------------------------------------
def _ensure_evaluation(run_dir: Path) -> None:
    if (run_dir / runs.EVALUATION_FILE).exists():
        return
    if not (run_dir / "outputs_val.npz").exists():
        raise RunError(Msg("err.export.not_evaluated", run=run_dir.name))
    log.info("no evaluation.json in %s; evaluating now", run_dir)
    evaluate_run(run_dir)


def export_package(run_dir, out_zip, lang: str | None = None) -> Path:
    """One zip: model.safetensors, model.onnx, config.json, meta.json (with preprocessing),
    evaluation.json, model_card.md (in `lang`, default LATIH_LANG). The ONNX file is checked
    against PyTorch first."""
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
            zf.writestr("model_card.md", model_card(run_dir, lang))
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
