"""One training run of one ``ModelParams``, with exact validation ROC AUC after every epoch.

This is the per-trial work of a search and the final retrain alike; it knows nothing of
Optuna: a search watches it through ``on_epoch`` and stops it by returning True.
"""

from __future__ import annotations

import gc
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from pcam.augment import Augment
from pcam.data import Subset
from pcam.feed import PatchFeed
from pcam.interrupts import PendingStop, release_on_interrupt
from pcam.metrics import binary_cross_entropy, roc_auc
from pcam.model import ModelParams, build
from pcam.runtime import CPU_DEFAULT, Runtime
from pcam.speed import SpeedCheck

VAL_AUC = "val_auc"  # the key every pruner and report reads; a test checks it is in the history
PREDICT_BATCH = 256

EpochHook = Callable[[int, float], bool]


class TrainingDiverged(Exception):
    """The loss became NaN or infinite."""


class ValidationUnscored(Exception):
    """The validation AUC came out NaN: validation patches of one class, or NaN predictions."""


@dataclass
class TrainResult:
    """What one run produced: the model, the per-epoch curve and how fast it went."""

    model: keras.Model
    history: dict[str, list[float]]
    epochs_run: int
    stopped_early: bool
    train_seconds: float
    images_per_second: float
    seconds_per_epoch: float
    build_seconds: float
    first_epoch_seconds: float
    val_auc: list[float] = field(default_factory=list)
    projected_seconds: float = math.nan  # the whole run, projected from its first batches
    # the same, from its second epoch, where that passed ``recheck_cap`` and stopped the run
    rechecked_seconds: float = math.nan
    too_slow: bool = False  # stopped because a projection passed the time cap

    @property
    def best_epoch(self) -> int:
        """1-based epoch of the highest validation AUC (the first, on ties); the last epoch
        when none was scored."""
        scored = np.isfinite(np.asarray(self.val_auc, dtype=np.float64)).any()
        return int(np.nanargmax(self.val_auc)) + 1 if scored else self.epochs_run

    @property
    def best_val_auc(self) -> float:
        scored = np.isfinite(np.asarray(self.val_auc, dtype=np.float64)).any()
        return float(np.nanmax(self.val_auc)) if scored else float("nan")


def predict(model: keras.Model, subset: Subset, *, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Tumour probabilities for every row of ``subset``, in its order."""
    feed = PatchFeed(subset, batch_size=batch_size, shuffle=False, with_labels=False)
    with release_on_interrupt():
        probabilities = model.predict(feed, verbose=0, callbacks=[PendingStop()])
    return np.asarray(probabilities, dtype=np.float64).reshape(-1)


class WeightAverage(keras.callbacks.Callback):
    """From the end of each epoch to the start of the next, the model holds the mean of its
    weights at the end of the last ``epochs`` epochs (fewer in the first ones); training goes
    on from the epoch's own weights. Validation, ``restore_best`` and a run's last epoch
    therefore see the averaged model.

    Tail averaging of epoch-end snapshots, as stochastic weight averaging does: the mean of
    nearby points of a noisy descent lies nearer the middle of a flat basin than any one of
    them. Batch-norm statistics are averaged with the weights rather than recomputed.
    """

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.snapshots: deque[list[np.ndarray]] = deque(maxlen=epochs)
        self._own: list[np.ndarray] | None = None  # the epoch's weights, while the mean stands in

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        if self._own is not None:
            self.model.set_weights(self._own)
            self._own = None

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        own = [np.array(w) for w in self.model.get_weights()]
        self.snapshots.append(own)
        self._own = own
        mean = [np.mean(ws, axis=0, dtype=np.float64) for ws in zip(*self.snapshots, strict=True)]
        self.model.set_weights([m.astype(w.dtype) for m, w in zip(mean, own, strict=True)])


class ValidationAUC(keras.callbacks.Callback):
    """Adds exact ``val_auc`` and ``val_loss`` to the epoch logs, then asks ``on_epoch``."""

    def __init__(
        self,
        val: Subset | None,
        on_epoch: EpochHook | None,
        batch_size: int,
        *,
        restore_best: bool = False,
        speed: SpeedCheck | None = None,
    ) -> None:
        super().__init__()
        self.val = val
        self.speed = speed
        self.batch_size = batch_size
        self.on_epoch = on_epoch
        self.restore_best = restore_best
        self.best_weights: list[np.ndarray] | None = None
        self.stopped_early = False
        self.val_auc: list[float] = []
        self.epoch_seconds: list[float] = []
        self.val_seconds = 0.0
        self.unscored: str | None = None  # why an epoch's AUC was NaN; training stops there
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs if logs is not None else {}
        if self.speed is not None and self.speed.too_slow:
            return  # an epoch the first look cut or ended: neither scored nor reported
        self.epoch_seconds.append(time.perf_counter() - self._epoch_start)
        if not math.isfinite(logs.get("loss", 0.0)):
            self.model.stop_training = True
            return
        if self.val is None:
            return
        started = time.perf_counter()
        probabilities = predict(self.model, self.val, batch_size=self.batch_size)
        self.val_seconds += time.perf_counter() - started
        auc = roc_auc(self.val.y, probabilities)
        if math.isnan(auc):
            # Nothing to report or prune on, and no later epoch would be scored either.
            classes = np.unique(self.val.y)
            cause = (
                f"the {len(self.val)} validation patches are not of both classes"
                if len(classes) < 2
                else "the model's predictions are not finite"
            )
            self.unscored = f"validation AUC is NaN in epoch {epoch + 1}: {cause}"
            self.model.stop_training = True
            return
        logs[VAL_AUC] = auc
        logs["val_loss"] = binary_cross_entropy(self.val.y, probabilities)
        if self.restore_best and (not self.val_auc or auc > np.nanmax(self.val_auc)):
            self.best_weights = [np.array(w) for w in self.model.get_weights()]
        self.val_auc.append(auc)
        if self.on_epoch is not None and self.on_epoch(epoch, auc):
            self.stopped_early = True
            self.model.stop_training = True


def build_model(
    params: ModelParams, train_size: int | None, *, seed: int, runtime: Runtime = CPU_DEFAULT
) -> tuple[keras.Model, float]:
    """Seed Keras, apply ``runtime`` and build ``params``' model, its learning-rate schedule
    and batch-norm momentum planned for epochs of ``train_size`` patches (None: a constant
    rate and Keras' momentum); (model, seconds)."""
    keras.utils.set_random_seed(seed)
    runtime.apply()
    started = time.perf_counter()
    steps = None if train_size is None else math.ceil(train_size / params.batch_size)
    model = build(params, steps_per_epoch=steps, jit_compile=runtime.jit_compile)
    return model, time.perf_counter() - started


def fit(
    model: keras.Model,
    params: ModelParams,
    train_data: Subset,
    val_data: Subset | None,
    *,
    seed: int,
    epochs: int | None = None,
    initial_epoch: int = 0,
    on_epoch: EpochHook | None = None,
    runtime: Runtime = CPU_DEFAULT,
    restore_best: bool = False,
    time_cap: float | None = None,
    recheck_cap: float | None = None,
    build_seconds: float = 0.0,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 0,
) -> TrainResult:
    """Fit a built model from ``initial_epoch`` to ``epochs`` (default ``params.epochs``),
    scoring the exact validation AUC after every epoch; see ``train``.

    Both engines train through here: ``train`` for the Optuna engine and the final retrain,
    ``search.tuner_engine`` for KerasTuner, whose Hyperband hands over a model that goes on
    from its parent's weights. ``callbacks`` run after the validation AUC is in the logs, so
    KerasTuner's checkpoint and history see it. The returned curve and epoch counts are this
    call's, from ``initial_epoch`` on.
    """
    feed = _training_feed(train_data, params, seed=seed, runtime=runtime)
    run_epochs = epochs or params.epochs
    speed = SpeedCheck(
        steps_per_epoch=len(feed),
        epochs=run_epochs - initial_epoch,
        already=build_seconds,
        cap=time_cap,
        recheck_cap=recheck_cap,
    )
    watcher = ValidationAUC(
        val_data, on_epoch, runtime.val_batch_size, restore_best=restore_best, speed=speed
    )
    averaging = [WeightAverage(params.average_epochs)] if params.average_epochs > 1 else []
    started = time.perf_counter()
    with release_on_interrupt():
        fitted = model.fit(
            feed,
            epochs=run_epochs,
            initial_epoch=initial_epoch,
            callbacks=[PendingStop(), *averaging, watcher, speed, *(callbacks or [])],
            verbose=verbose,
        )
    wall = time.perf_counter() - started
    if watcher.best_weights is not None:
        model.set_weights(watcher.best_weights)
    history = _checked_history(fitted.history, watcher, initial_epoch=initial_epoch)
    return _train_result(
        model,
        history,
        watcher,
        speed,
        wall=wall,
        train_size=len(train_data),
        build_seconds=build_seconds,
    )


def _training_feed(
    train_data: Subset, params: ModelParams, *, seed: int, runtime: Runtime
) -> PatchFeed:
    """Shuffled, augmented batches of ``train_data`` as ``params`` asks, prepared by
    ``runtime.feed_threads`` threads while a step runs."""
    return PatchFeed(
        train_data,
        batch_size=params.batch_size,
        shuffle=True,
        augment=Augment(
            d8=params.d8, hed_jitter=params.hed_jitter, colour_jitter=params.colour_jitter
        ),
        seed=seed,
        workers=runtime.feed_threads,  # threads prepare the next batches during a step
    )


def _checked_history(
    keras_history: dict[str, list], watcher: ValidationAUC, *, initial_epoch: int
) -> dict[str, list[float]]:
    """Keras' per-epoch logs as floats; raises when the loss diverged or an epoch could not
    be scored, rather than hand back a curve no one should trust."""
    history = {key: [float(v) for v in values] for key, values in keras_history.items()}
    losses = history.get("loss", [])
    if any(not math.isfinite(loss) for loss in losses):
        raise TrainingDiverged(f"loss became {losses[-1]} in epoch {initial_epoch + len(losses)}")
    if watcher.unscored is not None:
        raise ValidationUnscored(watcher.unscored)
    return history


def _train_result(
    model: keras.Model,
    history: dict[str, list[float]],
    watcher: ValidationAUC,
    speed: SpeedCheck,
    *,
    wall: float,
    train_size: int,
    build_seconds: float,
) -> TrainResult:
    """The run's ``TrainResult``: its curve, and speeds that leave validation time out of the
    training time (``wall`` is the whole ``model.fit``)."""
    epochs_run = len(history.get("loss", []))
    train_seconds = max(wall - watcher.val_seconds, 1e-9)
    return TrainResult(
        model=model,
        history=history,
        epochs_run=epochs_run,
        stopped_early=watcher.stopped_early,
        train_seconds=train_seconds,
        images_per_second=epochs_run * train_size / train_seconds,
        seconds_per_epoch=wall / max(epochs_run, 1),
        build_seconds=build_seconds,
        first_epoch_seconds=watcher.epoch_seconds[0] if watcher.epoch_seconds else math.nan,
        val_auc=watcher.val_auc,
        projected_seconds=speed.projected,
        rechecked_seconds=speed.rechecked,
        too_slow=speed.too_slow,
    )


def train(
    params: ModelParams,
    train_data: Subset,
    val_data: Subset | None,
    *,
    seed: int,
    epochs: int | None = None,
    on_epoch: EpochHook | None = None,
    runtime: Runtime = CPU_DEFAULT,
    restore_best: bool = False,
    time_cap: float | None = None,
    recheck_cap: float | None = None,
    verbose: int = 0,
) -> TrainResult:
    """Build ``params``' model and fit it; ``val_data=None`` trains blind (final retrain).

    The learning-rate schedule is planned for ``params.epochs``; ``epochs`` stops the run
    earlier on that same schedule (a retrain to a trial's best epoch). ``restore_best`` hands
    back the weights of the best validation epoch. ``time_cap`` (seconds) stops a run whose
    first batches project it past the cap, before it has cost much; ``recheck_cap`` one whose
    first two epochs do (``SpeedCheck``; either way ``TrainResult.too_slow``).
    """
    model, build_seconds = build_model(params, len(train_data), seed=seed, runtime=runtime)
    return fit(
        model,
        params,
        train_data,
        val_data,
        seed=seed,
        epochs=epochs,
        on_epoch=on_epoch,
        runtime=runtime,
        restore_best=restore_best,
        time_cap=time_cap,
        recheck_cap=recheck_cap,
        build_seconds=build_seconds,
        verbose=verbose,
    )


def release_memory() -> None:
    """Drop every model and graph of the previous run, so memory stays flat across trials."""
    keras.backend.clear_session(free_memory=True)  # resets Keras' state, then a full gc.collect()


def settle_before_trials() -> None:
    """Collect once, then keep what is alive now out of every later garbage collection.

    Call it once a process has loaded its data, before its first trial. Modules, the data and
    the backend itself live as long as the process; without this, the full collection after
    every trial (``release_memory``) walks all of them again. Reference counting still frees
    frozen objects; only cycles among them would outlive the process's trials.
    """
    gc.collect()
    gc.freeze()
