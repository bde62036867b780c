"""Which trials a submission is made of: the best, its statistical ties, or the user's
choice; and the seed each one trained with."""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from pcam.errors import ConfigError, preview
from search.ranking import inside_interval

logger = logging.getLogger(__name__)

AUTO_ENSEMBLE = 3  # the most members the default ensemble takes


def choose_trials(
    study: optuna.Study, *, trial: int | None = None, ensemble: int | None = 1
) -> list[FrozenTrial]:
    """``--trial N``, or the ``ensemble`` complete trials of highest validation AUC, best first;
    ``ensemble=None``: the best and its statistical ties (``statistical_ties``)."""
    trials = study.get_trials(deepcopy=False)
    complete = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE), key=_ranked_value, reverse=True
    )
    by_number = sorted(complete, key=lambda t: t.number)
    numbers = [t.number for t in by_number]
    from_scratch = [t.number for t in by_number if not _promoted(t)]
    if trial is not None:
        chosen = next((t for t in trials if t.number == trial), None)
        if chosen is None:
            raise ConfigError(
                f"study {study.study_name!r} has no trial {trial} "
                f"(it has {len(trials)}: numbers 0–{len(trials) - 1})"
            )
        if chosen.state != TrialState.COMPLETE:
            raise ConfigError(
                f"trial {trial} of study {study.study_name!r} is {chosen.state.name}, not "
                f"COMPLETE; complete trials: {preview(numbers) or 'none'}"
            )
        if _promoted(chosen):
            raise ConfigError(
                f"trial {trial} went on from the weights of KerasTuner Hyperband trial "
                f"{_promoted(chosen)} with its optimizer restarted, which a retrain on one "
                "schedule from scratch does not repeat; pass --trial with a trial trained from "
                f"scratch: {preview(from_scratch) or 'none'}"
            )
        return [chosen]
    promoted = [t.number for t in complete if _promoted(t)]
    complete = [t for t in complete if not _promoted(t)]
    if promoted:
        logger.warning(
            f"note: trial(s) {preview(promoted)} went on from KerasTuner Hyperband parents' "
            "weights and cannot be retrained as they were measured; choosing among the "
            f"{len(complete)} trained from scratch"
        )
    if not complete:
        states = {t.state.name for t in trials}
        raise ConfigError(
            f"study {study.study_name!r} has no complete trial ({len(trials)} trial(s)"
            + (f": {', '.join(sorted(states))}" if states else "")
            + f"); run python -m search.run --study {study.study_name} to add some"
        )
    if ensemble is None:
        return statistical_ties(study, complete)
    if len(complete) < ensemble:
        raise ConfigError(
            f"--ensemble {ensemble}: study {study.study_name!r} has only {len(complete)} "
            "complete trial(s); lower --ensemble or run more trials"
        )
    return complete[:ensemble]


def _promoted(trial: FrozenTrial) -> str | None:
    """The KerasTuner Hyperband trial whose weights ``trial`` went on from, if any."""
    return trial.user_attrs.get("keras_tuner_parent_trial_id")


def statistical_ties(study: optuna.Study, ranked: list[FrozenTrial]) -> list[FrozenTrial]:
    """The best trial and those (up to ``AUTO_ENSEMBLE`` in all) whose validation AUC lies
    inside its 95% interval; the best alone where the study lacks the class counts."""
    best = ranked[0]
    return [best] + [t for t in ranked[1:AUTO_ENSEMBLE] if inside_interval(study, best, t)]


def _ranked_value(trial: FrozenTrial) -> float:
    return trial.value if trial.value is not None and math.isfinite(trial.value) else -math.inf


def training_seed(trial: FrozenTrial, settings: dict[str, Any]) -> int:
    """The seed ``trial`` trained with, as it recorded it (the KerasTuner engine numbers its
    trials apart from Optuna's); studies from before it was recorded used seed + number."""
    recorded = trial.user_attrs.get("training_seed")
    return int(recorded) if recorded is not None else int(settings["seed"]) + trial.number
