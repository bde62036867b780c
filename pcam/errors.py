"""The one exception type for bad input, and the command-line wrapper that reports it."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Sequence

# A write that failed because the disk (or the user's quota) is full.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DataError(Exception):
    """Bad input the user can fix: the message names the file or value and the fix."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt: work stops on it as on Ctrl-C (SIGINT), and the
    command exits with ``exit_status`` 143 (128 + 15), the status shells, systemd, Slurm and
    Kubernetes read as "terminated" (Ctrl-C's is 130)."""

    exit_status = 143


def interrupt_status(interrupt: KeyboardInterrupt) -> int:
    """The exit status for a stop: 143 for SIGTERM (``Terminated``), 130 for Ctrl-C."""
    return getattr(interrupt, "exit_status", 130)


def preview(items: Sequence[object], *, limit: int = 5) -> str:
    """'a, b, c (and 12 more)': the first few of a list, and how many there are in all."""
    shown = ", ".join(str(item) for item in list(items)[:limit])
    rest = len(items) - limit
    return f"{shown} (and {rest} more)" if rest > 0 else shown


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a command's main(); a DataError becomes a one-line message and exit status 2."""
    try:
        status = main()
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(interrupt_status(interrupt))
    sys.exit(status or 0)
