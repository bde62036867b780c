"""Run a search: load data once, open or resume the study, optimize, summarise."""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from pcam.data import TrainingData, default_data_dir, load_training_data
from pcam.runtime import resolve
from search.config import GENERATION_ENV, STARTED_ENV, SearchConfig, spoken_duration
from search.console import (
    describe_trial,
    progress_bar,
    sigterm_as_interrupt,
    trial_seconds,
)
from search.dashboard import dashboard_command, name_metric, upload_outputs, write_note
from search.priors import seed_baseline
from search.ranking import inside_interval, top_trials, validation_interval
from search.study import STORAGE_ERRORS, finished_trials, open_study, validation_caveat

logger = logging.getLogger(__name__)

STORAGE_RETRIES = 5  # per process: a sixth storage error ends the worker
STORAGE_RETRY_SECONDS = 5.0
TOP_IN_SUMMARY = 3


@dataclass(frozen=True)
class SearchOutcome:
    study: optuna.Study
    resumed: bool
    trials_run: int
    since: datetime | None = None  # when this run began: the trials it ran started after
    wall_seconds: float = 0.0
    # True when this process ran its --recycle-after trials and a fresh one should go on.
    recycle: bool = False
    budget_run: dict[str, Any] | None = None  # how --budget went, as recorded in the study


def load_data(config: SearchConfig) -> TrainingData:
    """The data named by ``--data``, or the embedded synthetic set."""
    path = config.data or default_data_dir(progress=config.progress)
    return load_training_data(
        path,
        seed=config.seed,
        val_fraction=config.val_fraction,
        limit=config.limit,
        groups=config.groups,
        val_data=config.val_data,
        progress=config.progress,
    )


def run_search(config: SearchConfig) -> SearchOutcome:
    """Run trials until the study holds ``config.trials`` finished (complete or pruned) ones.

    Failed trials do not count towards ``--trials``: a search that hits an error, or loses a
    worker, still ends with the asked number of usable trials (or at ``--timeout`` or
    ``--budget``). With ``--workers N`` the study is prepared here and N worker processes
    share it.
    """
    # A recycled process goes on with the search its predecessor began: --budget, --timeout
    # and the budget's account count from then.
    began = float(os.environ.get(STARTED_ENV) or time.time())
    started = time.monotonic() - max(time.time() - began, 0.0)
    since = datetime.fromtimestamp(began)  # Optuna stamps trials with local naive times
    # Our own line per trial reports failures; Optuna would add a traceback for each.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes per new model
    data = load_data(config)
    if config.worker_index == 0:
        logger.info(f"data: {data.describe()}")
    if config.engine == "keras-tuner":
        return _run_keras_tuner(config, data)
    study, resumed = open_study(config, data)
    name_metric(study)
    already = finished_trials(study)
    if already >= config.trials:
        logger.info(
            f"study {config.study!r} already has {already} finished trials; raise --trials to add"
        )
        return SearchOutcome(study, resumed, 0)
    started_with = _started_trials(study)
    recycle = False
    budget_run = None
    try:
        if config.workers > 1:
            from search.workers import supervise_workers

            supervise_workers(config, study, began=began)
        else:
            recycle = _optimize(config, data, study, started=started)
    finally:  # an interrupted search gets its report too; a recycled one leaves it to the last
        if config.worker_index == 0 and not recycle:
            if config.budget is not None:
                budget_run = _record_budget(study, config, since, time.monotonic() - started)
            _write_note(study, config)
            if config.report:
                _write_report(study, config)
    return SearchOutcome(
        study,
        resumed,
        _started_trials(study) - started_with,
        since=since,
        wall_seconds=time.monotonic() - started,
        recycle=recycle,
        budget_run=budget_run,
    )


def _run_keras_tuner(config: SearchConfig, data: TrainingData) -> SearchOutcome:
    """The same search through KerasTuner (``search.tuner_engine``), recorded into Optuna."""
    from search.tuner_engine import open_tuner_study, run_keras_tuner

    study, resumed = open_tuner_study(config, data)
    name_metric(study)
    started_with = _started_trials(study)
    try:
        with sigterm_as_interrupt():
            run_keras_tuner(config, data, study=study)
    finally:  # an interrupted search gets its report too
        _write_note(study, config)
        if config.report:
            _write_report(study, config)
    return SearchOutcome(study, resumed, _started_trials(study) - started_with)


def _started_trials(study: optuna.Study) -> int:
    """Trials that ran or run (enqueued ones that still wait do not count)."""
    return sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))


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
            if t.datetime_start is not None and t.datetime_start >= since and not _is_surplus(t)
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


def _is_surplus(trial: FrozenTrial) -> bool:
    return trial.user_attrs.get("fail_reason", "").startswith("surplus")


def _record_budget(
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


def _write_note(study: optuna.Study, config: SearchConfig) -> None:
    try:
        write_note(study, config)
    except STORAGE_ERRORS as error:  # the trials are stored; the note is a convenience
        logger.warning(f"study note not written ({type(error).__name__}: {error})")


def _write_report(study: optuna.Study, config: SearchConfig) -> None:
    from search.report import write_report

    try:
        report = write_report(study, config.output_dir / "report.html")
        logger.info(f"report: {report}")
    except Exception as error:  # the trials are stored; a report problem must not fail the search
        logger.warning(
            f"report not written ({type(error).__name__}: {error}); "
            f"run python -m search.report --study {config.study}"
        )
        return
    upload_outputs(study, [report])


def _optimize(
    config: SearchConfig, data: TrainingData, study: optuna.Study, *, started: float
) -> bool:
    """This process's trials, one at a time, while the study has free slots; True when it
    stopped after ``--recycle-after`` trials with slots still free (a fresh process goes on).

    ``started`` (``time.monotonic()``) is when the search began: ``--budget`` counts from it,
    data loading included.
    """
    # Keras loads here, not at import: a bad command line is refused before the backend loads.
    from search.objective import Objective, TrialFailed

    limits = [config.timeout, config.budget]
    deadline = min((started + limit for limit in limits if limit is not None), default=None)
    runtime = resolve(
        precision=config.precision,
        jit_compile=config.jit_compile,
        val_batch_size=config.val_batch_size,
    )
    logger.info(f"worker {config.worker_index}: {runtime.describe()}")
    objective = Objective(
        data,
        max_epochs=config.max_epochs,
        max_params=config.max_params,
        seed=config.seed,
        target_trials=config.trials,
        runtime=runtime,
        deadline=None if config.budget is None else started + config.budget,
        time_cap=config.trial_cap_seconds,
        space=config.search_space,
        generation=int(os.environ.get(GENERATION_ENV) or 0),
    )
    bar = progress_bar(study, config)

    def on_trial_end(study: optuna.Study, trial: FrozenTrial) -> None:
        if _is_surplus(trial):
            return
        logger.info(describe_trial(trial))
        bar.n = finished_trials(study)
        bar.refresh()

    storage_errors = 0
    ran = 0
    with bar, sigterm_as_interrupt():
        while True:
            try:
                if not _wait_for_slot(study, config, deadline):
                    return False
                if config.recycle_after and ran >= config.recycle_after:
                    return True
                remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
                objective.last_trial = None  # set when this call's trial starts
                study.optimize(
                    objective,
                    n_trials=1,
                    timeout=remaining,
                    callbacks=[on_trial_end],
                    catch=(TrialFailed,),
                )
                ran += 1
            except Exception as error:
                failure = storage_failure(error)
                if failure is None:
                    retry = _retry_of(study, objective.last_trial)
                    if retry is not None:
                        logger.warning(
                            f"worker {config.worker_index}: trial {objective.last_trial} was "
                            "taken for dead while it ran (its heartbeats could not reach the "
                            "storage), failed by another worker and re-run as trial "
                            f"{retry}; its result here is dropped"
                        )
                        continue
                    if _told_elsewhere(error, study, objective.last_trial):
                        logger.warning(
                            f"worker {config.worker_index}: trial {objective.last_trial} was "
                            "recorded by another worker that ran it too (a race between two "
                            "workers starting the same queued trial); its result here is "
                            "dropped"
                        )
                        continue
                    raise
                # A shared database can refuse a write for a moment (a lock held past the
                # timeout, a dropped connection, a server restart); the study is intact, so
                # wait and go on. A trial left RUNNING is failed and re-run once its heartbeat
                # expires.
                storage_errors += 1
                cause = failure.__cause__ or failure
                said = f"{type(cause).__name__}: {str(cause).splitlines()[0]}"
                if storage_errors > STORAGE_RETRIES:
                    # search.run says what failed and what to do, in one line
                    raise failure from failure.__cause__
                logger.warning(
                    f"worker {config.worker_index}: storage error ({said}); retry "
                    f"{storage_errors} of {STORAGE_RETRIES} in {STORAGE_RETRY_SECONDS:.0f} s"
                )
                time.sleep(STORAGE_RETRY_SECONDS)


def storage_failure(error: BaseException) -> BaseException | None:
    """The storage error behind ``error``: itself, its cause, or one being handled when it was
    raised (Optuna's trial bookkeeping can fail with an error of its own, such as
    ``UnboundLocalError``, while it handles a storage that does not answer)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, STORAGE_ERRORS):
            return current
        current = current.__cause__ or current.__context__
    return None


def _retry_of(study: optuna.Study, number: int | None) -> int | None:
    """The trial that re-runs trial ``number`` after a worker failed it as stale, if any."""
    if number is None:
        return None
    try:
        trials = study.get_trials(deepcopy=False)
    except STORAGE_ERRORS:
        return None
    return next((t.number for t in trials if t.system_attrs.get("failed_trial") == number), None)


def _told_elsewhere(error: BaseException, study: optuna.Study, number: int | None) -> bool:
    """Whether Optuna refused to record this process's trial because another process had
    already finished it: a ``ValueError`` from telling it, and the storage holds the trial as
    complete or pruned (asked of the storage, not read from Optuna's wording). A trial whose
    own objective raised is failed by Optuna, so it is not mistaken for one."""
    if not isinstance(error, ValueError) or number is None:
        return False
    try:
        trial = study.get_trials(deepcopy=False)[number]
    except STORAGE_ERRORS:
        return False
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


def _wait_for_slot(study: optuna.Study, config: SearchConfig, deadline: float | None) -> bool:
    """True when a new trial may start; False when the study is full or time is up.

    Trials RUNNING in other workers hold their slots; a dead worker's trial is failed once
    its heartbeat is ``2 × --heartbeat`` seconds old, which frees the slot (and Optuna
    enqueues a retry of it).
    """
    told = False
    while deadline is None or time.monotonic() < deadline:
        optuna.storages.fail_stale_trials(study)
        finished = finished_trials(study)
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if finished >= config.trials:
            return False
        if finished + running < config.trials:
            return True
        if not told:
            logger.info(
                f"worker {config.worker_index}: {running} trial(s) still running fill the study; "
                "waiting for them (a dead worker's trial is re-run after its heartbeat expires)"
            )
            told = True
        time.sleep(min(5.0, config.heartbeat / 2))
    return False


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
