"""What a study holds, sorted for the report: trials by state, the seed baseline, the best,
what pruning saved and which hyperparameters mattered."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.priors import SEED_BASELINE_ROLE

METRIC = "validation AUC"


@dataclass(frozen=True)
class Pruning:
    """The estimate of what pruning saved (see ``pruning_savings``)."""

    seconds: float
    epochs: int
    estimated_trials: int
    unmeasured_trials: int


@dataclass
class StudyFacts:
    """A study's trials, sorted into what every section needs."""

    study: optuna.Study
    trials: list[FrozenTrial]
    complete: list[FrozenTrial] = field(init=False)  # best first
    pruned: list[FrozenTrial] = field(init=False)
    failed: list[FrozenTrial] = field(init=False)
    running: list[FrozenTrial] = field(init=False)
    baseline: FrozenTrial | None = field(init=False)

    def __post_init__(self) -> None:
        by_state = {state: [t for t in self.trials if t.state == state] for state in TrialState}
        self.complete = sorted(
            by_state[TrialState.COMPLETE], key=lambda t: t.value, reverse=self.maximize
        )
        self.pruned = by_state[TrialState.PRUNED]
        self.failed = by_state[TrialState.FAIL]
        self.running = by_state[TrialState.RUNNING]
        self.baseline = next((t for t in self.trials if is_baseline(t)), None)

    @property
    def maximize(self) -> bool:
        return self.study.direction == optuna.study.StudyDirection.MAXIMIZE

    @property
    def best(self) -> FrozenTrial | None:
        return self.complete[0] if self.complete else None

    @property
    def max_epochs(self) -> int | None:
        return self.study.user_attrs.get("study_defining", {}).get("max_epochs")


def is_baseline(trial: FrozenTrial) -> bool:
    return trial.user_attrs.get("role") == SEED_BASELINE_ROLE


def epochs_run(trial: FrozenTrial) -> int:
    return int(trial.user_attrs.get("epochs_run", len(trial.intermediate_values)))


def worker_of(trial: FrozenTrial) -> str:
    """The worker process (host:pid) that ran ``trial``, as the harness recorded it."""
    return str(trial.user_attrs.get("worker", "unknown worker"))


def pruning_savings(trials: list[FrozenTrial], *, max_epochs: int | None) -> Pruning:
    """Σ over pruned trials of (epochs the trial was to run − epochs it ran) × its s/epoch.

    A trial pruned before its first epoch (a model over ``--max-params``) measured no epoch
    time: it is counted in ``unmeasured_trials``, not in the estimate.
    """
    seconds, epochs, estimated, unmeasured = 0.0, 0, 0, 0
    for trial in trials:
        if trial.state != TrialState.PRUNED:
            continue
        planned = trial.params.get("epochs", max_epochs)
        per_epoch = trial.user_attrs.get("seconds_per_epoch")
        if planned is None or per_epoch is None or epochs_run(trial) == 0:
            unmeasured += 1
            continue
        if max_epochs is not None:
            planned = min(int(planned), max_epochs)
        skipped = max(int(planned) - epochs_run(trial), 0)
        seconds += skipped * float(per_epoch)
        epochs += skipped
        estimated += 1
    return Pruning(seconds, epochs, estimated, unmeasured)


def importance_evaluator() -> optuna.importance.BaseImportanceEvaluator:
    """PED-ANOVA: ships with Optuna (fANOVA needs scikit-learn) and is deterministic."""
    return optuna.importance.PedAnovaImportanceEvaluator()


def importances(facts: StudyFacts) -> tuple[dict[str, float], str]:
    """Importances over complete trials, or ({}, why there are none)."""
    if len(facts.complete) < 2:
        return {}, (f"Drawn from 2 or more complete trials; this study has {len(facts.complete)}.")
    if len({t.value for t in facts.complete}) < 2:
        return {}, "Every complete trial scored the same: no parameter can be ranked."
    try:
        found = optuna.importance.get_param_importances(
            facts.study, evaluator=importance_evaluator()
        )
    except (RuntimeError, ValueError) as error:
        return {}, f"Optuna could not compute importances: {error}"
    if not found or not any(math.isfinite(v) and v > 0 for v in found.values()):
        return {}, "The complete trials do not vary their parameters enough to rank them."
    return found, ""


def no_complete_note(facts: StudyFacts) -> str:
    if not facts.trials:
        return "This study has no trials yet."
    counts = state_counts(facts)
    return f"No trial has completed yet ({counts})."


def state_counts(facts: StudyFacts) -> str:
    parts = [
        f"{len(facts.complete)} complete",
        f"{len(facts.pruned)} pruned",
        f"{len(facts.failed)} failed",
    ]
    if facts.running:
        parts.append(f"{len(facts.running)} running")
    waiting = sum(t.state == TrialState.WAITING for t in facts.trials)
    if waiting:
        parts.append(f"{waiting} waiting")
    return ", ".join(parts)
