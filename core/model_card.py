"""The model card of a run (Markdown), in the language asked for: data, model, metrics with
intervals, calibration, the screening operating point, known limits, and how to run the ONNX
model. Every sentence comes from the catalogue (`card.*`, core.i18n); the code snippet and
the numbers are the same in every language. core.export puts it in the package as model_card.md.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.i18n import from_json, local_number, process_lang, render, tr
from core.runs import image_size_of


def _read_json(path: Path, default=None):
    from core.export import _read_json as read

    return read(path, default)


def preprocessing(meta: dict) -> dict:
    from core.export import preprocessing as pre

    return pre(meta)


def _fmt(v, pct: bool = True, lang: str | None = None) -> str:
    if v is None:
        return tr("card.na", lang)
    return local_number(f"{100 * v:.1f}%" if pct else f"{v:.3f}", lang or process_lang())


def _fmt_ci(ci, lang: str | None, pct: bool = True) -> str:
    return f"{_fmt(ci[0], pct, lang)} – {_fmt(ci[1], pct, lang)}" if ci else tr("card.na", lang)


def _split_name(split: str, lang: str | None) -> str:
    return tr(f"card.split.{split}", lang) if split in ("train", "val", "test") else str(split)


def _split_table(run_dir: Path, evaluation: dict, class_names: list[str], lang: str | None) -> list[str]:
    counts: dict[str, dict[str, int]] = {}
    splits_csv = run_dir / "splits.csv"
    if splits_csv.exists():
        df = pd.read_csv(splits_csv)
        if {"label", "split"} <= set(df.columns):
            counts = {s: g["label"].value_counts().to_dict() for s, g in df.groupby("split")}
    if not counts:  # fall back on what the evaluation saw
        counts = {s: v["per_class"] for s, v in evaluation.get("split_sizes", {}).items()}
    splits = [s for s in ("train", "val", "test") if s in counts] + sorted(set(counts) - {"train", "val", "test"})
    lines = [f"| {tr('card.col_class', lang)} | " + " | ".join(_split_name(s, lang) for s in splits) + " |",
             "|---" * (len(splits) + 1) + "|"]
    for c in class_names:
        lines.append(f"| {c} | " + " | ".join(str(int(counts[s].get(c, 0))) for s in splits) + " |")
    lines.append(f"| **{tr('card.total', lang)}** | " + " | ".join(str(int(sum(counts[s].values()))) for s in splits)
                 + " |")
    return lines


def _findings(run_dir: Path, lang: str | None) -> list[str]:
    data = _read_json(run_dir / "findings.json", default=[]) if (run_dir / "findings.json").exists() else []
    items = data.get("findings", []) if isinstance(data, dict) else data
    return [tr("card.finding", lang, severity=tr(f"cli.severity.{f.get('severity', 'info')}", lang),
               message=render(f.get("message_i18n") or f.get("message", ""), lang))
            for f in items if isinstance(f, dict) and f.get("severity") in ("error", "warning")]


def _notes(ev: dict, lang: str | None) -> list[str]:
    """The evaluation's notes, from their catalogue keys when evaluation.json has them."""
    coded = ev.get("notes_i18n")
    if isinstance(coded, list) and len(coded) == len(ev.get("notes", [])):
        return [f"- {render(c, lang) if from_json(c) else n}" for c, n in zip(coded, ev.get("notes", []))]
    return [f"- {n}" for n in ev.get("notes", [])]


def _metrics_section(ev: dict, lang: str | None) -> list[str]:
    m, ci = ev["metrics"], ev.get("ci", {})
    rows = [("card.accuracy", "accuracy"), ("card.balanced_accuracy", "balanced_accuracy"),
            ("card.macro_f1", "macro_f1"), ("metric.roc_auc", "roc_auc")]
    lines = [tr("card.measured_on", lang, split=_split_name(ev["evaluated_on"], lang), n=m["n"]),
             "", tr("card.metric_header", lang), "|---|---|---|"]
    lines += [f"| {tr(label, lang)} | {_fmt(m.get(key), lang=lang)} | {_fmt_ci(ci.get(key), lang)} |"
              for label, key in rows]
    lines += ["", tr("card.class_header", lang), "|---|---|---|---|---|"]
    lines += [f"| {c['name']} | {_fmt(c['precision'], lang=lang)} | {_fmt(c['recall'], lang=lang)} | "
              f"{_fmt(c['f1'], lang=lang)} | {c['support']} |" for c in m["per_class"]]
    return lines


def _calibration_section(ev: dict, lang: str | None) -> list[str]:
    cal = ev.get("calibration") or {}
    return [tr("card.calibration", lang, t=f"{cal.get('temperature', 1.0):.3f}",
               before=_fmt(cal.get("ece_before"), lang=lang), after=_fmt(cal.get("ece_after"), lang=lang))]


def _screening_section(ev: dict, lang: str | None) -> list[str]:
    s = ev.get("screening")
    if not s:
        return [tr("card.no_screening", lang)]
    op, ci = s["evaluation"], s.get("evaluation_ci") or {}
    pos = ev["class_names"][s["positive_index"]]
    target = _fmt(s["target_sensitivity"], lang=lang)
    head = tr("card.screening_target", lang, positive=pos, threshold=f"{s['threshold']:.4f}", target=target)
    if s.get("chosen_by") == "user":  # moved after training (core.operating_point)
        head = tr("card.screening_user", lang, positive=pos, threshold=f"{s['threshold']:.4f}", target=target,
                  from_target=f"{s.get('threshold_from_target', float('nan')):.4f}")
    if not s.get("applied_to_predictions"):
        head += " " + tr("card.analysis_only", lang)
    sens = op.get("sensitivity")
    if sens is not None and sens < s["target_sensitivity"]:
        head += " " + tr("card.below_target", lang, split=_split_name(ev["evaluated_on"], lang),
                         sens=_fmt(sens, lang=lang), positive=pos)
    lines = [head, "", tr("card.rate_header", lang), "|---|---|---|"]
    lines += [f"| {tr(f'card.rate.{k}', lang)} | {_fmt(op.get(k), lang=lang)} | {_fmt_ci(ci.get(k), lang)} |"
              for k in ("sensitivity", "specificity", "ppv", "npv")]
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




def model_card(run_dir, lang: str | None = None) -> str:
    """Markdown model card in `lang` (default: the process's language, LATIH_LANG)."""
    run_dir = Path(run_dir)
    meta = _read_json(run_dir / "meta.json")
    config = _read_json(run_dir / "config.json", default={}) if (run_dir / "config.json").exists() else {}
    ev = _read_json(run_dir / "evaluation.json")
    classes = list(meta.get("class_names", []))
    warnings_ = [tr("card.data_warning", lang, message=w) for w in meta.get("data_warnings") or [] if isinstance(w, str)]
    flagged = f"{100 - float((meta.get('ood') or {}).get('percentile', 95)):.0f}"
    limits = _notes(ev, lang) + _findings(run_dir, lang) + warnings_ + [
        "- " + tr("card.shift", lang), "- " + tr("card.ood", lang, pct=flagged)]
    lines = [f"# {tr('card.title', lang, run=run_dir.name)}", "",
             f"## {tr('card.use_title', lang)}", tr("card.use", lang), "",
             f"## {tr('card.data_title', lang)}", tr("card.data", lang), "",
             *_split_table(run_dir, ev, classes, lang), "",
             f"## {tr('card.model_title', lang)}",
             tr("card.model", lang, backbone=meta.get("backbone", config.get("backbone", "?")),
                strategy=config.get("strategy", meta.get("strategy", "?")), weights=config.get("weights", "?"),
                size=image_size_of(meta), epoch=meta.get("best_epoch", "?")), "",
             f"## {tr('card.performance_title', lang)}", *_metrics_section(ev, lang), "",
             f"## {tr('card.calibration_title', lang)}", *_calibration_section(ev, lang), "",
             f"## {tr('card.screening_title', lang)}", *_screening_section(ev, lang), "",
             f"## {tr('card.limits_title', lang)}", *limits, "",
             f"## {tr('card.onnx_title', lang)}", tr("card.onnx", lang), "", *_usage_snippet(meta), ""]
    return "\n".join(lines)


__all__ = ["model_card"]
