"""Run a search: load data once, open or resume the study, optimize, summarise."""

from __future__ import annotations

import logging
import os
import time
import warnings
from datetime import datetime
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from pcam.data import TrainingData, default_data_dir, load_training_data
from pcam.errors import stop_signals_as_interrupts
from pcam.runtime import resolve
from search.config import GENERATION_ENV, STARTED_ENV, SearchConfig
from search.console import describe_trial, progress_bar
from search.dashboard import name_metric, upload_outputs, write_note
from search.pruning import first_judged_epoch
from search.storage import STORAGE_ERRORS
from search.study import FINISHED, finished_trials, open_study
from search.summary import SearchOutcome, is_surplus, record_budget

if TYPE_CHECKING:
    from search.objective import Objective

logger = logging.getLogger(__name__)

STORAGE_RETRIES = 5  # per process: a sixth storage error ends the worker
STORAGE_RETRY_SECONDS = 5.0


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
                budget_run = record_budget(study, config, since, time.monotonic() - started)
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
        with stop_signals_as_interrupts():
            run_keras_tuner(config, data, study=study)
    finally:  # an interrupted search gets its report too
        _write_note(study, config)
        if config.report:
            _write_report(study, config)
    return SearchOutcome(study, resumed, _started_trials(study) - started_with)


def _started_trials(study: optuna.Study) -> int:
    """Trials that ran or run (enqueued ones that still wait do not count)."""
    return sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))


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
    from search.objective import TrialFailed

    limits = [config.timeout, config.budget]
    deadline = min((started + limit for limit in limits if limit is not None), default=None)
    objective = _make_objective(config, data, started=started)
    bar = progress_bar(study, config)

    def on_trial_end(study: optuna.Study, trial: FrozenTrial) -> None:
        if is_surplus(trial):
            return
        logger.info(describe_trial(trial))
        bar.n = finished_trials(study)
        bar.refresh()

    storage_errors = 0
    ran = 0
    with bar, stop_signals_as_interrupts():
        while True:
            try:
                if not _wait_for_slot(study, config, deadline):
                    return False
                if config.recycle_after and ran >= config.recycle_after:
                    return True
                if config.budget is not None and _too_little_left(
                    study, config, left=started + config.budget - time.monotonic()
                ):
                    return False
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
                    if _result_dropped(error, study, objective.last_trial, config):
                        continue
                    raise
                storage_errors += 1
                _wait_out(failure, storage_errors, config)


def _make_objective(config: SearchConfig, data: TrainingData, *, started: float) -> Objective:
    """The objective this process's trials run, on the runtime the settings resolve to."""
    # Keras loads here, not at import: a bad command line is refused before the backend loads.
    from search.objective import Objective

    runtime = resolve(
        precision=config.precision,
        jit_compile=config.jit_compile,
        val_batch_size=config.val_batch_size,
    )
    logger.info(f"worker {config.worker_index}: {runtime.describe()}")
    return Objective(
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


def _result_dropped(
    error: BaseException, study: optuna.Study, number: int | None, config: SearchConfig
) -> bool:
    """Whether ``error`` only says that trial ``number`` was settled by another worker, whose
    result stands; this process's result is then dropped, with a line that says why."""
    worker = f"worker {config.worker_index}: trial {number} was"
    retry = _retry_of(study, number)
    if retry is not None:
        logger.warning(
            f"{worker} taken for dead while it ran (its heartbeats could not reach the "
            f"storage), failed by another worker and re-run as trial {retry}; its result here "
            "is dropped"
        )
        return True
    if _told_elsewhere(error, study, number):
        logger.warning(
            f"{worker} recorded by another worker that ran it too (a race between two "
            "workers starting the same queued trial); its result here is dropped"
        )
        return True
    return False


def _wait_out(failure: BaseException, attempt: int, config: SearchConfig) -> None:
    """Wait before retrying after a storage error; past ``STORAGE_RETRIES``, raise it.

    A shared database can refuse a write for a moment (a lock held past the timeout, a dropped
    connection, a server restart); the study is intact, so wait and go on. A trial left
    RUNNING is failed and re-run once its heartbeat expires.
    """
    cause = failure.__cause__ or failure
    said = f"{type(cause).__name__}: {str(cause).splitlines()[0]}"
    if attempt > STORAGE_RETRIES:
        raise failure from failure.__cause__  # search.run says what failed and what to do
    logger.warning(
        f"worker {config.worker_index}: storage error ({said}); retry "
        f"{attempt} of {STORAGE_RETRIES} in {STORAGE_RETRY_SECONDS:.0f} s"
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


def _too_little_left(study: optuna.Study, config: SearchConfig, *, left: float) -> bool:
    """Whether the budget's ``left`` seconds are fewer than the quickest finished trial took to
    reach the first epoch a pruner may judge: a trial started now would be stopped at its first
    batches (``Objective._time_cap``) and only add a row to the study. Says so once."""
    first = first_judged_epoch(config.max_epochs)
    quickest = min(
        (
            attrs.get("build_seconds", 0.0)
            + attrs["first_epoch_seconds"]
            + (first - 1) * attrs["seconds_per_epoch"]
            for attrs in (t.user_attrs for t in study.get_trials(deepcopy=False, states=FINISHED))
            if attrs.get("epochs_run", 0) >= first and "seconds_per_epoch" in attrs
        ),
        default=None,
    )
    if quickest is None or left >= quickest:
        return False
    logger.info(
        f"worker {config.worker_index}: {max(left, 0.0):.0f} s of the budget left, less than "
        f"the quickest trial so far took to reach epoch {first} ({quickest:.0f} s), the first "
        "a pruner may judge: no more trials start"
    )
    return True


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
