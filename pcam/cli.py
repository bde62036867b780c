"""What every command shares: ``--version``, and help that says where outputs go and what next.

A command module imports only light modules (no Keras, no backend) before its arguments are
parsed, so that ``--help`` and ``--version`` answer at once; ``bench/bench_cli.py`` times them.
"""

from __future__ import annotations

import argparse
import importlib.metadata

PACKAGE = "pcam-search"
COMMANDS = (  # every python -m command the project has
    "search.run",
    "search.submit",
    "search.predict",
    "search.report",
    "pcam.prepare",
    "pcam.synth",
)


def package_version() -> str:
    """This project's installed version, as ``pip`` knows it."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def bar_disable(progress: bool) -> bool | None:
    """tqdm's ``disable=``: no bar with ``--no-progress``, nor where the stream is not a terminal.

    tqdm turns ``None`` into "off unless the stream is a TTY": a log file or a pipe gets the
    plain lines, not a carriage-return frame per update.
    """
    return None if progress else True


def command_parser(*, prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A parser with ``--version`` whose ``epilog`` (outputs, the next command) keeps its lines."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {package_version()} ({PACKAGE})"
    )
    return parser
