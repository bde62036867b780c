"""Batches for ``keras.Model.fit`` under any Keras 3 backend, streamed from the cache."""

from __future__ import annotations

import math

import keras
import numpy as np

from pcam.augment import NO_AUGMENT, Augment
from pcam.data import Subset


class PatchFeed(keras.utils.PyDataset):
    """uint8 batches of a subset, reshuffled every epoch, augmented per batch.

    A ``keras.utils.PyDataset`` rather than ``tf.data`` so that the same feed runs under the
    TensorFlow, JAX and PyTorch backends. Without shuffling, batches follow the subset's
    order exactly (prediction relies on it).
    """

    def __init__(
        self,
        subset: Subset,
        *,
        batch_size: int,
        shuffle: bool = True,
        augment: Augment = NO_AUGMENT,
        seed: int = 0,
        with_labels: bool = True,
        workers: int = 1,
    ) -> None:
        super().__init__(workers=workers, use_multiprocessing=False)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.subset = subset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.with_labels = with_labels
        self._seed = seed
        self._epoch = 0
        self._order = self._epoch_order()

    def __len__(self) -> int:
        return math.ceil(len(self.subset) / self.batch_size)

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return self.subset.indices
        rng = np.random.default_rng((self._seed, self._epoch))
        return rng.permutation(self.subset.indices)

    def on_epoch_end(self) -> None:
        self._epoch += 1
        self._order = self._epoch_order()

    def __getitem__(self, index: int):
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        if len(rows) == 0:
            raise IndexError(f"batch {index} is past the end ({len(self)} batches)")
        # Read the memory map in ascending row order (sequential I/O), keep the batch's order.
        ascending = np.argsort(rows, kind="stable")
        images = np.empty((len(rows), *self.subset.images.shape[1:]), dtype=np.uint8)
        images[ascending] = self.subset.images[rows[ascending]]
        if self.augment != NO_AUGMENT:
            images = self.augment(images, np.random.default_rng((self._seed, self._epoch, index)))
        if not self.with_labels:
            return (images,)
        return images, self.subset.labels[rows].astype(np.float32)
