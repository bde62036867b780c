"""The one exception type for bad input, and the command-line wrapper that reports it."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable, Sequence

# A write that failed because the disk (or the user's quota) is full.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DataError(Exception):
    """Bad input the user can fix: the message names the file or value and the fix."""


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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
