"""What a finished run of search.run says: where its budget went, and the closing summary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.config import SearchConfig, spoken_duration
from search.console import trial_seconds
from search.dashboard import dashboard_command
from search.priors import seed_baseline
from search.ranking import inside_interval, top_trials, validation_interval
from search.study import validation_caveat

TOP_IN_SUMMARY = 3


@dataclass(frozen=True)
class SearchOutcome:
    """What one run of search.run did, for its summary."""

    study: optuna.Study
    resumed: bool
    trials_run: int
    since: datetime | None = None  # when this run began: the trials it ran started after
    wall_seconds: float = 0.0
    # True when this process ran its --recycle-after trials and a fresh one should go on.
    recycle: bool = False
    budget_run: dict[str, Any] | None = None  # how --budget went, as recorded in the study


def budget_account(
    study: optuna.Study, *, since: datetime, wall_seconds: float
) -> dict[str, float | int]:
    """How a run's wall time went: seconds and counts of the complete, pruned and failed
    trials that started ``since``, and the rest (data, start-up, between trials) as overhead."""
    account: dict[str, float | int] = {"wall_seconds": round(wall_seconds, 1)}
    spent = 0.0
    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
        trials = [
            t
            for t in study.get_trials(deepcopy=False, states=(state,))
            if t.datetime_start is not None and t.datetime_start >= since and not is_surplus(t)
        ]
        seconds = sum(trial_seconds(t) or 0.0 for t in trials)
        spent += seconds
        name = state.name.lower()
        account[f"{name}_trials"] = len(trials)
        account[f"{name}_seconds"] = round(seconds, 1)
        if state == TrialState.COMPLETE:
            account["budget_cut_trials"] = sum("budget_cut" in t.user_attrs for t in trials)
    account["overhead_seconds"] = round(max(wall_seconds - spent, 0.0), 1)
    return account


def is_surplus(trial: FrozenTrial) -> bool:
    return trial.user_attrs.get("fail_reason", "").startswith("surplus")


def record_budget(
    study: optuna.Study, config: SearchConfig, since: datetime, wall_seconds: float
) -> dict[str, Any]:
    """Append this run's budget and how it went to the study's ``budget_runs``; return it."""
    account = budget_account(study, since=since, wall_seconds=wall_seconds)
    runs = list(study.user_attrs.get("budget_runs", []))
    started = since.isoformat(timespec="seconds")
    runs.append({"budget_seconds": config.budget, "started": started, **account})
    study.set_user_attr("budget_runs", runs)
    return runs[-1]


def describe_budget(account: dict[str, float | int], budget: float) -> str:
    """One line: the budget, what was used, and where it went."""

    def part(name: str) -> str:
        return f"{name} {account[f'{name}_seconds'] / 60:.1f} min ({account[f'{name}_trials']})"

    cut = account.get("budget_cut_trials", 0)
    return (
        f"budget {spoken_duration(budget)}: used {account['wall_seconds'] / 60:.1f} min — "
        f"{part('complete')}{f' ({cut} cut short by the budget)' if cut else ''}, "
        f"{part('pruned')}, {part('fail')}, overhead "
        f"{account['overhead_seconds'] / 60:.1f} min (data, start-up, between trials)"
    )


def summary(outcome: SearchOutcome, config: SearchConfig) -> str:
    """The closing summary: best trial, how it compares with the seed baseline, what next."""
    study = outcome.study
    states = {state: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state] += 1
    lines = [
        f"study {config.study!r} ({config.shown_storage}): {states[TrialState.COMPLETE]} complete, "
        f"{states[TrialState.PRUNED]} pruned, {states[TrialState.FAIL]} failed"
    ]
    if config.budget is not None and outcome.budget_run is not None:
        lines.append(describe_budget(outcome.budget_run, config.budget))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        lines.append("no complete trial yet")
        return "\n".join(lines)
    best = study.best_trial
    lines.append(
        f"best: trial {best.number}, validation AUC {best.value:.4f}{with_interval(study, best)}"
    )
    lines.append("  params: " + ", ".join(f"{k}={_short(v)}" for k, v in best.params.items()))
    runners_up = [t for t in top_trials(study, TOP_IN_SUMMARY) if t.number != best.number]
    if runners_up:
        lines.append(
            "  next: "
            + "; ".join(
                f"trial {t.number} {t.value:.4f}{with_interval(study, t)}" for t in runners_up
            )
        )
    ties = [t.number for t in runners_up if inside_interval(study, best, t)]
    if ties:
        lines.append(
            f"  trial(s) {', '.join(map(str, ties))} lie inside the best one's interval: not "
            "shown to be worse; search.submit ensembles them with it by default"
        )
    baseline = seed_baseline(study)
    if baseline is not None:
        gain = best.value - baseline.value
        lines.append(
            f"seed baseline (trial {baseline.number}): {baseline.value:.4f}; "
            f"search gained {gain:+.4f} AUC"
        )
    if note := study.user_attrs.get("validation_note"):
        lines.append(f"validation: {note}")
    if caveat := validation_caveat(study.user_attrs):
        lines.append(f"note: {caveat}")
    lines.append(f"live view:  {dashboard_command(config.shown_storage)}")
    if config.report:
        lines.append(f"report:     {config.output_dir / 'report.html'}")
    lines.append(
        f"submit:     python -m search.submit --study {config.study}"
        + (f" --storage {config.shown_storage}" if config.storage else "")
    )
    return "\n".join(lines)


def with_interval(study: optuna.Study, trial: FrozenTrial) -> str:
    """`` (95% 0.871–0.912)`` for a trial's validation AUC, from the study's class counts."""
    bounds = validation_interval(study, trial)
    return "" if bounds is None else f" (95% {bounds[0]:.3f}–{bounds[1]:.3f})"


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
