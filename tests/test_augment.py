"""Augmentation presets: shapes, dtypes, differences between presets, seeded previews."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from core.augment import PRESET_HELP, PRESETS, build_eval_transform, build_train_transform, preview
from core.errors import LatihError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture
def photo() -> np.ndarray:
    """A non-square photo with structure, so crops, flips and turns all show."""
    y, x = np.mgrid[0:120, 0:160]
    return np.stack([x * 255 // 160, y * 255 // 120, (x + y) % 256], axis=2).astype(np.uint8)


@pytest.mark.parametrize("preset", PRESETS)
def test_train_transform_gives_normalised_chw_tensor(preset, photo):
    tensor = build_train_transform(preset, 64, MEAN, STD)(image=photo)["image"]
    assert isinstance(tensor, torch.Tensor)
    assert tensor.shape == (3, 64, 64) and tensor.dtype == torch.float32
    assert tensor.min() < 0  # normalised, not 0..1 or 0..255


def test_eval_transform_is_deterministic_and_equals_preset_none(photo):
    evaluate = build_eval_transform(64, MEAN, STD)
    first, second = evaluate(image=photo)["image"], evaluate(image=photo)["image"]
    assert torch.equal(first, second)
    assert torch.equal(first, build_train_transform("none", 64, MEAN, STD)(image=photo)["image"])


def test_presets_differ_from_each_other(photo):
    grids = {p: np.stack(preview(photo, p, 64, n=4, seed=0)) for p in PRESETS}
    for a, b in itertools.combinations(PRESETS, 2):
        assert not np.array_equal(grids[a], grids[b]), f"{a} and {b} give the same photos"


def test_preview_is_deterministic_by_seed(photo):
    first = preview(photo, "medium", 64, n=6, seed=3)
    assert len(first) == 6 and all(a.shape == (64, 64, 3) and a.dtype == np.uint8 for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, preview(photo, "medium", 64, n=6, seed=3)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, preview(photo, "medium", 64, n=6, seed=4)))
    assert len({a.tobytes() for a in first}) > 1  # the n versions are not all the same


def test_preview_accepts_greyscale_pil():
    grey = Image.fromarray(np.full((80, 100), 128, np.uint8), "L")
    assert preview(grey, "leaf", 32, n=2)[0].shape == (32, 32, 3)


def test_fundus_keeps_the_colour_balance(photo):
    # No hue/saturation jitter: the channel order of brightness must survive augmentation.
    tinted = np.zeros((100, 100, 3), np.uint8)
    tinted[..., 0], tinted[..., 1], tinted[..., 2] = 180, 90, 30
    for image in preview(tinted, "fundus", 64, n=8, seed=1):
        lit = image.sum(axis=2) > 0  # ignore the black corners a rotation leaves
        red, green, blue = (image[..., c][lit].mean() for c in range(3))
        assert red > green > blue


def test_unknown_preset_and_help():
    with pytest.raises(LatihError, match="light"):
        build_train_transform("sparkly", 64, MEAN, STD)
    assert set(PRESET_HELP) == set(PRESETS) and all(PRESET_HELP[p] for p in PRESETS)


def test_light_preview_variants_all_differ_on_a_wide_photo():
    """With crops of 80-100% a 3:2 photo rarely fits a 3/4..4/3 crop, and albumentations fell back
    to the same centre crop: several of the eight "variants" were pixel-identical."""
    import numpy as np

    from core.augment import preview

    yy, xx = np.mgrid[0:300, 0:450]
    photo = np.stack([xx * 255 // 450, yy * 255 // 300, (xx // 30 + yy // 30) % 2 * 200], axis=-1).astype(np.uint8)
    shots = preview(photo, "light", image_size=160, n=8, seed=0)
    diffs = [np.abs(shots[i].astype(int) - shots[j].astype(int)).mean() for i in range(8) for j in range(i + 1, 8)]
    assert min(diffs) > 1.0, f"{sum(d == 0 for d in diffs)} of {len(diffs)} pairs of variants are identical"
    assert preview(photo, "light", image_size=160, n=8, seed=0)[3].tobytes() == shots[3].tobytes()  # seeded
