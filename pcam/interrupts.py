"""How a fit or a prediction stops on Ctrl-C or SIGTERM: at its next batch end (never while
TensorFlow traces), its batch iterator freed, and as the stop it was, whatever form the stop
took on its way out of TensorFlow."""

from __future__ import annotations

import gc
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import keras

from pcam.errors import raise_pending_stop, stop_since, stops_at_safe_points, stops_so_far


@contextmanager
def release_on_interrupt() -> Iterator[None]:
    """Free an interrupted ``fit`` or ``predict``'s batch iterator while Python still runs.

    Stopped mid-epoch (Ctrl-C, or SIGTERM turned into KeyboardInterrupt), Keras' epoch
    iterator holds TensorFlow's generator iterator in a reference cycle that the traceback's
    frames keep alive. Left to the collection at interpreter shutdown, TensorFlow can no
    longer finalize it and logs "Error occurred when finalizing GeneratorDataset iterator".

    A signal that lands inside one of TensorFlow's C calls can come out as another error: a
    ``SystemError`` ("returned a result with an exception set") with the interrupt behind it,
    or, through pybind11 while a function is traced, an error that keeps only the interrupt's
    text ("KeyboardInterrupt: ... At: ..."). Either is the interrupt it was, freed the same way
    and raised as that interrupt, so that the trial is failed as interrupted and the command
    exits as stopped. The second is known by a stop that ``stop_signals_as_interrupts`` raised
    during the block. (Both seen in search workers stopped by their supervisor.)
    """
    stops = stops_so_far()
    try:
        with stops_at_safe_points():  # raised at a batch end (PendingStop), not mid-trace
            yield
    except (KeyboardInterrupt, Exception) as error:
        interrupt = _interrupt_behind(error) or stop_since(stops)
        if interrupt is None:
            raise
        traceback.clear_frames(error.__traceback__)  # the frames below this one
        gc.collect()
        if interrupt is error:
            raise
        raise interrupt.with_traceback(None) from None


def _interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """``error`` itself if it is a ``KeyboardInterrupt``, else the one that caused it, if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class PendingStop(keras.callbacks.Callback):
    """Raises, at the end of the next batch, a stop that waits for a safe point or that a
    finalizer swallowed (``pcam.errors.raise_pending_stop``): where a fit or prediction
    stops."""

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        raise_pending_stop()

    def on_test_batch_end(self, batch: int, logs=None) -> None:
        raise_pending_stop()

    def on_predict_batch_end(self, batch: int, logs=None) -> None:
        raise_pending_stop()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        raise_pending_stop()
