"""Opening the database of studies: heartbeats that outlive an outage, SQLite's locks and
write-ahead log, several processes creating one database at once, and one clear line for a
storage that will not open."""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy

from pcam.errors import StorageError
from search.config import redacted

logger = logging.getLogger(__name__)

SQLITE_LOCK_SECONDS = 60.0  # how long a write waits for another process's lock on SQLite
# Several processes opening one new database at once (machines starting the same study) each
# create Optuna's tables and stamp its schema version; all but the first fail on a name or row
# the first just took. Opened again, they find it made.
OPENING_TRIES = 5
_JITTER = random.Random()  # not the global generator, which training seeds alike everywhere


class SteadyStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, with heartbeats that outlive a storage outage.

    Optuna records a running trial's heartbeats from a thread that ends, with a traceback, at
    the first error: a database restart would silence a healthy trial for good, and other
    workers would fail it as dead once its grace period passed. Here a failed heartbeat is
    logged once per outage and the next one tried as usual.
    """

    _quiet_since_error = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            if getattr(self, "engine", None) is not None:
                self.engine.dispose()  # an opening that failed keeps no connection open
            raise

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as error:
            if not self._quiet_since_error:
                cause = error.__cause__ or error
                logger.warning(
                    f"a heartbeat was not recorded ({type(cause).__name__}: "
                    f"{str(cause).splitlines()[0]}); the next one is tried as usual"
                )
            self._quiet_since_error = True
        else:
            self._quiet_since_error = False


def make_storage(url: str, *, heartbeat: int) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats: a trial whose worker died is failed and re-run.

    A worker that stops sending heartbeats for ``2 × heartbeat`` seconds has its trial
    marked FAIL by the next worker that checks, and a copy of it is enqueued (up to 3 times).
    SQLite gets a ``SQLITE_LOCK_SECONDS`` lock timeout and write-ahead logging, so that a few
    local workers wait for each other instead of failing with "database is locked". Opening
    a new database that another process is setting up at the same moment is tried again.
    """
    sqlite = url.startswith("sqlite")
    engine_kwargs = (
        {"connect_args": {"timeout": SQLITE_LOCK_SECONDS}} if sqlite else {"pool_pre_ping": True}
    )

    def open_storage() -> SteadyStorage:
        if sqlite:
            _enable_wal(url)
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return SteadyStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=3, inherit_intermediate_values=False
                ),
            )

    for attempt in range(1, OPENING_TRIES):
        began = time.monotonic()
        try:
            return open_storage()
        except OPENING_ERRORS as error:
            if not lost_creation_race(error, waited=time.monotonic() - began):
                raise
            said = str(error).splitlines()[0]
            logger.debug(f"opening {redacted(url)} again, another process was making it: {said}")
        time.sleep(0.2 * attempt * (1 + _JITTER.random()))  # apart, not in step again
    return open_storage()


def lost_creation_race(error: BaseException, *, waited: float) -> bool:
    """Whether ``error`` is another process creating the same tables first: a unique name or
    row taken (PostgreSQL's catalogue, the schema version), a table that "already exists", or
    SQLite's "database is locked" given at once, without waiting out its lock timeout (to a
    change of journal mode, or to a process that read the schema as another one changed it).
    The errors behind ``error`` count too: Optuna words some of them as its own."""
    link: BaseException | None = error
    while link is not None:
        message = str(link)
        if (
            isinstance(link, sqlalchemy.exc.IntegrityError)
            or "already exists" in message
            or ("database is locked" in message and waited < SQLITE_LOCK_SECONDS / 2)
        ):
            return True
        link = link.__cause__
    return False


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (its query string, such as ``?timeout=30``, is SQLAlchemy's,
    not part of the file's name); None for another database, an in-memory one, or a URL
    SQLAlchemy cannot read (opening it then says so in one line)."""
    if not url.startswith("sqlite"):
        return None
    try:
        path = sqlalchemy.engine.make_url(url).database
    except sqlalchemy.exc.ArgumentError:
        return None
    return None if path in (None, "", ":memory:") else Path(path)


def _enable_wal(url: str) -> None:
    """Write-ahead logging on the SQLite file of ``url``."""
    path = sqlite_file(url)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_LOCK_SECONDS)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


# What opening a storage raises when the URL, the driver or the server is at fault, not the
# code: a URL SQLAlchemy cannot read or whose dialect it lacks, a refused or absent server,
# a driver that is not installed, a storage Optuna cannot use. Anything else is a bug and
# keeps its traceback.
OPENING_ERRORS = (
    sqlalchemy.exc.SQLAlchemyError,
    sqlite3.Error,
    ImportError,
    optuna.exceptions.StorageInternalError,
)


# What a running search's storage raises for a moment (a lock held past the timeout, a dropped
# connection, a server restart): the worker waits and goes on (search.runner).
STORAGE_ERRORS = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError)


def storage_hint(message: str) -> str:
    """What to do about a storage error, for the two a local SQLite file gives."""
    if "readonly" in message or "read-only" in message:
        return (
            "; the database file or its folder is read-only: make it writable, or give "
            "--storage a path you can write"
        )
    if "locked" in message:
        return (
            f"; another program held a lock on the database for over {SQLITE_LOCK_SECONDS:g} "
            "s: close it, or give this search its own --storage"
        )
    return ""


def cannot_open(flag: str, url: str, error: BaseException) -> StorageError:
    """The one line for a storage that will not open: the flag, the URL without its
    password, the first line of the driver's word, and what to do where that is known."""
    said = str(error).splitlines()[0] if str(error) else type(error).__name__
    return StorageError(f"{flag} {redacted(url)}: cannot open it ({said}){storage_hint(said)}")
