"""``python -m search.run``: parse the command line into a SearchConfig and run the search."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from pcam.cli import command_parser
from pcam.errors import interrupt_status, run_cli
from pcam.logs import command_level, command_logging
from search.config import GENERATION_ENV, STARTED_ENV, SearchConfig, config_class
from search.options import GROUPS, OPTIONS, Option, option_values

EPILOG = """\
outputs:
  studies/<study>.db           the study (or --storage): trials, params, curves
  studies/<study>/report.html  the report, written at the end
  live view                    optuna-dashboard sqlite:///studies/<study>.db
next:
  python -m search.submit --study NAME    retrain the best, write the submission
"""


def build_parser(options: tuple[Option, ...] = OPTIONS) -> argparse.ArgumentParser:
    """The command line of ``python -m search.run``, grouped as ``--help`` shows it."""
    parser = command_parser(
        prog="python -m search.run",
        description="Hyperparameter search for the PCam CNN: Optuna, pruning on validation AUC,\n"
        "the untuned seed design as trial 0; the same command resumes a stopped search.",
        epilog=EPILOG,
    )
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for option in options:
        option.add_to(groups[option.group])
    return parser


def parse_args(
    argv: list[str] | None = None, options: tuple[Option, ...] = OPTIONS
) -> SearchConfig:
    """The command line as a SearchConfig; conflicting options end with a usage error."""
    parser = build_parser(options)
    args = parser.parse_args(argv)
    if args.engine == "keras-tuner":
        optuna_only = [f"--{name}" for name in ("sampler", "pruner") if getattr(args, name)]
        if optuna_only:
            parser.error(
                f"{' and '.join(optuna_only)}: Optuna's; --engine keras-tuner picks with --tuner"
            )
    elif args.tuner is not None:
        parser.error("--tuner is KerasTuner's: add --engine keras-tuner")
    unset = tuple(o.name for o in options if o.resume and getattr(args, o.name) is None)
    return config_class(options)(**option_values(parser, options, args), unset=unset)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    from search.runner import run_search
    from search.storage import STORAGE_ERRORS, storage_hint
    from search.study import with_recorded_settings
    from search.summary import summary
    from search.workers import WorkersFailed

    try:
        with command_logging(command_level(quiet=config.quiet)):
            config = with_recorded_settings(config)
            outcome = run_search(config)
    except WorkersFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except STORAGE_ERRORS as error:  # outside the trial loop, which retries them first
        cause = error.__cause__ or error
        said = f"{type(cause).__name__}: {str(cause).splitlines()[0]}"
        print(
            f"error: the storage {config.shown_storage} failed ({said}){storage_hint(said)}; "
            "every trial it recorded is kept there: once it answers, run the same command to "
            "resume",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt as interrupt:
        print(
            f"\ninterrupted: the running trial is marked FAIL, every finished trial is kept; "
            f"run the same command to resume study {config.study!r} (it runs a stopped seed "
            "design, prior or warm start again)",
            file=sys.stderr,
        )
        return interrupt_status(interrupt)
    if outcome.recycle:
        recycle(config, argv, began=outcome.since.timestamp())
    print(summary(outcome, config))
    return 0


def recycle(config: SearchConfig, argv: list[str] | None, *, began: float) -> NoReturn:
    """Replace this process with a fresh one running the same command: the study resumes
    where this one left it, with whatever memory the backend kept from its trials given back.
    The new process counts --budget and --timeout from ``began`` (seconds since the epoch)."""
    generation = int(os.environ.get(GENERATION_ENV) or 0) + 1
    print(
        f"worker {config.worker_index}: {config.recycle_after} trials in this process (peak "
        f"resident memory {peak_resident_mib():,.0f} MiB); going on in a fresh one "
        "(--recycle-after)",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    arguments = sys.argv[1:] if argv is None else list(argv)
    environment = {**os.environ, STARTED_ENV: repr(began), GENERATION_ENV: str(generation)}
    os.execve(sys.executable, [sys.executable, "-m", "search.run", *arguments], environment)


def peak_resident_mib() -> float:
    """This process's peak resident memory (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20  # KiB on Linux, B on macOS


if __name__ == "__main__":
    run_cli(main)
