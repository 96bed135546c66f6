"""Datasets: find photos (scan, layout, archives, decode), check them (validate, copies), split them (split), feed them (cache).

    df = scan(path)                       # core.data.scan.scan: folder or .zip -> one row per file
    findings = check_dataset(df)          # plain-language problems, with one-click fixes
    pairs = find_pairs(df)                # confirmed copy pairs (core.data.copies)
    df = assign_splits(df, 0.2, 0.0, 0)   # stratified, seeded, copy-safe
    ds = PhotoDataset(df[df.split == "train"], class_names, transform, ImageCache(None, 256))

Names are imported on first use, so that `latih data check` never imports torch (cache.py
needs it; it costs ~700 MB of memory).
"""
from importlib import import_module

_HOMES = {
    "ImageCache": "cache", "PhotoDataset": "cache",
    "COLUMNS": "scan_cache", "MAX_PIXELS": "decode", "load_image": "decode", "open_source": "scan",
    "assign_splits": "split",
    "Finding": "findings", "check_dataset": "validate", "drop_files": "validate", "duplicate_groups": "validate",
    "has_errors": "findings",
    "find_pairs": "copies",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(f"core.data.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'core.data' has no attribute {name!r}")
