"""The per-trial work: suggest params, train with the shared data, report, prune, clean up."""

from __future__ import annotations

import contextlib
import math
import re
import time

import optuna
from optuna.trial import TrialState

from pcam.data import TrainingData
from pcam.errors import Terminated
from pcam.model import ModelParams
from pcam.runtime import CPU_DEFAULT, Runtime
from pcam.train import (
    EpochHook,
    TrainingDiverged,
    ValidationUnscored,
    release_memory,
    settle_before_trials,
    train,
)
from search.priors import PRIOR_ROLE, SEED_BASELINE_ROLE, WARM_START_ROLE
from search.pruning import first_judged_epoch
from search.record import INTERRUPTED, TrialRecord
from search.space import SPACE, Dimension, suggest

UNPRUNED_ROLES = (SEED_BASELINE_ROLE, PRIOR_ROLE, WARM_START_ROLE)
# By name, so that no backend need be imported: TensorFlow's tf.errors.ResourceExhaustedError,
# torch.OutOfMemoryError (torch.cuda.OutOfMemoryError is the same class).
OUT_OF_MEMORY_TYPES = {"ResourceExhaustedError", "OutOfMemoryError"}
# Whole words, not substrings: "room", "zoom" and "bloom" are no OOM. JAX's XlaRuntimeError and
# TensorFlow say RESOURCE_EXHAUSTED; CUDA and PyTorch say "out of memory".
OUT_OF_MEMORY_WORDS = re.compile(r"(?i:\bout of memory\b)|\bOOM\b|\bRESOURCE_EXHAUSTED\b")


class TrialFailed(Exception):
    """A trial that could not produce a value (diverged, unscored, out of memory); the study
    goes on."""


def claims_a_slot(trial: optuna.Trial, target: int) -> bool:
    """Whether this trial is among the first ``target`` non-failed trials of the study.

    Workers check for a free slot before asking for a trial, but two may ask at once; the
    later-numbered one then steps back, so the study ends with exactly ``target``.
    """
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    earlier = trial.study.get_trials(deepcopy=False, states=states)
    return sum(t.number < trial.number for t in earlier) < target


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is a device or host running out of
    memory, under any backend: told by its type, else by whole words of its message."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        names = {kind.__name__ for kind in type(error).__mro__}
        if isinstance(error, MemoryError) or names & OUT_OF_MEMORY_TYPES:
            return True
        if OUT_OF_MEMORY_WORDS.search(str(error)):
            return True
        error = error.__cause__
    return False


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
        deadline: float | None = None,
        time_cap: float | None = None,
        space: tuple[Dimension, ...] = SPACE,
        generation: int = 0,
    ) -> None:
        """``deadline`` (``time.monotonic()``) cuts a running trial after the epoch that passes
        it; ``time_cap`` (seconds) prunes a trial whose first batches, or first two epochs,
        project it past that; ``generation`` counts the processes this worker recycled before
        this one."""
        self.data = data
        self.runtime = runtime
        self.target_trials = target_trials
        self.max_epochs = max_epochs
        self.max_params = max_params
        self.seed = seed
        self.deadline = deadline
        self.time_cap = time_cap
        self.space = space  # SPACE, or its --space narrowing
        self.generation = generation
        self.last_trial: int | None = None  # the number of the trial this process ran last
        settle_before_trials()  # the shared data and the backend: out of per-trial GC

    def __call__(self, trial: optuna.Trial) -> float:
        self.last_trial = trial.number
        try:
            return self._run(trial)
        except KeyboardInterrupt as interrupt:
            # Optuna marks the trial FAIL once this propagates: record why before it does.
            stop_signal = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
            with contextlib.suppress(Exception):  # a note: it must not replace the interrupt
                trial.set_user_attr("fail_reason", f"{INTERRUPTED} {stop_signal}")
            raise

    def _run(self, trial: optuna.Trial) -> float:
        params, record = self._plan(trial)
        cut_by_budget = False
        # The seed baseline, the documented priors and warm starts are evidence already: they
        # run their whole schedule. A pruner's rung compares one noisy epoch, and a slow
        # starter such as the batch-norm recipe can trail there by chance (bench/README.md).
        role = trial.user_attrs.get("role")
        judged = role not in UNPRUNED_ROLES
        time_cap, over_cap = self._time_cap(params, role=role, judged=judged)
        # Looked at again after two epochs: the per-trial cap only, since the budget's end cuts
        # a run by itself, and one the first batches let start may count by then.
        recheck_cap = None if role == SEED_BASELINE_ROLE else self.time_cap

        def report(epoch: int, val_auc: float) -> bool:
            nonlocal cut_by_budget
            trial.report(val_auc, step=epoch)
            # After its last epoch a trial is done: stopping it then would save nothing and
            # throw its value away.
            if epoch + 1 >= params.epochs:
                return False
            if self.deadline is not None and time.monotonic() >= self.deadline:
                cut_by_budget = True
                return True
            return judged and trial.should_prune()

        stopped_early, epochs_run, best_val_auc, too_slow = self._train_or_fail(
            trial,
            params,
            record,
            on_epoch=report,
            time_cap=time_cap,
            recheck_cap=recheck_cap,
            over_cap=over_cap,
        )
        if stopped_early and too_slow is not None:
            raise optuna.TrialPruned(too_slow)
        if stopped_early and cut_by_budget:
            return self._cut_by_budget(trial, params, epochs_run, best_val_auc, judged=judged)
        if stopped_early:
            reason = f"pruned after epoch {epochs_run}"
            trial.set_user_attr("prune_reason", reason)
            raise optuna.TrialPruned(reason)
        return best_val_auc

    def _plan(self, trial: optuna.Trial) -> tuple[ModelParams, TrialRecord]:
        """The trial's params and record, written to the study before any training; a surplus
        trial fails and a model over ``--max-params`` is pruned, both untrained."""
        if self.target_trials is not None and not claims_a_slot(trial, self.target_trials):
            trial.set_user_attr("fail_reason", "surplus: other workers filled the study")
            raise TrialFailed("surplus trial")
        params = suggest(trial, max_epochs=self.max_epochs, space=self.space)
        # The training seed is fixed by --seed and the trial number, whichever worker runs it.
        record = TrialRecord.start(
            params,
            runtime=self.runtime,
            training_seed=self.seed + trial.number,
            generation=self.generation,
        )
        write_record(trial, record)
        if record.params_count > self.max_params:
            reason = (
                f"model has {record.params_count:,} weights, over --max-params {self.max_params:,}"
            )
            trial.set_user_attr("prune_reason", reason)
            raise optuna.TrialPruned(reason)
        return params, record

    def _train_or_fail(
        self,
        trial: optuna.Trial,
        params: ModelParams,
        record: TrialRecord,
        *,
        on_epoch: EpochHook,
        time_cap: float | None,
        recheck_cap: float | None,
        over_cap: str,
    ) -> tuple[bool, int, float, str | None]:
        """``_train``'s outcome; a run that diverged, could not be scored or ran out of memory
        fails the trial with its reason (and the search goes on)."""
        failure = None
        try:
            try:
                return self._train(
                    trial,
                    params,
                    record,
                    on_epoch=on_epoch,
                    time_cap=time_cap,
                    recheck_cap=recheck_cap,
                    over_cap=over_cap,
                )
            except TrainingDiverged as error:
                failure = (f"diverged: {error}", str(error))
            except ValidationUnscored as error:
                failure = (f"unscored: {error}", str(error))
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                failure = (f"out of memory: {type(error).__name__}", f"out of memory: {error}")
        finally:
            # Past the inner except blocks nothing refers to the run's model any more (not
            # even a traceback), so this one collection frees it before the next trial.
            release_memory()
        reason, message = failure
        trial.set_user_attr("fail_reason", reason)
        raise TrialFailed(message)

    def _cut_by_budget(
        self,
        trial: optuna.Trial,
        params: ModelParams,
        epochs_run: int,
        best_val_auc: float,
        *,
        judged: bool,
    ) -> float:
        """The value of a trial ``--budget`` stopped before its schedule ran out."""
        trial.set_user_attr("budget_cut", f"cut after epoch {epochs_run} of {params.epochs}")
        first_judged = first_judged_epoch(self.max_epochs)
        if judged and epochs_run < first_judged:
            # Too early to tell: no pruner would have judged it yet, and a value from
            # the first epochs of a slow starter would teach the sampler that its region
            # is bad.
            reason = (
                f"cut by the budget after epoch {epochs_run}, before epoch {first_judged}, "
                "the first a pruner may judge"
            )
            trial.set_user_attr("prune_reason", reason)
            raise optuna.TrialPruned(reason)
        # Its best epoch is a measurement like any other, and the retrain reproduces it
        # (same schedule, stopped at that epoch): the trial counts, with a note that its
        # schedule had not run out. Pruned, the search's last and often best trial (the
        # slow one, still climbing) could never be submitted.
        return best_val_auc

    def _time_cap(
        self, params: ModelParams, *, role: str | None, judged: bool
    ) -> tuple[float | None, str]:
        """The most this trial may take, projected from its first batches, and what to say
        when it would take more.

        The seed baseline is what every search is judged against: it is measured whatever
        the per-trial cap (one trial; about a minute on the embedded set on 2 cores). A
        searched trial that could not reach its first judged epoch before the budget ends
        is stopped at its first batches: cut before that epoch it would count for nothing.
        """
        caps = []
        if self.time_cap is not None and role != SEED_BASELINE_ROLE:
            caps.append((self.time_cap, f"over the {self.time_cap / 60:.1f} min a trial may take"))
        if self.deadline is not None and judged:
            first = first_judged_epoch(self.max_epochs)
            left = max(self.deadline - time.monotonic(), 0.0)
            caps.append(
                (
                    left * params.epochs / first,
                    f"so epoch {first}, the first a pruner may judge, would come after the "
                    f"{left / 60:.1f} min left of the budget",
                )
            )
        return min(caps, default=(None, ""), key=lambda cap: cap[0])

    def _train(
        self,
        trial: optuna.Trial,
        params: ModelParams,
        record: TrialRecord,
        *,
        on_epoch: EpochHook,
        time_cap: float | None,
        recheck_cap: float | None,
        over_cap: str,
    ) -> tuple[bool, int, float, str | None]:
        """Train, record the run on ``trial``: (stopped early, epochs run, best val AUC, why it
        was stopped for being too slow, or None).

        The result, and with it the model, goes out of scope on return.
        """
        result = train(
            params,
            self.data.train,
            self.data.val,
            seed=record.training_seed,
            on_epoch=on_epoch,
            runtime=self.runtime,
            time_cap=time_cap,
            recheck_cap=recheck_cap,
        )
        record.measure(result)
        write_record(trial, record)
        if result.too_slow:
            if math.isfinite(result.rechecked_seconds):  # the first batches under-read it
                looked_at, projected = "its first two epochs", result.rechecked_seconds
                over_cap = f"over the {recheck_cap / 60:.1f} min a trial may take"
            else:
                looked_at, projected = "its first batches", result.projected_seconds
            reason = (
                f"too slow: {looked_at} project {projected / 60:.1f} min "
                f"for {params.epochs} epochs, {over_cap}"
            )
            trial.set_user_attr("prune_reason", reason)
            return True, result.epochs_run, result.best_val_auc, reason
        return result.stopped_early, result.epochs_run, result.best_val_auc, None


def write_record(trial: optuna.Trial, record: TrialRecord) -> None:
    """Store the record's attributes that the trial does not hold yet (one write each)."""
    held = trial.user_attrs  # a deep copy on every read: once
    for key, value in record.user_attrs().items():
        if held.get(key) != value:
            trial.set_user_attr(key, value)
