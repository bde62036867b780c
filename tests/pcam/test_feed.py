"""The batch feed: every row once per epoch, exact order when unshuffled, any Keras backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pcam.augment import Augment
from pcam.data import Subset, load_training_data
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


@pytest.mark.slow
def test_fit_under_the_torch_backend(tiny_synthetic, private_cache):
    """The same feed and model train under KERAS_BACKEND=torch (torch 2.13.0, CPU build)."""
    load_training_data(tiny_synthetic, limit=40, progress=False)  # build the cache here
    script = textwrap.dedent(
        f"""
        import keras
        assert keras.backend.backend() == "torch", keras.backend.backend()
        from pcam.data import load_training_data
        from pcam.model import ModelParams
        from pcam.train import VAL_AUC, train
        data = load_training_data({str(tiny_synthetic)!r}, limit=40, progress=False)
        params = ModelParams(blocks=2, filters=(8, 16), dense_units=16, batch_size=8, epochs=2,
                             crop=48, d8=True, hed_jitter=0.05)
        result = train(params, data.train, data.val, seed=0)
        assert result.epochs_run == 2 and len(result.history[VAL_AUC]) == 2, result.history
        print("torch ok", result.val_auc)
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torch ok" in done.stdout
