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


@pytest.mark.parametrize(
    "seconds_per_batch, stops_after", [(1.0, 2), (0.35, 6), (0.05, None)], ids=str
)
def test_the_speed_check_stops_a_far_slower_run_at_its_first_timed_batch(
    monkeypatch, seconds_per_batch, stops_after
):
    """Cap 40 s, 100 steps, 10 s of compiling in the first batch: 1 s a batch projects 109 s,
    over twice the cap, at once; 0.35 s projects 10 + 34.65 = 44.65 s, over the cap only, so
    the check waits for its five timed batches; 0.05 s fits."""
    import types

    import pcam.train
    from pcam.train import SPEED_CHECK_BATCHES, SpeedCheck

    clock = [0.0]
    monkeypatch.setattr(pcam.train.time, "perf_counter", lambda: clock[0])
    check = SpeedCheck(steps=100, epochs=10, already=0.0, cap=40.0)
    check.set_model(types.SimpleNamespace(stop_training=False))
    check.on_train_begin()
    clock[0] += 10.0  # the first batch compiles
    check.on_train_batch_end(0)
    stopped_at = None
    for batch in range(1, 20):
        clock[0] += seconds_per_batch
        check.on_train_batch_end(batch)
        if check.model.stop_training and stopped_at is None:
            stopped_at = batch + 1
    assert stopped_at == stops_after and check.too_slow == (stops_after is not None)
    assert stops_after != SPEED_CHECK_BATCHES + 1 or 40 < check.projected < 80


@pytest.mark.parametrize(
    "later_batch_seconds, stopped", [(2.0, True), (0.1, False), (None, False)], ids=str
)
def test_the_speed_check_looks_again_after_the_first_epoch(
    monkeypatch, later_batch_seconds, stopped
):
    """Cap 40 s, 10 epochs of 10 batches: a compiling first batch (1 s) and five of 0.1 s
    project 10.9 s and pass; four more of 2 s (the model's later batches run slower) make the
    first epoch project 1 + 99 * 8.5 / 9 = 94.5 s, and the run stops at that epoch's end,
    where it would otherwise have run to the end. A run already stopping for another reason
    (None: pruned at that epoch) is left alone, and no later epoch is looked at."""
    import types

    import pcam.train
    from pcam.train import SpeedCheck

    clock = [0.0]
    monkeypatch.setattr(pcam.train.time, "perf_counter", lambda: clock[0])
    check = SpeedCheck(steps=100, epochs=10, already=0.0, cap=40.0)
    check.set_model(types.SimpleNamespace(stop_training=False))
    check.on_train_begin()
    for batch, seconds in enumerate([1.0] + [0.1] * 5 + [later_batch_seconds or 2.0] * 4):
        clock[0] += seconds
        check.on_train_batch_end(batch)
    assert check.projected == pytest.approx(10.9) and not check.too_slow
    if later_batch_seconds is None:
        check.model.stop_training = True  # the pruner stopped it at this epoch
    check.on_epoch_end(0)
    assert check.too_slow == stopped
    assert check.model.stop_training == (stopped or later_batch_seconds is None)
    if stopped:
        assert check.epoch_projected == pytest.approx(94.5, abs=0.1)
    else:
        assert np.isnan(check.epoch_projected)
    check.model.stop_training = False
    clock[0] += 1000.0  # a second epoch far slower still: not looked at
    check.on_epoch_end(1)
    assert check.too_slow == stopped and not check.model.stop_training


@pytest.mark.slow
def test_a_run_whose_first_epoch_projects_past_the_cap_stops_there_scored(tiny_synthetic):
    """First batches that fit and a first epoch that does not (its later batches slowed down
    for real): the run stops after that epoch, which is scored; the same run without the
    slowdown trains on."""
    import time

    import keras

    from pcam.data import load_training_data
    from pcam.train import SPEED_CHECK_BATCHES, build_model, fit

    class SlowAfterTheCheck(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch > SPEED_CHECK_BATCHES:
                time.sleep(1.0)

    data = load_training_data(tiny_synthetic, progress=False)  # 96 patches: 12 steps of 8
    params = ModelParams(blocks=1, filters=(4,), dense_units=8, batch_size=8, epochs=40, crop=32)
    steps = -(-len(data.train) // params.batch_size)
    assert steps > SPEED_CHECK_BATCHES + 2  # batches left in epoch 1 to slow down
    # 40 epochs: the first batches project seconds; a first epoch with 1 s batches, minutes
    cap = 60.0
    model, build_seconds = build_model(params, len(data.train), seed=0)
    slowed = fit(
        model, params, data.train, data.val, seed=0, time_cap=cap,
        build_seconds=build_seconds, callbacks=[SlowAfterTheCheck()],
    )  # fmt: skip
    assert slowed.projected_seconds < cap < slowed.epoch_projected_seconds
    assert slowed.too_slow and len(slowed.val_auc) == 1 and slowed.epochs_run == 1
    model, build_seconds = build_model(params, len(data.train), seed=0)
    free = fit(
        model, params, data.train, data.val, seed=0, epochs=3, time_cap=cap,
        build_seconds=build_seconds,
    )  # fmt: skip
    assert not free.too_slow and len(free.val_auc) == 3
