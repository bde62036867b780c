"""Where the library's lines go: each module logs to ``logging.getLogger(__name__)``, and a
command-line entry point decides where that goes (``command_logging``).

Imported from a notebook or another program, ``pcam`` and ``search`` write nothing themselves:
their lines are records of the ``pcam`` and ``search`` loggers, for the caller to show, silence,
redirect or capture like any other library's.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

LOGGERS = ("pcam", "search")
QUIET, NORMAL = logging.WARNING, logging.INFO


class StderrLines(logging.Handler):
    """Each record's message as one line on the stderr of the moment (a test's capture
    included), written through tqdm so that a progress bar on the terminal stays whole."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


@contextmanager
def command_logging(level: int = NORMAL) -> Iterator[None]:
    """For the length of a command: the ``pcam`` and ``search`` loggers' lines on stderr,
    exactly as their messages read (no level or time prefix), from ``level`` up. Inside
    another, it changes only the level: each line is written once."""
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    handler = None
    if not any(isinstance(h, StderrLines) for h in loggers[0].handlers):
        handler = StderrLines()
        handler.setFormatter(logging.Formatter("%(message)s"))
    for logger in loggers:
        logger.setLevel(level)
        if handler is not None:
            logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, previous in zip(loggers, levels, strict=True):
            logger.setLevel(previous)
            if handler is not None:
                logger.removeHandler(handler)


def command_level(*, quiet: bool = False) -> int:
    """The level of a command's lines: ``--quiet`` keeps warnings and errors."""
    return QUIET if quiet else NORMAL
