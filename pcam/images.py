"""Decoding one patch file into a 96×96×3 uint8 array, with the checks that go with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pcam.errors import DataError

PATCH_SIZE = 96
PATCH_SHAPE = (PATCH_SIZE, PATCH_SIZE, 3)
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

# Modes converted to RGB without loss of meaning: greyscale, palette, and RGB with an alpha
# channel (PNG exports often carry one). Anything else (CMYK, 16-bit, float, YCbCr...) is
# refused: converting it would change the colours a stain-sensitive model learns from.
CONVERTED_MODES = frozenset({"L", "P", "RGBA", "LA", "RGBX"})


def read_patch(path: str | Path) -> np.ndarray:
    """Decode one image file into a (96, 96, 3) uint8 array, or raise DataError naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode != "RGB":
                if mode not in CONVERTED_MODES:
                    raise DataError(
                        f"{path}: image mode {mode!r} is not supported; save the patch as 8-bit "
                        "RGB (greyscale, palette and RGBA are converted, other modes are refused)"
                    )
                image = image.convert("RGB")
            pixels = np.asarray(image, dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"{path}: cannot decode the image ({error}); the file is unreadable or truncated — "
            "replace it or remove it (and its label) from the data set"
        ) from None
    if pixels.shape != PATCH_SHAPE:
        height, width = pixels.shape[:2]
        raise DataError(
            f"{path}: image is {width}×{height} px, expected {PATCH_SIZE}×{PATCH_SIZE}; "
            "PCam patches are 96×96 — resize or remove it"
        )
    return pixels
