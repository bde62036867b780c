"""``python -m search.report --study NAME``: write a study's report page."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import optuna

from pcam.cli import command_parser
from search.config import SearchConfig
from search.options import STORAGE, STUDY
from search.report.page import write_report
from search.study import load_existing_study

EPILOG = """\
outputs:
  studies/<study>/report.html   (or --out) one page that opens offline
next:
  open it in a browser; python -m search.submit --study NAME   retrain the best
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m search.report``."""
    parser = command_parser(
        prog="python -m search.report",
        description="Write a study's report: one HTML page that opens offline.",
        epilog=EPILOG,
    )
    replace(STUDY, help="study name (required)", required=True).add_to(parser)
    STORAGE.add_to(parser)
    add = parser.add_argument
    add(
        "--out",
        type=Path,
        default=None,
        metavar="PATH",
        help="HTML file (default: studies/<study>/report.html)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = SearchConfig(study=args.study, storage=args.storage or STORAGE.fallback(args))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_existing_study(config.study, config.storage_url)
    path = write_report(study, args.out or config.output_dir / "report.html")
    print(path)
    return 0
