"""Datasets: find photos (ingest), check them (validate), split them (split), feed them (cache).

    df = scan(path)                       # folder or .zip -> one row per file
    findings = check_dataset(df)          # plain-language problems, with one-click fixes
    df = assign_splits(df, 0.2, 0.0, 0)   # stratified, seeded, duplicate-safe
    ds = PhotoDataset(df[df.split == "train"], class_names, transform, ImageCache(None, 256))
"""
from core.data.cache import ImageCache, PhotoDataset
from core.data.ingest import COLUMNS, MAX_PIXELS, load_image, open_source, scan
from core.data.split import assign_splits
from core.data.validate import Finding, check_dataset, drop_files, duplicate_groups, has_errors

__all__ = [
    "COLUMNS", "MAX_PIXELS", "Finding", "ImageCache", "PhotoDataset", "assign_splits", "check_dataset",
    "drop_files", "duplicate_groups", "has_errors", "load_image", "open_source", "scan",
]
