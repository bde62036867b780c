"""One training run of one ``ModelParams``, with exact validation ROC AUC after every epoch.

This is the per-trial work of a search and the final retrain alike; it knows nothing of
Optuna: a search watches it through ``on_epoch`` and stops it by returning True.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from pcam.augment import Augment
from pcam.data import Subset
from pcam.feed import PatchFeed
from pcam.metrics import binary_cross_entropy, roc_auc
from pcam.model import ModelParams, build
from pcam.runtime import CPU_DEFAULT, Runtime

VAL_AUC = "val_auc"  # the key every pruner and report reads; a test checks it is in the history
PREDICT_BATCH = 256

EpochHook = Callable[[int, float], bool]


class TrainingDiverged(Exception):
    """The loss became NaN or infinite."""


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

    @property
    def best_epoch(self) -> int:
        """1-based epoch of the highest validation AUC (the first, on ties)."""
        return int(np.nanargmax(self.val_auc)) + 1 if self.val_auc else self.epochs_run

    @property
    def best_val_auc(self) -> float:
        return float(np.nanmax(self.val_auc)) if self.val_auc else float("nan")


def predict(model: keras.Model, subset: Subset, *, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Tumour probabilities for every row of ``subset``, in its order."""
    feed = PatchFeed(subset, batch_size=batch_size, shuffle=False, with_labels=False)
    return np.asarray(model.predict(feed, verbose=0), dtype=np.float64).reshape(-1)


class ValidationAUC(keras.callbacks.Callback):
    """Adds exact ``val_auc`` and ``val_loss`` to the epoch logs, then asks ``on_epoch``."""

    def __init__(self, val: Subset | None, on_epoch: EpochHook | None, batch_size: int) -> None:
        super().__init__()
        self.val = val
        self.batch_size = batch_size
        self.on_epoch = on_epoch
        self.stopped_early = False
        self.val_auc: list[float] = []
        self.epoch_seconds: list[float] = []
        self.val_seconds = 0.0
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs if logs is not None else {}
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
        logs[VAL_AUC] = auc
        logs["val_loss"] = binary_cross_entropy(self.val.y, probabilities)
        self.val_auc.append(auc)
        if self.on_epoch is not None and self.on_epoch(epoch, auc):
            self.stopped_early = True
            self.model.stop_training = True


def train(
    params: ModelParams,
    train_data: Subset,
    val_data: Subset | None,
    *,
    seed: int,
    epochs: int | None = None,
    on_epoch: EpochHook | None = None,
    runtime: Runtime = CPU_DEFAULT,
    verbose: int = 0,
) -> TrainResult:
    """Build ``params``' model and fit it; ``val_data=None`` trains blind (final retrain)."""
    keras.utils.set_random_seed(seed)
    runtime.apply()
    build_started = time.perf_counter()
    model = build(params, jit_compile=runtime.jit_compile)
    build_seconds = time.perf_counter() - build_started
    feed = PatchFeed(
        train_data,
        batch_size=params.batch_size,
        shuffle=True,
        augment=Augment(d8=params.d8, hed_jitter=params.hed_jitter),
        seed=seed,
        workers=runtime.feed_threads,  # threads prepare the next batches during a step
    )
    watcher = ValidationAUC(val_data, on_epoch, runtime.val_batch_size)
    started = time.perf_counter()
    fitted = model.fit(feed, epochs=epochs or params.epochs, callbacks=[watcher], verbose=verbose)
    wall = time.perf_counter() - started
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    losses = history.get("loss", [])
    if any(not math.isfinite(loss) for loss in losses):
        raise TrainingDiverged(f"loss became {losses[-1]} in epoch {len(losses)}")
    epochs_run = len(losses)
    train_seconds = max(wall - watcher.val_seconds, 1e-9)
    return TrainResult(
        model=model,
        history=history,
        epochs_run=epochs_run,
        stopped_early=watcher.stopped_early,
        train_seconds=train_seconds,
        images_per_second=epochs_run * len(train_data) / train_seconds,
        seconds_per_epoch=wall / max(epochs_run, 1),
        build_seconds=build_seconds,
        first_epoch_seconds=watcher.epoch_seconds[0] if watcher.epoch_seconds else math.nan,
        val_auc=watcher.val_auc,
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
