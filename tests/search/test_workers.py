"""Parallel search with real worker processes: exact trial counts, no lost trial, no lock errors."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.exceptions import StorageInternalError
from optuna.trial import TrialState

from pcam.data import load_training_data
from search import study as study_module
from search.config import SearchConfig
from search.space import SPACE
from search.storage import make_storage
from tests.helpers import children_take_sigint, stderr_after_stop

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _search(
    data, storage: str, study: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    argv = [
        sys.executable, "-m", "search.run", "--data", str(data), "--study", study,
        "--storage", storage, "--max-epochs", "1", "--limit", "40", "--no-progress",
        "--no-report", "--heartbeat", "2", *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _check_study(storage: str, study: str, trials: int) -> list[optuna.trial.FrozenTrial]:
    loaded = optuna.load_study(study_name=study, storage=storage).trials
    finished = [t for t in loaded if t.state in FINISHED]
    assert len(finished) == trials, [(t.number, t.state.name) for t in loaded]
    assert TrialState.RUNNING not in {t.state for t in loaded}
    assert len({t.number for t in loaded}) == len(loaded)
    return loaded


def test_of_searches_starting_one_new_study_only_the_one_that_made_it_queues_its_trials(
    tmp_path, tiny_synthetic, monkeypatch
):
    """Another machine made the study a moment after this one looked for it, and has not yet
    queued the seed design and the priors: this one joins the study and queues nothing (were
    both to queue them, each would train twice); the machine that made it queues them once."""
    config = SearchConfig(
        data=str(tiny_synthetic), limit=40, study="s", storage=f"sqlite:///{tmp_path / 's.db'}"
    )
    data = load_training_data(tiny_synthetic, limit=40, progress=False)
    storage, _ = study_module.connect(config)
    optuna.create_study(study_name="s", storage=storage, direction="maximize")  # the other one
    monkeypatch.setattr(study_module, "connect", lambda config: (storage, False))  # looked first
    joined, resumed = study_module.open_study(config, data)
    assert joined.trials == [] and not resumed
    made, _ = study_module.open_study(dataclasses.replace(config, study="t"), data)
    roles = [t.user_attrs["role"] for t in made.trials]
    assert roles[0] == "seed_baseline" and roles[1:] and set(roles[1:]) == {"prior"}


@pytest.mark.slow
def test_two_workers_ride_out_a_postgresql_restart(tiny_synthetic, postgres_url):
    """Two workers on PostgreSQL, and the server stops for 5 s mid-search and comes back: the
    workers retry, the study ends with exactly --trials finished trials, none RUNNING, no
    number twice."""
    restart = os.environ.get("PCAM_TEST_POSTGRES_RESTART")
    if not restart:
        pytest.fail("PCAM_TEST_POSTGRES_RESTART is not set; .ci/postgres.sh sets it")
    search = _search(
        tiny_synthetic, postgres_url, "restart", "--trials", "4", "--workers", "2",
        "--max-params", "1000000", "--max-epochs", "2",
    )  # fmt: skip
    _wait_for_running_trial(search, postgres_url, "restart")
    subprocess.run(restart, shell=True, check=True, timeout=120)
    _, err = search.communicate(timeout=500)
    assert search.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    _check_study(postgres_url, "restart", 4)


def _wait_for_running_trial(
    search: subprocess.Popen, storage: str, study: str, timeout: float = 240
) -> optuna.trial.FrozenTrial:
    """A trial of ``search`` training with every dimension suggested, once another has
    finished; a search that ends or stalls first fails the test with its own words."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        if search.poll() is not None:
            try:
                err = search.communicate(timeout=30)[1]
            except subprocess.TimeoutExpired:  # a worker outlived it and holds its stderr
                err = "(a worker of it still runs)"
            raise AssertionError(f"the search ended first ({search.returncode}): {err[-3000:]}")
        try:
            # Opening a new database beside the search's own first opening: search.storage
            # tries again whichever of the two loses the race to create the tables.
            reader = optuna.storages.RDBStorage(storage, skip_table_creation=True)
            trials = optuna.load_study(study_name=study, storage=reader).trials
        except (KeyError, StorageInternalError, sqlalchemy.exc.SQLAlchemyError):
            continue  # no study, or not all of its tables, yet
        # Every dimension suggested: a re-run of a trial failed as stale carries its
        # predecessor's "worker" from the start, and its params only as far as they got.
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING
            and "worker" in t.user_attrs
            and len(t.params) == len(SPACE)
        ]
        if running and any(t.state in FINISHED for t in trials):
            return running[0]
    search.terminate()  # the parent stops its workers
    err = stderr_after_stop(search, within=60)
    raise AssertionError(f"no trial started in {timeout:g} s: {err[-3000:]}")


def _kill_mid_trial(search: subprocess.Popen, storage: str, study: str) -> optuna.trial.FrozenTrial:
    """SIGKILL the worker of a running trial while that trial has not ended: the worker is
    frozen first and its trial read again, since a one-epoch trial can end between the read
    and the kill (then the worker goes on and another trial is chosen). A trial the other
    worker failed as stale while its worker stood frozen counts as running: it was."""
    for _ in range(20):
        victim = _wait_for_running_trial(search, storage, study)
        reader = optuna.storages.RDBStorage(storage, skip_table_creation=True)  # tables made now
        pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        try:
            os.kill(pid, signal.SIGSTOP)
            deadline = time.time() + 10
            while _process_state(pid) not in ("T", "Z", None) and time.time() < deadline:
                time.sleep(0.01)
            if _process_state(pid) != "T":
                continue  # it ended, or would not stop: choose again
            state = optuna.load_study(study_name=study, storage=reader).trials[victim.number].state
            if state in (TrialState.RUNNING, TrialState.FAIL):
                os.kill(pid, signal.SIGKILL)
                return victim
        except ProcessLookupError:
            continue
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a killed one does not mind; a frozen one goes on
    raise AssertionError("every running trial had ended before its worker could be frozen")


def _process_state(pid: int) -> str | None:
    """The one-letter state of process ``pid`` (T: stopped, Z: ended), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


@pytest.mark.slow
def test_two_workers_on_the_local_default_finish_exactly_and_retry_a_killed_trial(
    tmp_path, tiny_synthetic
):
    """Two workers on the SQLite default, one of them killed mid-trial: no lock errors, its
    trial is failed and re-run with the same params, and the study ends with exactly
    --trials finished, each trial trained with --seed (0) + its number."""
    storage = f"sqlite:///{tmp_path / 'w.db'}"
    search = _search(
        tiny_synthetic, storage, "w", "--trials", "4", "--workers", "2", "--max-params", "1000000"
    )
    victim = _kill_mid_trial(search, storage, "w")
    _, err = search.communicate(timeout=400)
    assert search.returncode == 0, err[-3000:]
    assert "database is locked" not in err
    trials = _check_study(storage, "w", 4)
    assert len({t.user_attrs["worker"] for t in trials if "worker" in t.user_attrs}) == 2
    killed = next(t for t in trials if t.number == victim.number)
    assert killed.state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retry and retry[0].params == victim.params
    seeded = [t for t in trials if "training_seed" in t.user_attrs]
    assert seeded and all(t.user_attrs["training_seed"] == t.number for t in seeded)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "status", "database"),
    [(signal.SIGINT, 130, "sqlite"), (signal.SIGTERM, 143, "sqlite"), (signal.SIGINT, 130, "pg")],
)
def test_one_stop_ends_every_worker_and_leaves_no_trial_running(
    request, tmp_path, tiny_synthetic, stop, status, database
):
    """Ctrl-C as a terminal sends it (to the whole foreground process group) or a scheduler's
    SIGTERM to the parent: every process ends within seconds, with the conventional status,
    each interrupted trial FAIL with its reason, none RUNNING; the same command resumes. On
    SQLite and on PostgreSQL (the many-machine storage)."""
    if database == "pg":
        storage = request.getfixturevalue("postgres_url")
    else:
        storage = f"sqlite:///{tmp_path / 'stop.db'}"
    # enough trials that both workers still train when the stop comes (early prunes are quick)
    args = ("--trials", "12", "--workers", "2", "--max-params", "1000000")
    argv = [
        sys.executable, "-m", "search.run", "--data", str(tiny_synthetic), "--study", "stop",
        "--storage", storage, "--max-epochs", "3", "--limit", "40", "--no-progress",
        "--no-report", "--heartbeat", "2", *args,
    ]  # fmt: skip
    with children_take_sigint():  # its own process group, as a terminal's foreground job
        search = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
    _wait_for_running_trial(search, storage, "stop")
    time.sleep(3)  # both workers training
    workers = Path(f"/proc/{search.pid}/task/{search.pid}/children").read_text().split()
    assert len(workers) == 2
    # out of the terminal's reach: a Ctrl-C there gets to each worker once, through the parent
    assert all(os.getsid(int(pid)) != os.getsid(search.pid) for pid in workers)
    if stop == signal.SIGINT:
        os.killpg(search.pid, stop)  # the whole group: the terminal's way
    else:
        search.send_signal(stop)
    stopped = time.monotonic()
    err = stderr_after_stop(search, within=120)
    assert search.returncode == status, err[-3000:]
    assert time.monotonic() - stopped < 30, err[-3000:]
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert "Traceback" not in err, err[-3000:]
    trials = optuna.load_study(study_name="stop", storage=storage).trials
    assert TrialState.RUNNING not in {t.state for t in trials}
    failed = [t for t in trials if t.state == TrialState.FAIL]
    reason = f"interrupted by {stop.name}"
    assert failed and all(t.user_attrs.get("fail_reason") == reason for t in failed), [
        (t.number, t.user_attrs.get("fail_reason")) for t in failed
    ]
    if stop == signal.SIGINT:
        again = subprocess.run(argv, capture_output=True, text=True, timeout=400)
        assert again.returncode == 0, again.stderr[-3000:]
        _check_study(storage, "stop", 12)


@pytest.mark.slow
def test_a_search_whose_workers_all_die_exits_non_zero(tmp_path, tiny_synthetic):
    storage = f"sqlite:///{tmp_path / 'd.db'}"
    search = _search(tiny_synthetic, storage, "d", "--trials", "3", "--workers", "2")
    _wait_for_running_trial(search, storage, "d")
    children = Path(f"/proc/{search.pid}/task/{search.pid}/children").read_text().split()
    assert len(children) == 2
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    _, err = search.communicate(timeout=120)
    assert search.returncode == 1, err[-3000:]
    assert "of 3 finished trials" in err and "run the same command to resume" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_killed_search_resumes_without_losing_trials(tmp_path, tiny_synthetic):
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    # Over 1M weights a model is pruned untrained: the seed design, not the recipes.
    small = ("--trials", "3", "--max-params", "1000000")
    search = _search(tiny_synthetic, storage, "r", *small)
    _wait_for_running_trial(search, storage, "r")
    search.send_signal(signal.SIGKILL)
    search.wait()
    before = optuna.load_study(study_name="r", storage=storage).trials
    kept = [(t.number, t.value) for t in before if t.state in FINISHED]
    again = _search(tiny_synthetic, storage, "r", *small)
    _, err = again.communicate(timeout=400)
    assert again.returncode == 0, err[-3000:]
    after = _check_study(storage, "r", 3)
    assert [(t.number, t.value) for t in after if t.number in dict(kept)] == kept


@pytest.mark.parametrize("query", ["", "?timeout=30"])
def test_storage_sets_write_ahead_logging(tmp_path, query):
    import sqlite3

    url = f"sqlite:///{tmp_path / 'wal.db'}{query}"
    optuna.create_study(storage=make_storage(url, heartbeat=5), study_name="s")
    with sqlite3.connect(tmp_path / "wal.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert not [p.name for p in tmp_path.iterdir() if "?" in p.name]  # no file named "wal.db?…"


@pytest.mark.slow
def test_workers_start_no_trial_once_the_command_s_budget_is_spent(tmp_path, tiny_synthetic):
    """--budget is the command's wall time, whatever came before the workers started: here it
    was spent before they did (the search began 40 s before, with 30 s of budget, as when the
    parent's cache build outlasts the budget). They start no trial and the search ends."""
    from search.config import STARTED_ENV

    storage = f"sqlite:///{tmp_path / 'b.db'}"
    began = time.time() - 40
    environment = {**os.environ, STARTED_ENV: repr(began)}
    search = _search(
        tiny_synthetic, storage, "b", "--workers", "2", "--budget", "30s", env=environment
    )
    out, err = search.communicate(timeout=300)
    assert search.returncode == 0, err[-3000:]
    assert "started 2 workers" in err
    trials = optuna.load_study(study_name="b", storage=storage).trials
    assert trials and {t.state for t in trials} == {TrialState.WAITING}, trials  # none started
    assert "budget 30 s: used" in out


def test_workers_count_the_budget_from_the_command_s_start():
    """A worker started after the parent built the cache (minutes, on a large data set) has
    only what is left of --budget, not a budget of its own."""
    from search.config import STARTED_ENV, SearchConfig
    from search.workers import worker_environment

    began = time.time() - 300  # the parent started five minutes ago
    environment = worker_environment(SearchConfig(workers=2, budget=600), began=began)
    assert float(environment[STARTED_ENV]) == began


def test_workers_search_the_space_and_validate_on_the_data_of_the_parent(tmp_path):
    from search.config import SearchConfig
    from search.run import parse_args
    from search.workers import worker_argv

    narrow = tmp_path / "narrow.toml"
    narrow.write_text("crop = 64\n")
    config = SearchConfig(space=str(narrow), workers=2)
    argv = worker_argv(config, 1)
    assert argv[argv.index("--space") + 1] == str(narrow)
    worker = parse_args(argv[3:])
    assert worker.search_space == config.search_space != SearchConfig().search_space
    assert worker.study_defining() == config.study_defining()
    for validation in ({"groups": str(tmp_path / "g.csv")}, {"val_data": str(tmp_path / "v")}):
        config = SearchConfig(workers=2, **validation)
        worker = parse_args(worker_argv(config, 1)[3:])
        assert (worker.groups, worker.val_data) == (config.groups, config.val_data)
