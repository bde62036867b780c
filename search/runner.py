"""Run a search: load data once, open or resume the study, optimize, summarise."""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from pcam.data import TrainingData, default_data_dir, load_training_data
from search.config import SearchConfig
from search.objective import Objective, TrialFailed
from search.study import FINISHED, finished_trials, open_study


@dataclass(frozen=True)
class SearchOutcome:
    study: optuna.Study
    resumed: bool
    trials_run: int


def load_data(config: SearchConfig) -> TrainingData:
    """The data named by ``--data``, or the embedded synthetic set."""
    path = config.data or default_data_dir(progress=config.progress)
    return load_training_data(
        path,
        seed=config.seed,
        val_fraction=config.val_fraction,
        limit=config.limit,
        progress=config.progress,
    )


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a search like Ctrl-C: the running trial is marked failed, nothing else lost."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_search(config: SearchConfig) -> SearchOutcome:
    """Run trials until the study holds ``config.trials`` finished (complete or pruned) ones.

    Failed trials do not count towards ``--trials``: a search that hits an error still ends
    with the asked number of usable trials (or at ``--timeout``).
    """
    # Our own line per trial reports failures; Optuna would add a traceback for each.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    data = load_data(config)
    log(f"data: {data.describe()}")
    study, resumed = open_study(config, data)
    already = finished_trials(study)
    remaining = config.trials - already
    if remaining <= 0:
        log(f"study {config.study!r} already has {already} finished trials; raise --trials to add")
        return SearchOutcome(study, resumed, 0)
    objective = Objective(
        data, max_epochs=config.max_epochs, max_params=config.max_params, seed=config.seed
    )
    bar = tqdm(
        total=config.trials,
        initial=already,
        desc=f"study {config.study}",
        unit="trial",
        disable=not config.progress,
        file=sys.stderr,
    )
    started_with = len(study.trials)

    def on_trial_end(study: optuna.Study, trial: FrozenTrial) -> None:
        tqdm.write(describe_trial(trial), file=sys.stderr)
        if trial.state in FINISHED:
            bar.update(1)
        if finished_trials(study) >= config.trials:
            study.stop()

    with bar, _sigterm_as_interrupt():
        study.optimize(
            objective,
            n_trials=None,
            timeout=config.timeout,
            callbacks=[on_trial_end],
            catch=(TrialFailed,),
            gc_after_trial=True,
        )
    return SearchOutcome(study, resumed, len(study.trials) - started_with)


def describe_trial(trial: FrozenTrial) -> str:
    """One line per finished trial: number, state, value, epochs run, seconds."""
    seconds = (
        (trial.datetime_complete - trial.datetime_start).total_seconds()
        if trial.datetime_complete and trial.datetime_start
        else math.nan
    )
    epochs = len(trial.intermediate_values)
    value = f"{trial.value:.4f}" if trial.value is not None else "  -   "
    best_so_far = max(trial.intermediate_values.values(), default=math.nan)
    detail = ""
    if trial.state == TrialState.PRUNED:
        detail = f"  best {best_so_far:.4f}  " + trial.user_attrs.get("prune_reason", "")
    elif trial.state == TrialState.FAIL:
        detail = "  " + trial.user_attrs.get("fail_reason", "failed (see the log above)")
    role = " (seed baseline)" if trial.user_attrs.get("role") == "seed_baseline" else ""
    return (
        f"trial {trial.number:>4} {trial.state.name:<8} val_auc {value}  epochs {epochs:>2}  "
        f"{seconds:6.1f} s{role}{detail}"
    )


def summary(outcome: SearchOutcome, config: SearchConfig) -> str:
    """The closing summary: best trial, how it compares with the seed baseline, what next."""
    study = outcome.study
    states = {state: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state] += 1
    lines = [
        f"study {config.study!r} ({config.storage_url}): {states[TrialState.COMPLETE]} complete, "
        f"{states[TrialState.PRUNED]} pruned, {states[TrialState.FAIL]} failed"
    ]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        lines.append("no complete trial yet")
        return "\n".join(lines)
    best = study.best_trial
    lines.append(f"best: trial {best.number}, validation AUC {best.value:.4f}")
    lines.append("  params: " + ", ".join(f"{k}={_short(v)}" for k, v in best.params.items()))
    baseline = next((t for t in complete if t.user_attrs.get("role") == "seed_baseline"), None)
    if baseline is not None:
        gain = best.value - baseline.value
        lines.append(
            f"seed baseline (trial {baseline.number}): {baseline.value:.4f}; "
            f"search gained {gain:+.4f} AUC"
        )
    storage = config.storage_url
    lines.append(f"live view:  optuna-dashboard {storage}")
    lines.append(
        f"submit:     python -m search.submit --study {config.study}"
        + (f" --storage {config.storage}" if config.storage else "")
    )
    return "\n".join(lines)


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def log(message: str) -> None:
    print(message, file=sys.stderr)


def elapsed(started: float) -> str:
    return f"{time.perf_counter() - started:.0f} s"
