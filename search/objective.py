"""The per-trial work: suggest params, train with the shared data, report, prune, clean up."""

from __future__ import annotations

import os
import socket

import optuna
from optuna.trial import TrialState

from pcam.data import TrainingData
from pcam.model import count_params
from pcam.runtime import CPU_DEFAULT, Runtime
from pcam.train import TrainingDiverged, release_memory, settle_before_trials, train
from search.space import suggest


class TrialFailed(Exception):
    """A trial that could not produce a value (diverged, out of memory); the study goes on."""


def claims_a_slot(trial: optuna.Trial, target: int) -> bool:
    """Whether this trial is among the first ``target`` non-failed trials of the study.

    Workers check for a free slot before asking for a trial, but two may ask at once; the
    later-numbered one then steps back, so the study ends with exactly ``target``.
    """
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    earlier = trial.study.get_trials(deepcopy=False, states=states)
    return sum(t.number < trial.number for t in earlier) < target


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device or host running out of memory, under any backend."""
    text = f"{type(error).__name__} {error}".lower()
    markers = ("out of memory", "resource_exhausted", "resourceexhausted", "memoryerror", "oom")
    return isinstance(error, MemoryError) or any(marker in text for marker in markers)


class Objective:
    """Callable for ``study.optimize``; the data is loaded once and shared by every trial."""

    def __init__(
        self,
        data: TrainingData,
        *,
        max_epochs: int,
        max_params: int,
        seed: int,
        target_trials: int | None = None,
        runtime: Runtime = CPU_DEFAULT,
    ) -> None:
        self.data = data
        self.runtime = runtime
        self.target_trials = target_trials
        self.max_epochs = max_epochs
        self.max_params = max_params
        self.seed = seed
        settle_before_trials()  # the shared data and the backend: out of per-trial GC

    def __call__(self, trial: optuna.Trial) -> float:
        if self.target_trials is not None and not claims_a_slot(trial, self.target_trials):
            trial.set_user_attr("fail_reason", "surplus: other workers filled the study")
            raise TrialFailed("surplus trial")
        params = suggest(trial, max_epochs=self.max_epochs)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("runtime", self.runtime.describe())
        size = count_params(params)
        trial.set_user_attr("params_count", size)
        if size > self.max_params:
            reason = f"model has {size:,} weights, over --max-params {self.max_params:,}"
            trial.set_user_attr("prune_reason", reason)
            raise optuna.TrialPruned(reason)

        training_seed = self.seed + trial.number  # fixed by --seed, whichever worker runs it
        trial.set_user_attr("training_seed", training_seed)

        def report(epoch: int, val_auc: float) -> bool:
            trial.report(val_auc, step=epoch)
            # After its last epoch a trial is done: pruning it then would save nothing and
            # throw its value away.
            return epoch + 1 < params.epochs and trial.should_prune()

        try:
            result = train(
                params,
                self.data.train,
                self.data.val,
                seed=training_seed,
                on_epoch=report,
                runtime=self.runtime,
            )
        except TrainingDiverged as error:
            trial.set_user_attr("fail_reason", f"diverged: {error}")
            raise TrialFailed(str(error)) from None
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            trial.set_user_attr("fail_reason", f"out of memory: {type(error).__name__}")
            raise TrialFailed(f"out of memory: {error}") from None
        finally:
            release_memory()

        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("epochs_run", result.epochs_run)
        trial.set_user_attr("seconds_per_epoch", round(result.seconds_per_epoch, 3))
        trial.set_user_attr("images_per_second", round(result.images_per_second, 1))
        trial.set_user_attr("train_seconds", round(result.train_seconds, 2))
        trial.set_user_attr("build_seconds", round(result.build_seconds, 2))
        trial.set_user_attr("first_epoch_seconds", round(result.first_epoch_seconds, 2))
        # What the model really ran with (the runtime line above is what was asked for).
        trial.set_user_attr("dtype_policy", result.model.dtype_policy.name)
        trial.set_user_attr("jit_compile", bool(result.model.jit_compile))
        if result.stopped_early:
            trial.set_user_attr("prune_reason", f"pruned after epoch {result.epochs_run}")
            raise optuna.TrialPruned(f"pruned after epoch {result.epochs_run}")
        return result.best_val_auc
