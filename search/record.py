"""What a trial ran and measured: one record, written as the same user attributes by both
engines (``search.objective`` for Optuna, ``search.tuner_engine`` for KerasTuner).

The report, the dashboard and ``search.submit`` read these attributes, whichever engine made
the study; a test lists them from one study of each.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pcam.model import ModelParams, count_params
from pcam.runtime import Runtime

if TYPE_CHECKING:  # pcam.train loads Keras: reading a record's names must not
    from pcam.train import TrainResult


@dataclass
class TrialRecord:
    """A trial's user attributes: what it ran with (set when it starts) and what its training
    measured (``measure``, once it has trained). Unset values are left out."""

    worker: str  # host:pid of the process that ran it
    worker_generation: int  # processes that worker recycled before this one (--recycle-after)
    runtime: str  # what was asked for: device, precision, XLA, batch sizes
    params_count: int
    training_seed: int
    best_epoch: int | None = None  # 1-based, counted from the start of the schedule
    epochs_run: int | None = None
    seconds_per_epoch: float | None = None
    images_per_second: float | None = None
    train_seconds: float | None = None
    build_seconds: float | None = None
    first_epoch_seconds: float | None = None
    dtype_policy: str | None = None  # what the model really ran with
    jit_compile: bool | None = None
    projected_seconds: float | None = None  # the whole run, from its first timed batches

    @classmethod
    def start(
        cls, params: ModelParams, *, runtime: Runtime, training_seed: int, generation: int = 0
    ) -> TrialRecord:
        return cls(
            worker=f"{socket.gethostname()}:{os.getpid()}",
            worker_generation=generation,
            runtime=runtime.describe(),
            params_count=count_params(params),
            training_seed=training_seed,
        )

    def measure(self, result: TrainResult, *, first_epoch: int = 0) -> None:
        """Take the timings of ``result``; ``first_epoch`` is where its run began (a promoted
        KerasTuner Hyperband trial goes on from its parent's best epoch)."""
        if math.isfinite(result.projected_seconds):
            self.projected_seconds = round(result.projected_seconds, 1)
        if result.too_slow and not result.val_auc:
            return  # stopped at its first batches: nothing else was measured
        self.best_epoch = first_epoch + result.best_epoch
        self.epochs_run = result.epochs_run
        self.seconds_per_epoch = round(result.seconds_per_epoch, 3)
        self.images_per_second = round(result.images_per_second, 1)
        self.train_seconds = round(result.train_seconds, 2)
        self.build_seconds = round(result.build_seconds, 2)
        self.first_epoch_seconds = round(result.first_epoch_seconds, 2)
        self.dtype_policy = result.model.dtype_policy.name
        self.jit_compile = bool(result.model.jit_compile)

    def user_attrs(self) -> dict[str, Any]:
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}


RECORD_ATTRS = tuple(field.name for field in dataclasses.fields(TrialRecord))
# What a run adds to a trial's attributes beside its record: why it ended, where it did not end
# well. A queued trial's other attributes are what it was enqueued with.
OUTCOME_ATTRS = ("fail_reason", "prune_reason", "budget_cut")
RUN_ATTRS = RECORD_ATTRS + OUTCOME_ATTRS
INTERRUPTED = "interrupted by"  # the fail_reason of a trial a stop signal ended, and its signal
