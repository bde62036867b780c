"""Between trials: what ``release_memory`` frees once ``settle_before_trials`` has run."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from pcam.model import ModelParams

SCRIPT = """
import gc, sys, weakref
from pcam.model import ModelParams, build
from pcam.train import release_memory, settle_before_trials

settle_before_trials()
gc.disable()  # only the explicit collections count
small = ModelParams(blocks=1, filters=(4,), dense_units=4, crop=32)
models = []
for _ in range(3):
    model = build(small)
    models.append(weakref.ref(model))
    del model
    if sys.argv[1] == "release":
        release_memory()
print(sum(ref() is not None for ref in models))
"""


@pytest.mark.parametrize(("between", "alive"), [("release", 0), ("nothing", 3)])
@pytest.mark.slow
def test_models_built_after_settling_are_still_freed(between, alive):
    """Settling hides what lived before the trials from the collector, not what came after.

    Keras models hold reference cycles: with automatic collection off and nothing in
    between, all three stay alive (the check can fail); ``release_memory`` frees each.
    """
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, between], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) == alive


@pytest.mark.parametrize("restore_best", [True, False])
@pytest.mark.slow
def test_restore_best_hands_back_the_best_epochs_weights(tiny_synthetic, restore_best):
    from pcam.data import load_training_data
    from pcam.metrics import roc_auc
    from pcam.model import ModelParams
    from pcam.train import predict, train

    data = load_training_data(tiny_synthetic, limit=60, progress=False)
    params = ModelParams(
        blocks=1, filters=(4,), dense_units=8, batch_size=8, epochs=4, crop=32, learning_rate=3e-2
    )
    result = train(params, data.train, data.val, seed=3, restore_best=restore_best)
    scored = roc_auc(data.val.y, predict(result.model, data.val))
    expected = result.best_val_auc if restore_best else result.val_auc[-1]
    assert scored == pytest.approx(expected, abs=1e-6)


def _epoch_weights_recorder():
    """A ``fit`` callback that keeps each epoch's own weights at its end, before averaging."""
    import keras

    class EpochWeights(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.weights = []

        def on_epoch_end(self, epoch, logs=None):
            self.weights.append([np.array(w) for w in self.model.get_weights()])

    return EpochWeights()


@pytest.mark.slow
def test_weight_averaging_validates_and_ends_with_the_mean_of_the_last_epochs(tiny_synthetic):
    """average_epochs=3: training follows the same path as without averaging; each epoch is
    validated on, and the run ends with, the mean of the last (up to) three epochs' weights."""
    from pcam.data import load_training_data
    from pcam.metrics import roc_auc
    from pcam.train import build_model, fit, predict

    data = load_training_data(tiny_synthetic, limit=60, progress=False)
    plain = ModelParams(
        blocks=1, filters=(4,), dense_units=8, batch_size=8, epochs=4, crop=32, learning_rate=3e-2
    )
    recorder = _epoch_weights_recorder()
    model, _ = build_model(plain, len(data.train), seed=3)
    own = fit(model, plain, data.train, data.val, seed=3, callbacks=[recorder])
    averaged = dataclasses.replace(plain, average_epochs=3)
    model, _ = build_model(averaged, len(data.train), seed=3)
    result = fit(model, averaged, data.train, data.val, seed=3)
    for got, *last in zip(result.model.get_weights(), *recorder.weights[-3:], strict=True):
        assert np.allclose(got, np.mean(last, axis=0), atol=1e-6)
    assert result.val_auc[0] == pytest.approx(own.val_auc[0], abs=1e-6)  # one epoch: its own
    assert not np.allclose(result.model.get_weights()[0], recorder.weights[-1][0], atol=1e-4)
    scored = roc_auc(data.val.y, predict(result.model, data.val))
    assert scored == pytest.approx(result.val_auc[-1], abs=1e-6)


@pytest.mark.slow
def test_a_run_over_its_time_cap_stops_within_its_first_epoch_unscored(tiny_synthetic):
    from pcam.data import load_training_data
    from pcam.model import ModelParams
    from pcam.train import train

    data = load_training_data(tiny_synthetic, progress=False)  # 96 patches: 12 steps of 8
    params = ModelParams(blocks=1, filters=(4,), dense_units=8, batch_size=8, epochs=40, crop=32)
    capped = train(params, data.train, data.val, seed=0, time_cap=0.5)
    assert capped.too_slow and capped.projected_seconds > 0.5
    assert capped.val_auc == []  # the part-epoch is neither scored nor handed to on_epoch
    free = train(params, data.train, data.val, seed=0, epochs=1)
    assert not free.too_slow and len(free.val_auc) == 1 and free.projected_seconds > 0


@pytest.mark.slow
def test_a_run_whose_first_two_epochs_project_past_the_cap_stops_there_scored(tiny_synthetic):
    """First batches that fit and a second epoch that does not (its batches slowed down for
    real): the run stops after that epoch, both epochs scored; the same 40-epoch run without
    the slowdown is not stopped by the look."""
    import time

    import keras

    from pcam.data import load_training_data
    from pcam.speed import SPEED_CHECK_BATCHES
    from pcam.train import build_model, fit

    class SlowSecondEpoch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1:
                time.sleep(0.5)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

    data = load_training_data(tiny_synthetic, progress=False)  # 96 patches: 12 steps of 8
    params = ModelParams(blocks=1, filters=(4,), dense_units=8, batch_size=8, epochs=40, crop=32)
    assert -(-len(data.train) // params.batch_size) > SPEED_CHECK_BATCHES
    # 40 epochs: the first batches project seconds; a second epoch of 0.5 s batches, minutes
    cap = 60.0
    model, build_seconds = build_model(params, len(data.train), seed=0)
    slowed = fit(
        model, params, data.train, data.val, seed=0, time_cap=cap, recheck_cap=cap,
        build_seconds=build_seconds, callbacks=[SlowSecondEpoch()],
    )  # fmt: skip
    assert slowed.projected_seconds < cap < slowed.rechecked_seconds
    assert slowed.too_slow and len(slowed.val_auc) == 2 and slowed.epochs_run == 2
    model, build_seconds = build_model(params, len(data.train), seed=0)
    free = fit(
        model, params, data.train, data.val, seed=0, time_cap=cap, recheck_cap=cap,
        build_seconds=build_seconds, on_epoch=lambda epoch, val_auc: epoch >= 2,
    )  # fmt: skip  # looked at after epoch 2 of 40, stopped by its hook after epoch 3
    assert not free.too_slow and free.stopped_early and len(free.val_auc) == 3
