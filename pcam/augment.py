"""Histology augmentation on uint8 batches: the 8 symmetries of the square, H&E stain jitter
and brightness/contrast/saturation jitter.

Every transform here maps the centre 32×32 region onto itself — the label lives there — so
no shift, zoom or free-angle rotation is offered. Cropping to the centre is done by the model
(``ModelParams.crop``), so an exported model takes whole 96×96 patches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Ruifrok & Johnston stain vectors (haematoxylin, eosin, DAB) in optical-density space,
# the matrix scikit-image's rgb2hed uses.
_RGB_FROM_HED = np.array(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float32
)
_RGB_FROM_HED /= np.linalg.norm(_RGB_FROM_HED, axis=1, keepdims=True)
_HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED).astype(np.float32)


@dataclass(frozen=True)
class Augment:
    """What a training feed does to each batch: ``d8`` symmetries, ``hed_jitter`` and
    ``colour_jitter`` strengths."""

    d8: bool = True
    hed_jitter: float = 0.0
    colour_jitter: float = 0.0

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.d8:
            batch = dihedral(batch, rng.integers(0, 8, size=len(batch)))
        if self.hed_jitter > 0:
            batch = hed_jitter(batch, strength=self.hed_jitter, rng=rng)
        if self.colour_jitter > 0:
            batch = colour_jitter(batch, strength=self.colour_jitter, rng=rng)
        return batch


NO_AUGMENT = Augment(d8=False, hed_jitter=0.0, colour_jitter=0.0)

# Test-time augmentation (``pcam.tta``), by transform numbers of ``dihedral_one``: 0 identity,
# 4 left-right mirror, 6 top-bottom mirror, 2 both (a half turn); d8 adds the quarter turns
# and the diagonal mirrors. Here, beside the transforms, so that a command's --help can name
# the modes without loading Keras.
TTA_MODES: dict[str, tuple[int, ...]] = {
    "none": (0,),
    "flips": (0, 4, 6, 2),
    "d8": tuple(range(8)),
}


def dihedral_one(patches: np.ndarray, transform: int) -> np.ndarray:
    """Apply one of the 8 symmetries (0 = identity) to every patch of an N×H×W×C batch."""
    rotated = np.rot90(patches, k=transform % 4, axes=(1, 2))
    return rotated[:, :, ::-1] if transform >= 4 else rotated


def dihedral(batch: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Apply symmetry ``transforms[i]`` to patch ``i``."""
    out = np.empty_like(batch)
    for transform in range(8):
        rows = np.flatnonzero(transforms == transform)
        if len(rows):
            out[rows] = dihedral_one(batch[rows], transform)
    return out


def hed_jitter(batch: np.ndarray, *, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Scale and shift each patch's haematoxylin/eosin/DAB densities by up to ``strength``.

    This models stain variation between labs and scanners (Tellez et al., 2019), while the
    tissue's geometry stays untouched.
    """
    n = len(batch)
    scale = rng.uniform(1 - strength, 1 + strength, size=(n, 1, 1, 3)).astype(np.float32)
    shift = rng.uniform(-strength, strength, size=(n, 1, 1, 3)).astype(np.float32)
    density = -np.log((batch.astype(np.float32) + 1.0) / 256.0)
    stains = density @ _HED_FROM_RGB
    density = (stains * scale + shift) @ _RGB_FROM_HED
    rgb = 256.0 * np.exp(-density) - 1.0
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def colour_jitter(batch: np.ndarray, *, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Scale each patch's brightness, contrast and saturation by factors in
    [1 - ``strength``, 1 + ``strength``]: scanners and staining batches differ in all three
    (Tellez et al., 2019, "HSV" and "BC" augmentation)."""
    n = len(batch)
    brightness, contrast, saturation = (
        rng.uniform(1 - strength, 1 + strength, size=(n, 1, 1, 1)).astype(np.float32)
        for _ in range(3)
    )
    rgb = batch.astype(np.float32) * brightness
    grey = rgb @ _LUMA
    mean = grey.mean(axis=(1, 2), keepdims=True)[..., None]
    rgb = (rgb - mean) * contrast + mean
    grey = (rgb @ _LUMA)[..., None]
    rgb = (rgb - grey) * saturation + grey
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 grey
