"""Opening photos: full decoding (truncated files caught), the pixel limit against decompression
bombs, HEIC through pillow-heif, RGB conversion, and the per-file description scan caches
(size, mode, sha1 of the bytes, perceptual hash of the pixels)."""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import DataError, os_reason
from core.i18n import DEFAULT_LANG, Msg, tr

logger = logging.getLogger(__name__)

try:  # HEIC/HEIF (what phones take) through pillow-heif's PIL plugin
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # declared in pyproject; without it HEIC photos get a plain message
    HEIF_SUPPORTED = False
    logger.warning("pillow-heif is not installed: HEIC/HEIF photos cannot be read")
HEIF_SUFFIXES = (".heic", ".heif", ".hif")

# Above this many pixels a photo is refused: decoding it could exhaust memory (PIL's own
# default). Tests lower it with monkeypatch.
MAX_PIXELS = 89_478_485

NOT_IMAGE = "not an image"


@dataclass
class PhotoInfo:
    """What scan learns about one file (one row of the table, minus path/label/split)."""

    width: int = 0
    height: int = 0
    mode: str = ""
    sha1: str = ""
    phash: str = ""
    readable: bool = False
    error: str = ""



def _check_pixel_limit(img: Image.Image) -> None:
    pixels = img.width * img.height
    if pixels > MAX_PIXELS:
        raise DataError(_too_large_message(pixels))


def _too_large_message(pixels: int) -> str:
    return Msg.english("decode.too_large", mp=f"{pixels / 1e6:.0f}", limit=f"{MAX_PIXELS / 1e6:.0f}")


def _decode(data: bytes, draft_size: int | None = None) -> Image.Image:
    """Open and fully decode image bytes; raise DataError with a plain reason if that fails."""
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; a bomb must be refused.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            _check_pixel_limit(img)
            if draft_size:
                img.draft("RGB", (draft_size, draft_size))  # JPEG only: decode at reduced scale
            img.load()  # full decode: a truncated file fails here, not later in training
            return img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(_too_large_message(_pixels_in_message(str(exc)))) from None
    except UnidentifiedImageError:
        if not HEIF_SUPPORTED and data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftypheif"):
            raise DataError(Msg.english("decode.heif_missing")) from None
        raise DataError(Msg.english("decode.not_image")) from None  # starts with NOT_IMAGE
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise DataError(Msg.english("decode.truncated")) from None
        raise DataError(Msg.english("decode.unsupported", detail=str(exc))) from None
    except (SyntaxError, ValueError, EOFError) as exc:  # raised by some PIL decoders on bad data
        raise DataError(Msg.english("decode.damaged", detail=str(exc))) from None


# Read errors kept in the scan table (and its cache) are English data (Msg.english); these are
# the catalogue texts they can be, so stored_error() can show them in the user's language.
STORED_ERROR_KEYS = ("decode.too_large", "decode.heif_missing", "decode.not_image", "decode.truncated",
                     "decode.unsupported", "decode.damaged", "decode.colour", "decode.read_failed",
                     "decode.unexpected", "decode.cannot_read")


@lru_cache(maxsize=None)
def _stored_patterns() -> tuple[tuple[str, re.Pattern], ...]:
    out = []
    for key in STORED_ERROR_KEYS:
        parts = re.split(r"\{(\w+)\}", tr(key, DEFAULT_LANG))
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.*?)" for i, p in enumerate(parts))
        out.append((key, re.compile(regex + r"\Z", re.S)))
    return tuple(out)


def stored_error(text: str) -> str:
    """A photo's read error as the scan table keeps it (English) as a Msg again, so pages and the
    CLI say it in the user's language; the text as it is when no catalogue text fits it (logged)."""
    if not text or isinstance(text, Msg):
        return text
    for key, pattern in _stored_patterns():
        match = pattern.match(text)
        if match:
            return Msg(key, **match.groupdict())
    named = re.match(r"(?P<name>[^:]+): (?P<error>.+)\Z", text, re.S)
    if named:
        inner = stored_error(named.group("error"))
        if isinstance(inner, Msg):
            return Msg("decode.named", name=named.group("name"), error=inner)
    logger.info("photo error in no catalogue text: %r", text[:200])
    return text


def _pixels_in_message(message: str) -> int:
    """PIL says "Image size (400000000 pixels) exceeds limit ..."; 0 if it ever words it otherwise."""
    match = re.search(r"\((\d+) pixels\)", message)
    return int(match.group(1)) if match else 0


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: transparency composited on white, 16-bit scaled to 8 bits."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        # Full 16-bit range -> 8 bits (65535 / 257 = 255), like every viewer does.
        arr = (np.asarray(img, dtype=np.uint16) // 257).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    elif img.mode in ("I", "F"):
        # 32-bit int/float has no fixed range: stretch this photo's min..max to 0..255.
        arr = np.asarray(img, dtype=np.float64)
        low, high = float(arr.min()), float(arr.max())
        arr = (arr - low) / (high - low) * 255 if high > low else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def _decode_rgb(data: bytes, draft_size: int | None = None) -> tuple[Image.Image, str]:
    """(RGB image with EXIF orientation applied, original PIL mode)."""
    img = _decode(data, draft_size)
    mode = img.mode
    try:
        return to_rgb(ImageOps.exif_transpose(img)), mode
    except (OSError, ValueError, SyntaxError) as exc:  # odd modes (LAB, HSV) or broken EXIF
        raise DataError(Msg.english("decode.colour", mode=mode, detail=str(exc))) from None


def decode_bytes(data: bytes, name: str = "photo", draft_size: int | None = None) -> Image.Image:
    """Photo bytes (an upload) as upright RGB through the same decoder as scanning; DataError if unusable."""
    try:
        return _decode_rgb(data, draft_size)[0]
    except DataError as exc:
        raise DataError(Msg.english("decode.named", name=name, error=exc.args[0])) from None


def load_image(path: str | os.PathLike, *, draft_size: int | None = None) -> Image.Image:
    """A photo as an RGB PIL image, upright (EXIF), whatever its mode; DataError if unusable.

    `draft_size` lets JPEGs decode at a reduced scale whose sides stay >= draft_size (fast
    for thumbnails and the cache); None decodes at full size.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(Msg.english("decode.cannot_read", path=str(path), reason=os_reason(exc))) from None
    try:
        return _decode_rgb(data, draft_size)[0]
    except DataError as exc:
        raise DataError(Msg.english("decode.named", name=Path(path).name, error=exc.args[0])) from None


def perceptual_hash(img: Image.Image) -> str:
    """imagehash.phash as hex, after a cheap box reduction (phash only looks at 32x32 anyway;
    this makes hashing 5x faster on large photos and barely changes the hash)."""
    factor = max(1, min(img.size) // 128)
    return str(imagehash.phash(img.reduce(factor) if factor > 1 else img))


def describe_file(path: str | os.PathLike) -> PhotoInfo:
    """Decode one file and describe it; never raises for a bad file (the row says why)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        logger.warning("cannot read %s: %s", path, exc)
        return PhotoInfo(error=Msg.english("decode.read_failed", reason=os_reason(exc)))
    info = PhotoInfo(sha1=hashlib.sha1(data).hexdigest())
    try:
        img, info.mode = _decode_rgb(data)
    except DataError as exc:
        logger.info("unreadable photo %s: %s", path, exc)
        info.error = str(exc)
        return info
    except Exception as exc:  # one strange file must not stop the scan of a thousand
        logger.exception("unexpected failure decoding %s", path)
        info.error = Msg.english("decode.unexpected", kind=type(exc).__name__, detail=str(exc))
        return info
    info.width, info.height = img.size
    info.phash = perceptual_hash(img)
    info.readable = True
    return info

