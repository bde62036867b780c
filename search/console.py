"""What a search says on the terminal, and how the terminal stops it.

One line per finished trial (``describe_trial``), logged like every other line of both
engines; the command's handler puts them on stderr, so stdout keeps the closing summary
alone. Both engines, the worker supervisor and the report import from here.
"""

from __future__ import annotations

import math
import sys

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from pcam.cli import bar_disable
from search.config import SearchConfig
from search.priors import PRIOR_ROLE, SEED_BASELINE_ROLE, WARM_START_ROLE
from search.study import finished_trials

ROLE_NOTES = {
    SEED_BASELINE_ROLE: " (seed baseline)",
    PRIOR_ROLE: " (prior)",
    WARM_START_ROLE: " (warm start)",
}


def progress_bar(study: optuna.Study, config: SearchConfig, *, label: str = "") -> tqdm:
    """The study's finished trials out of ``--trials``, on stderr; off with ``--no-progress``
    and where stderr is no terminal."""
    return tqdm(
        total=config.trials,
        initial=finished_trials(study),
        desc=f"study {config.study}{label}",
        unit="trial",
        disable=bar_disable(config.progress),
        file=sys.stderr,
    )


def trial_seconds(trial: FrozenTrial) -> float | None:
    """Wall seconds from a trial's start to its end; None while it runs or if never started."""
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def describe_trial(trial: FrozenTrial) -> str:
    """One line per finished trial: number, state, value, epochs run, seconds."""
    seconds = trial_seconds(trial)
    epochs = len(trial.intermediate_values)
    value = f"{trial.value:.4f}" if trial.value is not None else "  -   "
    best_so_far = max(trial.intermediate_values.values(), default=math.nan)
    detail = ""
    if trial.state == TrialState.PRUNED:
        detail = f"  best {best_so_far:.4f}  " + trial.user_attrs.get("prune_reason", "")
    elif trial.state == TrialState.FAIL:
        detail = "  " + trial.user_attrs.get("fail_reason", "failed (see the log above)")
    role = ROLE_NOTES.get(trial.user_attrs.get("role", ""), "")
    return (
        f"trial {trial.number:>4} {trial.state.name:<8} val_auc {value}  epochs {epochs:>2}  "
        f"{math.nan if seconds is None else seconds:6.1f} s{role}{detail}"
    )
