"""Test-time augmentation: a model's probabilities averaged over symmetries of the square.

The label lives in the centre 32×32 region and every symmetry of the square maps that region
onto itself, so each transformed patch carries the same label; averaging the predictions of
all eight views cancels some of the model's orientation bias.
"""

from __future__ import annotations

import keras
import numpy as np

from pcam.augment import TTA_MODES, dihedral_one
from pcam.data import Subset
from pcam.errors import ConfigError
from pcam.feed import PatchFeed
from pcam.interrupts import PendingStop, release_on_interrupt
from pcam.train import PREDICT_BATCH


def transforms_for(mode: str) -> tuple[int, ...]:
    """The ``dihedral_one`` transforms of a TTA mode, or ConfigError naming the choices."""
    if mode not in TTA_MODES:
        raise ConfigError(f"--tta {mode!r}: choose one of {', '.join(TTA_MODES)}")
    return TTA_MODES[mode]


class TransformedFeed(PatchFeed):
    """A subset's patches in order, each put through one fixed symmetry."""

    def __init__(self, subset: Subset, *, transform: int, batch_size: int) -> None:
        super().__init__(subset, batch_size=batch_size, shuffle=False, with_labels=False)
        self.transform = transform

    def __getitem__(self, index: int):
        (images,) = super().__getitem__(index)
        return (np.ascontiguousarray(dihedral_one(images, self.transform)),)


def predict_each(
    model: keras.Model,
    subset: Subset,
    *,
    transforms: tuple[int, ...],
    batch_size: int = PREDICT_BATCH,
) -> np.ndarray:
    """Probabilities of every row of ``subset`` under each transform: shape (transforms, rows)."""
    with release_on_interrupt():
        views = [
            model.predict(
                TransformedFeed(subset, transform=transform, batch_size=batch_size),
                verbose=0,
                callbacks=[PendingStop()],
            )
            for transform in transforms
        ]
    return np.asarray(views, dtype=np.float64).reshape(len(transforms), len(subset))


def predict_tta(
    model: keras.Model,
    subset: Subset,
    *,
    mode: str = "d8",
    batch_size: int = PREDICT_BATCH,
) -> np.ndarray:
    """Tumour probabilities for every row of ``subset``, the mean over the mode's transforms."""
    transforms = transforms_for(mode)
    return predict_each(model, subset, transforms=transforms, batch_size=batch_size).mean(axis=0)
