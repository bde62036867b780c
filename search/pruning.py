"""Pruning on the epoch resource: Optuna's rung pruners, each joined by a rule that stops a
trial far below the incumbent."""

from __future__ import annotations

import math

import optuna
from optuna.trial import FrozenTrial

from pcam.metrics import auc_standard_error
from search.ranking import top_trials


def first_judged_epoch(max_epochs: int) -> int:
    """The first epoch count at which a pruner may judge a trial: a quarter of the budget.

    Models that win late (batch norm, deeper blocks, a warm-up) trail the fast starters for
    their first epochs; judging them then rewards speed of start, not the final model.
    """
    return max(1, round(max_epochs / 4))


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """Pruners step on epochs (0-based); Hyperband's resource is the epoch count. None of
    them judges a trial before ``first_judged_epoch``, and each also prunes a trial far below
    the incumbent (``FarBelowIncumbent``); ``none`` prunes nothing."""
    first = first_judged_epoch(max_epochs)
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        pruner = MedianBelowIncumbent(n_startup_trials=3, n_warmup_steps=first - 1)
    elif name == "sha":
        pruner = HalvingBelowIncumbent(min_resource=first, reduction_factor=3)
    else:
        pruner = HyperbandBelowIncumbent(
            min_resource=first, max_resource=max_epochs, reduction_factor=3
        )
    pruner.first_step = first - 1
    return pruner


class FarBelowIncumbent:
    """A pruner's own decision, or: prune a trial whose best validation AUC so far stays below
    what the best complete trial had reached by the same epoch, by more than the noise of the
    validation set allows (``far_below_incumbent``).

    A rung pruner compares a trial with the median or the top third of its rung, so a heavy
    trial far below the incumbent can run on while the rung is young or its bracket lenient.
    This asks whether the trial could plausibly stand level with the incumbent, given the
    noise of the validation set (Hanley–McNeil, from the study's class counts; without them
    the pruner alone decides), from ``first_step`` (0-based) on, as the rung pruners judge.
    Mixed into Optuna's pruners rather than wrapping them, so that Hyperband stays Hyperband
    to the sampler (which then learns from the trial's bracket only).
    """

    first_step = 0

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return super().prune(study, trial) or far_below_incumbent(
            study, trial, first_step=self.first_step
        )


class HyperbandBelowIncumbent(FarBelowIncumbent, optuna.pruners.HyperbandPruner):
    """Hyperband on epochs, and ``FarBelowIncumbent``."""


class MedianBelowIncumbent(FarBelowIncumbent, optuna.pruners.MedianPruner):
    """The median rule, and ``FarBelowIncumbent``."""


class HalvingBelowIncumbent(FarBelowIncumbent, optuna.pruners.SuccessiveHalvingPruner):
    """Successive halving, and ``FarBelowIncumbent``."""


def far_below_incumbent(study: optuna.Study, trial: FrozenTrial, *, first_step: int) -> bool:
    """Whether ``trial``'s best value so far lies below the best complete trial's best value
    up to the same step by more than the noise of the validation set (``beyond_noise``)."""
    step = trial.last_step
    if step is None or step < first_step:
        return False
    reached = incumbent_at(study, step)
    return reached is not None and beyond_noise(study, best_up_to(trial, step), reached)


def beyond_noise(study: optuna.Study, value: float, reference: float) -> bool:
    """Whether validation AUC ``value`` lies below ``reference`` by more than the 95% margin of
    their difference (two independent AUCs on the study's class counts: 1.96 × the root of
    their summed variances); False where the study has no class counts."""
    if "val_positives" not in study.user_attrs:
        return False
    positives = int(study.user_attrs["val_positives"])
    negatives = int(study.user_attrs["val_patches"]) - positives
    margin = 1.96 * math.hypot(
        auc_standard_error(value, positives, negatives),
        auc_standard_error(reference, positives, negatives),
    )
    return value + margin < reference


def incumbent_at(study: optuna.Study, step: int) -> float | None:
    """The best complete trial's best validation AUC up to ``step`` (None without one)."""
    best = top_trials(study, 1)
    if not best:
        return None
    return best_up_to(best[0], step)


def best_up_to(trial: FrozenTrial, step: int) -> float | None:
    """``trial``'s best value reported at ``step`` or before (None: nothing reported by then)."""
    return max((v for s, v in trial.intermediate_values.items() if s <= step), default=None)
