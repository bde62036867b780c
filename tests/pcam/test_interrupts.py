"""A fit or prediction stopped by Ctrl-C or SIGTERM: it stops at its next batch end, frees its
iterator, and raises the stop it was, whatever form the stop took on its way out of
TensorFlow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from pcam.errors import Terminated, stop_signals_as_interrupts
from pcam.model import ModelParams
from tests.helpers import StopsWhileFinalized

INTERRUPT_SCRIPT = """
import os, signal, sys, threading
# Ctrl-C as a terminal's foreground process gets it (a job started in the background with
# nohup, or by a CI runner, may inherit SIGINT ignored, which a run rightly leaves ignored)
signal.signal(signal.SIGINT, signal.default_int_handler)
from pcam.data import load_training_data
from pcam.errors import Terminated, stop_signals_as_interrupts
from pcam.model import ModelParams
from pcam.train import train

data = load_training_data(sys.argv[1], limit=120, progress=False)
params = ModelParams(blocks=1, filters=(4,), dense_units=8, batch_size=8, epochs=500, crop=32)


def ctrl_c_soon(epoch, val_auc):
    # Ctrl-C while the next epoch's batches stream; again after each epoch until one lands
    # (one delivered while TensorFlow holds the main thread was seen lost on a loaded CI run)
    if epoch >= 1:
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
    return False


try:
    train(params, data.train, data.val, seed=0, on_epoch=ctrl_c_soon)
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.slow
def test_an_interrupted_run_leaves_no_batch_iterator_to_the_interpreter_shutdown(tiny_synthetic):
    """Left alive until exit, TensorFlow's generator iterator logs an error as Python ends."""
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPT_SCRIPT, str(tiny_synthetic)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"},  # TensorFlow logs it as a warning
    )
    assert done.returncode == 0 and done.stdout.split() == ["interrupted"], done.stderr[-2000:]
    assert "GeneratorDataset" not in done.stderr and "Error occurred" not in done.stderr


def test_an_interrupt_that_comes_out_of_a_c_call_as_a_system_error_is_still_an_interrupt():
    """A Ctrl-C landing in one of TensorFlow's C calls can surface as a SystemError with the
    KeyboardInterrupt behind it; an unrelated SystemError stays what it is."""
    from pcam.interrupts import release_on_interrupt

    def interrupted_inside_c():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            # implicit chaining, as CPython's own "returned a result with an exception set"
            raise SystemError("returned a result with an exception set")  # noqa: B904

    with pytest.raises(KeyboardInterrupt), release_on_interrupt():
        interrupted_inside_c()
    with pytest.raises(SystemError, match="unrelated"), release_on_interrupt():
        raise SystemError("unrelated")


@pytest.mark.slow
def test_a_stop_that_a_finalizer_swallowed_still_stops_training_at_the_next_batch(
    tiny_synthetic,
):
    """A SIGTERM whose handler runs inside a finalizer during training (TensorFlow's objects
    are finalized by every garbage collection) is dropped by Python; without the check after
    each batch the run trained on (seen: a search still in ``fit`` a minute after Ctrl-C on a
    loaded machine)."""
    import keras

    from pcam.data import load_training_data
    from pcam.train import build_model, fit

    data = load_training_data(tiny_synthetic, limit=60, progress=False)
    params = ModelParams(blocks=1, filters=(4,), dense_units=8, batch_size=4, epochs=3, crop=32)
    batches = []

    class StopLostAtTheSecondBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)
            if len(batches) == 2:
                StopsWhileFinalized()

    model, _ = build_model(params, len(data.train), seed=0)
    with stop_signals_as_interrupts(), pytest.raises(Terminated):
        fit(model, params, data.train, data.val, seed=0, callbacks=[StopLostAtTheSecondBatch()])
    assert len(data.train) // params.batch_size > 3  # the first epoch was not over
    assert batches == [0, 1]  # lost at the end of batch 1, raised at the end of batch 2


@pytest.mark.parametrize(
    ("stop", "raised"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)]
)
def test_a_stop_during_a_prediction_waits_for_the_batch_end_and_leaves_tensorflow_usable(
    tiny_synthetic, stop, raised
):
    """Raised where it lands, a stop inside one of TensorFlow's context managers while it
    traces left the graph stack pushed: every later fit or prediction in the process failed
    ("only supports Python-style iteration in eager mode"; bench/bench_stops.py lands stops at
    random moments), and once the interpreter aborted. It waits for the batch's end instead,
    is raised as the stop it was, and the next prediction works."""
    import keras

    from pcam.data import load_training_data
    from pcam.feed import PatchFeed
    from pcam.interrupts import PendingStop, release_on_interrupt
    from pcam.train import build_model, predict

    data = load_training_data(tiny_synthetic, limit=60, progress=False)
    params = ModelParams(blocks=1, filters=(4,), dense_units=8, batch_size=4, crop=32)
    model, _ = build_model(params, len(data.train), seed=0)
    went_on, ended = [], []

    class StopAsTheFirstBatchStarts(keras.callbacks.Callback):
        def on_predict_batch_begin(self, batch, logs=None):
            if batch == 0:  # before the first step, which TensorFlow traces
                signal.raise_signal(stop)
                went_on.append(batch)

        def on_predict_batch_end(self, batch, logs=None):
            ended.append(batch)

    feed = PatchFeed(data.val, batch_size=4, shuffle=False, with_labels=False)
    # Ctrl-C handled as in a terminal, whatever the test run inherited (see INTERRUPT_SCRIPT)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with stop_signals_as_interrupts():
            with pytest.raises(KeyboardInterrupt) as came_out, release_on_interrupt():
                model.predict(
                    feed, verbose=0, callbacks=[PendingStop(), StopAsTheFirstBatchStarts()]
                )
            assert came_out.type is raised
            assert went_on == [0] and ended == []  # raised by PendingStop as batch 0 ended
            assert predict(model, data.val).shape == (len(data.val),)
    finally:
        signal.signal(signal.SIGINT, inherited)
