"""How long a training run will take, projected while it runs, and the stop of one that
would take longer than its cap: ``SpeedCheck``, a Keras callback ``pcam.train.fit`` adds."""

from __future__ import annotations

import math
import time

import keras

SPEED_CHECK_BATCHES = 5  # batches timed after the first (which compiles) to project a run's time
# A run whose first timed batch already projects this many times its cap stops there: a model
# ten times too big would otherwise spend five of its slow batches proving it.
FAR_OVER_CAP = 2.0


class SpeedCheck(keras.callbacks.Callback):
    """Projects the run's time from its first batches; stops it if that passes ``cap``.

    The first batch (which compiles) is left out of the rate; the projection adds it back,
    plus the time already spent building the model. The decision waits for
    ``SPEED_CHECK_BATCHES`` timed batches (at most the first epoch's), unless a projection
    passes ``FAR_OVER_CAP`` times the cap before that.

    A run that passes is looked at again at the end of its second epoch against
    ``recheck_cap``: its first batches leave validation out and can under-read a heavy model,
    whose later batches run slower (a recorded 6.5-million-weight draw projected 58 minutes
    and took 63). The second epoch is the first without one-off costs (compiling the last,
    shorter batch and the first prediction), so the time so far plus that epoch's for each
    one left is the run's; one that passes the cap stops there rather than spend the rest.
    """

    def __init__(
        self,
        *,
        steps_per_epoch: int,
        epochs: int,
        already: float,
        cap: float | None,
        recheck_cap: float | None = None,
    ) -> None:
        super().__init__()
        self.steps = steps_per_epoch * epochs
        self.epochs = epochs
        self.already = already
        self.cap = cap
        self.recheck_cap = recheck_cap
        self.projected = math.nan  # from the first batches
        self.rechecked = math.nan  # from the second epoch, when that stopped the run
        self.too_slow = False
        self._started = 0.0
        self._first_done = 0.0
        self._done = 0
        self._epoch_ends: list[float] = []
        # The batches timed before the first look decides: within the first epoch, unless
        # that has one batch only (then they span epochs, validation included, and the
        # second look, which must come after the first, is not made).
        self._per_epoch = steps_per_epoch
        self._timed = SPEED_CHECK_BATCHES
        if self._per_epoch > 1:
            self._timed = min(SPEED_CHECK_BATCHES, self._per_epoch - 1)

    def on_train_begin(self, logs=None) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if not math.isnan(self.projected):
            return
        now = time.perf_counter()
        self._done += 1  # ``batch`` restarts every epoch; the projection counts the whole run
        if self._done == 1:
            self._first_done = now
            return
        per_batch = (now - self._first_done) / (self._done - 1)
        first = self._first_done - self._started
        projected = self.already + first + per_batch * (self.steps - 1)
        far_over = self.cap is not None and projected > FAR_OVER_CAP * self.cap
        if not far_over and self._done <= min(self._timed, self.steps - 1):
            return
        self.projected = projected
        if self.cap is not None and projected > self.cap:
            self.too_slow = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        now = time.perf_counter()
        self._epoch_ends.append(now)
        looks = len(self._epoch_ends) == 2 and self.epochs > 2 and self._per_epoch > 1
        if not looks or self.recheck_cap is None or self.too_slow or self.model.stop_training:
            return  # only the second epoch of a run that goes on is looked at
        steady = now - self._epoch_ends[0]
        projected = self.already + (now - self._started) + steady * (self.epochs - 2)
        if projected > self.recheck_cap:
            self.rechecked = projected
            self.too_slow = True
            self.model.stop_training = True
