"""What can go wrong that a user can fix, by kind, and the command-line wrapper that reports it.

Every error here carries one line that names the file, value or service and the fix. A caller
that retries on a storage outage and stops on bad data catches ``StorageError`` apart from
``DataError``; ``PcamError`` catches them all.
"""

from __future__ import annotations

import errno
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

# A write that failed because the disk (or the user's quota) is full.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class PcamError(Exception):
    """Something the user can fix: the message names the file or value and the fix."""


class DataError(PcamError):
    """A data set, labels file or model folder that cannot be used as it is."""


class ConfigError(PcamError):
    """An option, a settings file or a study's recorded settings that do not fit the request."""


class StorageError(PcamError):
    """The study storage cannot be opened (a URL, a server, a database file), or the disk
    a result is written to is full."""


class SetupError(PcamError):
    """A package this request needs is not installed."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt: work stops on it as on Ctrl-C (SIGINT), and the
    command exits with ``exit_status`` 143 (128 + 15), the status shells, systemd, Slurm and
    Kubernetes read as "terminated" (Ctrl-C's is 130)."""

    exit_status = 143


def interrupt_status(interrupt: KeyboardInterrupt) -> int:
    """The exit status for a stop: 143 for SIGTERM (``Terminated``), 130 for Ctrl-C."""
    return getattr(interrupt, "exit_status", 130)


# Every stop ``stop_signals_as_interrupts`` raised in this process, oldest first.
_STOPS: list[KeyboardInterrupt] = []
# Those of them not raised yet, or that a finalizer swallowed (``raise_pending_stop``).
_LOST: list[KeyboardInterrupt] = []
# How many ``stops_at_safe_points`` blocks are open: inside one, a stop waits.
_DEFERRING = [0]


def _raise_stop(signum: int, frame) -> None:
    stop = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    _STOPS.append(stop)
    if _DEFERRING[0]:
        _LOST.append(stop)
        return
    raise stop


@contextmanager
def stop_signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and Ctrl-C (SIGINT) raise an interrupt (``Terminated`` for SIGTERM), and each
    is remembered: ``stop_since`` finds one that a C extension turned into another error.

    A stop whose handler runs inside a finalizer (a ``__del__`` or weakref callback, which
    TensorFlow's objects run whenever the garbage collector does) is raised there, where
    Python prints "Exception ignored" and drops it: the work would go on as if never stopped.
    Such a stop is kept, silently, for ``raise_pending_stop`` to raise where the work checks.
    """
    # A SIGINT that the caller ignores (a stopping supervisor) stays ignored.
    watched = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        watched.append(signal.SIGINT)
    previous = {signum: signal.signal(signum, _raise_stop) for signum in watched}
    previous_hook = sys.unraisablehook

    def keep_lost_stop(unraisable) -> None:
        stop = unraisable.exc_value
        if any(stop is raised for raised in _STOPS):
            _LOST.append(stop)
        else:
            previous_hook(unraisable)

    sys.unraisablehook = keep_lost_stop
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def stops_at_safe_points() -> Iterator[None]:
    """Inside this block a stop signal is kept, not raised where it lands: the block's work
    raises it with ``raise_pending_stop`` at its own safe points (a fit's or a prediction's
    batch ends), and the block's end raises it at the latest.

    Raised at any bytecode, a stop can land while TensorFlow traces a function or builds a
    dataset, leaving its graph state half made: every later fit or prediction in the process
    fails ("only supports Python-style iteration in eager mode"), and once it aborted the
    interpreter ("Fatal Python error: Aborted" in ``add_c_function``) and hung. A batch end
    is at most one batch later."""
    _DEFERRING[0] += 1
    try:
        yield
    finally:
        _DEFERRING[0] -= 1
        if not _DEFERRING[0]:
            raise_pending_stop()


def raise_pending_stop() -> None:
    """Raise the stop that waits (``stops_at_safe_points``) or that a finalizer swallowed (see
    ``stop_signals_as_interrupts``), if any: long work (every batch of a fit or a prediction)
    calls this so that such a stop still stops it."""
    if _LOST:
        stop = _LOST.pop()
        _LOST.clear()
        raise stop


def stops_so_far() -> int:
    """How many stops have been raised in this process; pass it to ``stop_since`` later."""
    return len(_STOPS)


def stop_since(count: int) -> KeyboardInterrupt | None:
    """The latest stop raised after ``stops_so_far()`` returned ``count``, if any."""
    return _STOPS[-1] if len(_STOPS) > count else None


def preview(items: Sequence[object], *, limit: int = 5) -> str:
    """'a, b, c (and 12 more)': the first few of a list, and how many there are in all."""
    shown = ", ".join(str(item) for item in list(items)[:limit])
    rest = len(items) - limit
    return f"{shown} (and {rest} more)" if rest > 0 else shown


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a command's main() with the library's lines on stderr (``pcam.logs``); a
    PcamError becomes a one-line message and exit status 2. SIGTERM stops every command as
    Ctrl-C does, its clean-up included: "interrupted" and exit status 143 (Ctrl-C's 130)."""
    from pcam.logs import command_logging

    stops = stops_so_far()
    try:
        with command_logging(), stop_signals_as_interrupts():
            status = main()
    except PcamError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(interrupt_status(interrupt))
    except Exception:
        # A stop that a C extension turned into another error ends the command as a stop.
        interrupt = stop_since(stops)
        if interrupt is None:
            raise
        print("interrupted", file=sys.stderr)
        sys.exit(interrupt_status(interrupt))
    sys.exit(status or 0)
