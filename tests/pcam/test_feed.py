"""The batch feed: every row once per epoch, exact order when unshuffled, any Keras backend
(training with every augmentation under PyTorch: tests/search/test_run.py's memory test)."""

from __future__ import annotations

import numpy as np

from pcam.augment import Augment
from pcam.data import Subset
from pcam.feed import PatchFeed


def _subset(n: int = 50) -> Subset:
    images = np.zeros((n, 96, 96, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)  # each image carries its row number
    labels = (np.arange(n) % 2).astype(np.int8)
    indices = np.random.default_rng(0).permutation(n)[:40]
    return Subset(images, labels, indices, np.array([str(i) for i in indices]))


def test_every_row_once_per_epoch_and_reshuffled():
    subset = _subset()
    feed = PatchFeed(subset, batch_size=16, shuffle=True, seed=1)
    assert len(feed) == 3
    epochs = []
    for _ in range(2):
        rows = np.concatenate([feed[i][0][:, 0, 0, 0] for i in range(len(feed))])
        labels = np.concatenate([feed[i][1] for i in range(len(feed))])
        assert sorted(rows) == sorted(subset.indices)
        assert np.array_equal(labels, rows % 2)
        epochs.append(rows)
        feed.on_epoch_end()
    assert not np.array_equal(epochs[0], epochs[1])


def test_unshuffled_batches_follow_the_subset_order():
    subset = _subset()
    feed = PatchFeed(subset, batch_size=7, shuffle=False, with_labels=False)
    rows = np.concatenate([feed[i][0][:, 0, 0, 0] for i in range(len(feed))])
    assert np.array_equal(rows, subset.indices)


def test_augmentation_is_applied_to_training_batches():
    subset = _subset()
    subset.images[:, 0, 1] = 255  # an asymmetric mark: any non-identity symmetry moves it
    feed = PatchFeed(subset, batch_size=40, shuffle=True, augment=Augment(d8=True), seed=2)
    images = feed[0][0]
    assert (images[:, 0, 1, 0] != 255).any()
