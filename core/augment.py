"""Photo augmentation presets (albumentations 2.x).

Every pipeline takes an HxWx3 uint8 RGB array and returns a CHW float tensor normalised with
the backbone's mean/std. Evaluation follows timm's convention: resize the shorter side to
image_size / crop_pct (crop_pct 0.875 -> 256 for 224) and take the centre square, so the
model sees photos framed the way its pretrained weights expect.

`preview` runs the same random steps without normalisation so the app can show a grid of
what the model will see.
"""
from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2
from PIL import Image

from core.errors import LatihError
from core.i18n import Msg

PRESETS = ("none", "light", "medium", "heavy", "fundus", "leaf")
DEFAULT_CROP_PCT = 0.875

PRESET_HELP = {
    "none": "No changes: every photo is shown as it is (resized and centre-cropped).",
    "light": "Small crops, left-right flips and slight light changes; safe for almost any photo.",
    "medium": "Adds small turns, shifts and colour changes; good when you have under 500 photos.",
    "heavy": "Strong crops, turns, blur and hidden patches; for very few photos, may slow learning.",
    "fundus": "For retina photos: any rotation and flips, brightness changes, no colour shift, "
              "whole eye kept (no cropping that could cut the optic disc).",
    "leaf": "For leaves and plants: flips, quarter turns, shadows, mild colour and blur changes.",
}

# Downscaling with INTER_AREA avoids the aliasing that plain linear resizing gives big photos.
_AREA = "image"
_BLACK = 0


def _eval_resize(image_size: int, crop_pct: float) -> list[A.BasicTransform]:
    return [
        A.SmallestMaxSize(max_size=int(round(image_size / crop_pct)), area_for_downscale=_AREA),
        A.CenterCrop(height=image_size, width=image_size),
    ]


def _random_crop(image_size: int, scale: tuple[float, float]) -> A.BasicTransform:
    return A.RandomResizedCrop(size=(image_size, image_size), scale=scale, area_for_downscale=_AREA)


def _light(size: int) -> list[A.BasicTransform]:
    # Why scale from 0.6: with (0.8, 1.0) a photo wider than 4:3 rarely fits a crop of ratio
    # 3/4..4/3 that large, and RandomResizedCrop then falls back to the same centre crop: half
    # the "variants" were the original's centre (measured on hymenoptera: 4 of 28 pairs equal).
    return [_random_crop(size, (0.6, 1.0)), A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5)]


def _medium(size: int) -> list[A.BasicTransform]:
    return [
        _random_crop(size, (0.6, 1.0)),
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-15, 15),
                 border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
    ]


def _heavy(size: int) -> list[A.BasicTransform]:
    return [
        _random_crop(size, (0.35, 1.0)),
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(0.8, 1.2), translate_percent=(-0.1, 0.1), rotate=(-30, 30),
                 border_mode=cv2.BORDER_REFLECT_101, p=0.7),
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=0.8),
        A.GaussianBlur(blur_limit=(3, 7), p=0.2),
        A.CoarseDropout(num_holes_range=(1, 4), hole_height_range=(0.05, 0.2),
                        hole_width_range=(0.05, 0.2), fill=_BLACK, p=0.5),
    ]


def _fundus(size: int) -> list[A.BasicTransform]:
    # Framed exactly like evaluation (no random crop: it could cut off the optic disc);
    # the eye is round on a black background, so any rotation with black fill is natural.
    # No hue or saturation change: colour (haemorrhages, exudates, pallor) is diagnostic.
    return _eval_resize(size, DEFAULT_CROP_PCT) + [
        A.Rotate(limit=(-180, 180), border_mode=cv2.BORDER_CONSTANT, fill=_BLACK, p=1.0),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.Affine(scale=(0.95, 1.05), translate_percent=(-0.02, 0.02),
                 border_mode=cv2.BORDER_CONSTANT, fill=_BLACK, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.7),
        A.RandomGamma(gamma_limit=(80, 120), p=0.5),
    ]


def _leaf(size: int) -> list[A.BasicTransform]:
    # Leaves have no "up", so every quarter turn and flip is a valid new photo.
    return [
        _random_crop(size, (0.7, 1.0)),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=0.5),
        A.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.15, hue=0.02, p=0.5),
        A.RandomShadow(p=0.3),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        A.GaussianBlur(blur_limit=(3, 5), p=0.2),
    ]


_BUILDERS = {
    "none": lambda size: _eval_resize(size, DEFAULT_CROP_PCT),
    "light": _light,
    "medium": _medium,
    "heavy": _heavy,
    "fundus": _fundus,
    "leaf": _leaf,
}


def _steps(preset: str, image_size: int) -> list[A.BasicTransform]:
    if preset not in _BUILDERS:
        raise LatihError(Msg("err.augment.unknown", preset=repr(preset), choices=', '.join(PRESETS)))
    return _BUILDERS[preset](image_size)


def _to_tensor(mean, std) -> list[A.BasicTransform]:
    return [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()]


def build_train_transform(preset: str, image_size: int, mean, std) -> A.Compose:
    """Random augmentation for training; preset "none" is the evaluation pipeline."""
    return A.Compose(_steps(preset, image_size) + _to_tensor(mean, std))


def build_eval_transform(image_size: int, mean, std, crop_pct: float = DEFAULT_CROP_PCT) -> A.Compose:
    """Deterministic: shorter side to image_size / crop_pct, centre crop, normalise."""
    return A.Compose(_eval_resize(image_size, crop_pct) + _to_tensor(mean, std))


def _as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:  # greyscale: repeat into three channels like the loader does
        array = np.repeat(array[..., None], 3, axis=2)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise LatihError(Msg("err.augment.bad_array", shape=str(array.shape), dtype=str(array.dtype)))
    return array


def preview(image: Image.Image | np.ndarray, preset: str, image_size: int, n: int = 8,
            seed: int = 0) -> list[np.ndarray]:
    """n augmented versions (uint8 HxWx3, not normalised); the same seed gives the same grid."""
    pipeline = A.Compose(_steps(preset, image_size), seed=seed)
    array = _as_rgb_array(image)
    return [pipeline(image=array)["image"] for _ in range(n)]
