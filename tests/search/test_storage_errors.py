"""Opening a storage: the URL's, the driver's or the server's fault is one clear line; a bug
in the code keeps its traceback."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from pcam.errors import StorageError
from search import run, runner, storage, study, submission
from search.config import SearchConfig
from tests.conftest import new_postgres_database


def _open_by_run(url: str):
    return study.connect(SearchConfig(storage=url))


def _open_by_submit(url: str):
    return submission.open_existing_study(submission.SubmitConfig(storage=url))


def _open_by_report(url: str):
    return study.load_existing_study("pcam", url)


OPENERS = [_open_by_run, _open_by_submit, _open_by_report]


@pytest.mark.parametrize(
    ("url", "file"),
    [
        ("sqlite://", None),  # in memory
        ("sqlite:///:memory:", None),
        ("sqlite:///rel/x.db?timeout=30", Path("rel/x.db")),  # the query string is SQLAlchemy's
        ("sqlite:////abs/x.db", Path("/abs/x.db")),
        ("sqlite+pysqlite:///x.db", Path("x.db")),
        ("postgresql://ann@127.0.0.1/db", None),
        ("sqlite:x.db", None),  # unreadable: opening it says so
    ],
)
def test_the_file_of_a_sqlite_url(url, file):
    assert storage.sqlite_file(url) == file


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("not a url", "cannot open it"),
        ("sqlite:studies/x.db", "cannot open it"),  # no "//": SQLAlchemy cannot read it
        ("nosuchdialect://h/db", "cannot open it"),
        ("mysql://ann:s3cret@127.0.0.1/db", "cannot open it"),  # no MySQL driver installed
    ],
)
def test_a_bad_url_or_missing_driver_is_one_clear_line(opener, url, said):
    with pytest.raises(StorageError) as raised:
        opener(url)
    message = str(raised.value)
    assert said in message and "s3cret" not in message


@pytest.mark.parametrize("opener", OPENERS)
def test_a_bug_is_not_turned_into_cannot_open_it(opener, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'pcam.db'}"
    optuna.create_study(study_name="pcam", storage=url)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(optuna, "get_all_study_names", broken)
    with pytest.raises(ZeroDivisionError):
        opener(url)


# One process of a search starting on a machine: ready once imported, it waits for the moment
# it is given, then opens the storage as search.run does, logging each opening tried again.
OPEN_AT = """
import logging, sys, time
from search.config import SearchConfig
from search.study import connect
logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
print("ready", flush=True)
time.sleep(max(0.0, float(sys.stdin.readline()) - time.time()))
connect(SearchConfig(storage=sys.argv[1]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "pg"])
def test_processes_opening_one_new_database_at_once_all_open_it(request, tmp_path, database):
    """Six searches start on one new database at the same moment (machines starting a study
    together): each opens it, though some find the tables half made by another and open
    again. Without the retry most PostgreSQL openings fail, and about a third of SQLite's."""
    retried = 0
    for attempt in range(2):
        if database == "sqlite":
            url = f"sqlite:///{tmp_path / f'{attempt}.db'}"
        else:
            url = request.getfixturevalue("postgres_url")
            url = new_postgres_database(url) if attempt else url
        argv = [sys.executable, "-c", OPEN_AT, url]
        openers = [
            subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for _ in range(6)
        ]  # fmt: skip
        assert [opener.stdout.readline() for opener in openers] == ["ready\n"] * 6
        moment = f"{time.time() + 0.5}\n"
        for opener in openers:  # each told the moment before any of them reaches it
            opener.stdin.write(moment)
            opener.stdin.flush()
        errors = [opener.communicate(timeout=120)[1] for opener in openers]
        assert [opener.returncode for opener in openers] == [0] * 6, "\n".join(errors)[-3000:]
        retried += sum(err.count("search.storage: opening") for err in errors)
    assert retried, "no opening met another's: the test raced nothing"


def _make_read_only(path: Path) -> Callable[[], object]:
    """Make ``path`` unwritable, even to root (an immutable file); returns the undo."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        return lambda: path.chmod(0o644)
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"running as root and chattr +i is refused here: {done.stderr.strip()}")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_database_is_one_line_saying_so_and_can_still_be_reported(tmp_path):
    database = tmp_path / "pcam.db"
    url = f"sqlite:///{database}"
    optuna.create_study(study_name="pcam", storage=url)
    undo = _make_read_only(database)
    try:
        with pytest.raises(StorageError) as raised:
            _open_by_run(url)
        assert "read-only: make it writable" in str(raised.value)
        assert _open_by_report(url).study_name == "pcam"  # reading needs no write
    finally:
        undo()


@pytest.mark.slow
@pytest.mark.parametrize("locked_from", ["the start", "mid-search"])
def test_a_database_locked_past_the_timeout_ends_the_search_in_one_line_losing_nothing(
    tmp_path, tiny_synthetic, monkeypatch, capsys, locked_from
):
    """Locked from the start, resuming the study fails at once; locked once a trial has been
    recorded, the worker retries and then gives up. One line either way."""
    database = tmp_path / "locked.db"
    url = f"sqlite:///{database}"
    argv = ["--data", str(tiny_synthetic), "--storage", url, "--max-epochs", "1", "--limit",
            "40", "--no-progress", "--no-report"]  # fmt: skip
    assert run.main([*argv, "--trials", "1"]) == 0
    monkeypatch.setattr(storage, "SQLITE_LOCK_SECONDS", 0.5)
    monkeypatch.setattr(runner, "STORAGE_RETRY_SECONDS", 0.1)
    monkeypatch.setattr(runner, "STORAGE_RETRIES", 1)
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as other_program:
        if locked_from == "the start":
            other_program.execute("BEGIN EXCLUSIVE")
        else:
            describe = runner.describe_trial

            def lock_once_recorded(trial):
                if not other_program.in_transaction:
                    other_program.execute("BEGIN EXCLUSIVE")
                return describe(trial)

            monkeypatch.setattr(runner, "describe_trial", lock_once_recorded)
        recorded = _trials(url)
        capsys.readouterr()
        status = run.main([*argv, "--trials", "4"])
        if locked_from == "mid-search":
            recorded = _trials(url)  # read while locked: what the worker had recorded
        other_program.execute("ROLLBACK")
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-3000:]
    assert "database is locked" in errors[0] and "another program held a lock" in errors[0]
    assert "run the same command to resume" in errors[0]
    retried = f"retry {runner.STORAGE_RETRIES} of {runner.STORAGE_RETRIES}" in err
    assert retried == (locked_from == "mid-search"), err[-3000:]
    assert len(recorded) == (1 if locked_from == "the start" else 2)
    assert _trials(url)[: len(recorded)] == recorded


def _trials(url: str) -> list[tuple]:
    trials = optuna.load_study(study_name="pcam", storage=url).trials
    return [(t.number, t.state, t.value) for t in trials]


def test_an_error_raised_while_handling_a_storage_error_counts_as_one():
    """Optuna's trial bookkeeping can fail with an error of its own while the storage is down
    (an UnboundLocalError in Optuna 5): it is retried like the storage error behind it."""
    from search.runner import storage_failure

    down = optuna.exceptions.StorageInternalError("commit failed")
    try:
        try:
            raise down
        except optuna.exceptions.StorageInternalError:
            raise UnboundLocalError("cannot access local variable 'updated_state'")  # noqa: B904
    except UnboundLocalError as error:
        assert storage_failure(error) is down
    assert storage_failure(ValueError("a bug")) is None
