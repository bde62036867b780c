"""``python -m search.run``: parse the command line into a SearchConfig and run the search."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from pcam.cli import command_parser
from pcam.errors import interrupt_status, run_cli
from pcam.runtime import PRECISIONS
from search.config import (
    ENGINES,
    GENERATION_ENV,
    PRUNERS,
    REAL_DATA_EPOCHS,
    SAMPLERS,
    STARTED_ENV,
    STORAGE_ENV,
    SYNTHETIC_TRIAL_MINUTES,
    TUNERS,
    UNTIL_BUDGET,
    SearchConfig,
    parse_budget,
)

EPILOG = """\
outputs:
  studies/<study>.db           the study (or --storage): trials, params, curves
  studies/<study>/report.html  the report, written at the end
  live view                    optuna-dashboard sqlite:///studies/<study>.db
next:
  python -m search.submit --study NAME    retrain the best, write the submission
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m search.run``, grouped as ``--help`` shows it."""
    defaults = SearchConfig()
    parser = command_parser(
        prog="python -m search.run",
        description="Hyperparameter search for the PCam CNN: Optuna, pruning on validation AUC,\n"
        "the untuned seed design as trial 0; the same command resumes a stopped search.",
        epilog=EPILOG,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        default=None,
        metavar="PATH",
        help="a PCam data set (Kaggle layout, PCam HDF5 or 0/ 1/ folders); "
        "default: the embedded synthetic set",
    )
    data.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="use at most N labelled patches (class balance kept), for quick searches "
        "(default: all)",
    )
    data.add_argument(
        "--val-fraction",
        type=float,
        default=defaults.val_fraction,
        metavar="FRACTION",
        help="share of the labelled patches held out for validation (default %(default)s; "
        "PCam HDF5 uses its own validation split)",
    )
    data.add_argument(
        "--groups",
        default=None,
        metavar="CSV",
        help="an id,group CSV giving each patch's slide (or patient): validation holds out "
        "whole groups, as Kaggle's test set holds other slides (default: a random split, "
        "whose patches share slides with training)",
    )
    data.add_argument(
        "--val-data",
        default=None,
        metavar="PATH",
        help="validate on this labelled data set (any layout; e.g. PCam's validation split), "
        "training on all of --data (default: a split of --data)",
    )
    search = parser.add_argument_group("search")
    search.add_argument(
        "--study",
        default=defaults.study,
        metavar="NAME",
        help="study name; an existing one is resumed (default %(default)s)",
    )
    search.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL (default: $PCAM_STORAGE, else sqlite:///studies/<study>.db), "
        "e.g. postgresql://user@host/db with the password in PGPASSWORD or ~/.pgpass",
    )
    search.add_argument(
        "--engine",
        choices=ENGINES,
        default=defaults.engine,
        help="optuna (default), or keras-tuner: KerasTuner's --tuner on the same space and "
        "data, every trial recorded into the Optuna study",
    )
    search.add_argument(
        "--tuner",
        choices=TUNERS,
        default=None,
        help=f"with --engine keras-tuner: KerasTuner's tuner (default {defaults.tuner})",
    )
    search.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=None,
        help=f"Optuna's sampler; tpe is multivariate and seeded (default {defaults.sampler})",
    )
    search.add_argument(
        "--pruner",
        choices=PRUNERS,
        default=None,
        help="Optuna's pruner on the epoch resource, never judging a trial before a quarter "
        f"of --max-epochs; none: no pruning (default {defaults.pruner})",
    )
    search.add_argument(
        "--no-priors",
        action="store_true",
        help="do not enqueue the documented strong designs after the seed baseline",
    )
    search.add_argument(
        "--space",
        default=None,
        metavar="FILE",
        help="a TOML file that narrows the search space (search/space.toml): moves a range's "
        "low/high inward, drops choices or fixes a value; part of what defines the study "
        "(default: the whole space)",
    )
    search.add_argument(
        "--warm-start",
        default=None,
        metavar="STUDY",
        help="enqueue the best trials of this earlier study (a search on a subset, on "
        "synthetic data, or with a shorter budget); default: none",
    )
    search.add_argument(
        "--warm-start-storage",
        default=None,
        metavar="URL",
        help="where --warm-start's study lives (default: sqlite:///studies/<STUDY>.db)",
    )
    search.add_argument(
        "--warm-start-top",
        type=int,
        default=defaults.warm_start_top,
        metavar="K",
        help="how many of its best complete trials to enqueue (default %(default)s)",
    )
    search.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        metavar="N",
        help="split, sampler and training seed (default %(default)s)",
    )
    budget = parser.add_argument_group("budget & pruning")
    budget.add_argument(
        "--budget",
        default=None,
        metavar="TIME",
        help="wall time for the whole search, e.g. 2h, 90m, 30m: no trial starts after it, the "
        "running one is cut after its current epoch, and no trial may take more than half of "
        "it (see --max-trial-minutes); the main knob on real data (default: none)",
    )
    budget.add_argument(
        "--trials",
        type=int,
        default=None,
        metavar="N",
        help="finished (complete or pruned) trials the study should hold (default "
        f"{defaults.trials}, or as many as --budget allows)",
    )
    budget.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop starting trials after this many seconds (default: none)",
    )
    budget.add_argument(
        "--max-trial-minutes",
        type=float,
        default=None,
        metavar="MINUTES",
        help="prune a trial whose first batches project it past this; the seed baseline "
        f"is always measured (default: half of --budget; without one, "
        f"{SYNTHETIC_TRIAL_MINUTES:g} on the embedded synthetic set, none with --data)",
    )
    budget.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        metavar="N",
        help="the epoch budget every trial's learning-rate schedule is planned for; the pruner "
        f"decides how far a trial gets (default {defaults.max_epochs} on the embedded "
        f"synthetic set, {REAL_DATA_EPOCHS} with --data)",
    )
    budget.add_argument(
        "--max-params",
        type=int,
        default=defaults.max_params,
        metavar="N",
        help="prune models with more weights than this (default %(default)s)",
    )
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument(
        "--precision",
        default="auto",
        choices=("auto", *PRECISIONS),
        help="auto (default): mixed_bfloat16 on a GPU, float32 on a CPU",
    )
    runtime.add_argument(
        "--jit-compile",
        default="auto",
        choices=("auto", "on", "off"),
        help="compiled train steps; auto (default): always on JAX, on with a GPU on "
        "TensorFlow, off on PyTorch (torch.compile outlasts short trials)",
    )
    runtime.add_argument(
        "--val-batch-size",
        type=int,
        default=None,
        metavar="N",
        help="validation batch size (default: 1024 on a GPU, 256 on a CPU)",
    )
    runtime.add_argument(
        "--recycle-after",
        type=int,
        default=defaults.recycle_after,
        metavar="N",
        help="after N trials a worker process replaces itself with a fresh one (same command, "
        "the study resumed), so memory stays flat over a long search; 0: never; the Optuna "
        "engine's (default %(default)s)",
    )
    workers = parser.add_argument_group("workers")
    workers.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        metavar="N",
        help="worker processes on this machine sharing the study (default %(default)s)",
    )
    workers.add_argument(
        "--heartbeat",
        type=int,
        default=defaults.heartbeat,
        metavar="SECONDS",
        help="seconds between worker heartbeats; a trial silent for twice this is re-run "
        "(default %(default)s)",
    )
    workers.add_argument(
        "--worker-index",
        type=int,
        default=defaults.worker_index,
        metavar="N",
        help="this worker's number when several machines share one study (give each a "
        "distinct one): worker 0 logs the data, records the budget and writes the report, "
        "others leave that to it; each samples its own stream (seed + 1000 × N) "
        "(default %(default)s)",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--no-progress", action="store_true", help="no progress bars")
    output.add_argument(
        "--no-report", action="store_true", help="do not write the HTML report at the end"
    )
    return parser


def parse_args(argv: list[str] | None = None) -> SearchConfig:
    """The command line as a SearchConfig; conflicting options end with a usage error."""
    defaults = SearchConfig()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.engine == "keras-tuner":
        optuna_only = [f"--{name}" for name in ("sampler", "pruner") if getattr(args, name)]
        if optuna_only:
            parser.error(
                f"{' and '.join(optuna_only)}: Optuna's; --engine keras-tuner picks with --tuner"
            )
    elif args.tuner is not None:
        parser.error("--tuner is KerasTuner's: add --engine keras-tuner")
    try:
        budget = None if args.budget is None else parse_budget(args.budget)
    except ValueError as error:
        parser.error(str(error))
    trials = args.trials
    if trials is None:
        trials = UNTIL_BUDGET if budget is not None else defaults.trials
    max_epochs = args.max_epochs
    if max_epochs is None:
        max_epochs = REAL_DATA_EPOCHS if args.data else defaults.max_epochs
    return SearchConfig(
        study=args.study,
        storage=args.storage or os.environ.get(STORAGE_ENV) or None,
        data=args.data,
        trials=trials,
        budget=budget,
        max_trial_minutes=args.max_trial_minutes,
        priors=not args.no_priors,
        space=args.space,
        warm_start=args.warm_start,
        warm_start_storage=args.warm_start_storage,
        warm_start_top=args.warm_start_top,
        timeout=args.timeout,
        sampler=args.sampler or defaults.sampler,
        pruner=args.pruner or defaults.pruner,
        engine=args.engine,
        tuner=args.tuner or defaults.tuner,
        seed=args.seed,
        max_epochs=max_epochs,
        limit=args.limit,
        val_fraction=args.val_fraction,
        groups=_absolute(args.groups),
        val_data=_absolute(args.val_data),
        max_params=args.max_params,
        workers=args.workers,
        precision=args.precision,
        jit_compile=args.jit_compile,
        val_batch_size=args.val_batch_size,
        heartbeat=args.heartbeat,
        recycle_after=args.recycle_after,
        worker_index=args.worker_index,
        progress=not args.no_progress,
        report=not args.no_report,
    )


def _absolute(path: str | None) -> str | None:
    """A path as recorded in the study: absolute, so that search.submit finds it from
    anywhere."""
    return None if path is None else str(Path(path).expanduser().absolute())


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    from search.runner import run_search, summary
    from search.study import STORAGE_ERRORS, storage_hint
    from search.workers import WorkersFailed

    try:
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
            f"run the same command to resume study {config.study!r}",
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
