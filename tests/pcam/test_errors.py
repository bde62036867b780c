"""How a command stops: the stop handlers, and ``run_cli``'s exit for a stop in disguise."""

from __future__ import annotations

import contextlib
import signal
import sys

import pytest

from pcam.errors import (
    Terminated,
    raise_pending_stop,
    run_cli,
    stop_signals_as_interrupts,
    stops_at_safe_points,
)
from tests.helpers import StopsWhileFinalized


def test_the_stop_handlers_leave_an_ignored_ctrl_c_ignored_and_put_back_what_was_there():
    before_term = signal.getsignal(signal.SIGTERM)
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a supervisor that is stopping
    try:
        with stop_signals_as_interrupts():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not before_term
        assert signal.getsignal(signal.SIGTERM) is before_term
    finally:
        signal.signal(signal.SIGINT, ignored)


def test_a_command_stopped_through_another_error_exits_as_stopped_without_a_traceback(capsys):
    """A SIGTERM that a C extension turned into another error ends the command with 143 and
    "interrupted"; the same error with no stop behind it is still raised as itself."""

    def stopped_inside_c() -> int:
        with stop_signals_as_interrupts():
            with contextlib.suppress(KeyboardInterrupt):
                signal.raise_signal(signal.SIGTERM)
            raise RuntimeError("Terminated: \n\nAt:\n  pcam/train.py(308): fit")

    with pytest.raises(SystemExit) as ended:
        run_cli(stopped_inside_c)
    assert ended.value.code == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == "interrupted"

    def broken() -> int:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        run_cli(broken)


class BrokenFinalizer:
    def __del__(self) -> None:
        raise ValueError("a finalizer's own bug")


def test_a_stop_that_lands_in_a_finalizer_is_kept_for_the_work_to_raise_and_not_printed():
    unraisable = []
    record = unraisable.append
    before, sys.unraisablehook = sys.unraisablehook, record
    try:
        with stop_signals_as_interrupts():
            StopsWhileFinalized()  # finalized at once; the stop goes nowhere by itself
            BrokenFinalizer()
            with pytest.raises(Terminated):
                raise_pending_stop()
            raise_pending_stop()  # raised once
        assert sys.unraisablehook is record  # put back
    finally:
        sys.unraisablehook = before
    # the stop is not reported as an error a finalizer ignored; a finalizer's own error still is
    assert [type(u.exc_value) for u in unraisable] == [ValueError]


def test_a_stop_inside_a_safe_point_block_waits_for_a_safe_point_or_the_block_s_end():
    """Where a stop lands, TensorFlow may be tracing: inside the block it is kept, raised by
    ``raise_pending_stop`` (a batch end) or, at the latest, when the outermost block ends."""
    went_on = []
    with stop_signals_as_interrupts():
        with pytest.raises(Terminated), stops_at_safe_points():
            signal.raise_signal(signal.SIGTERM)
            went_on.append("past the stop")
            raise_pending_stop()
            went_on.append("past the safe point")
        assert went_on == ["past the stop"]
        with pytest.raises(Terminated), stops_at_safe_points():
            with stops_at_safe_points():
                signal.raise_signal(signal.SIGTERM)
            went_on.append("past the inner block")
        assert went_on[1:] == ["past the inner block"]
        with pytest.raises(Terminated):  # outside any block: where it lands, as before
            signal.raise_signal(signal.SIGTERM)
        raise_pending_stop()  # nothing left waiting
