"""``python -m search.run``: parse the command line into a SearchConfig and run the search."""

from __future__ import annotations

import argparse
import os
import sys

from pcam.errors import run_cli
from pcam.runtime import PRECISIONS
from search.config import (
    ENGINES,
    PRUNERS,
    REAL_DATA_EPOCHS,
    SAMPLERS,
    TUNERS,
    UNTIL_BUDGET,
    SearchConfig,
    parse_budget,
)


def parse_args(argv: list[str] | None = None) -> SearchConfig:
    defaults = SearchConfig()
    parser = argparse.ArgumentParser(
        prog="python -m search.run",
        description="Hyperparameter search for the PCam CNN (Optuna, pruning on validation AUC).",
    )
    add = parser.add_argument
    add(
        "--budget",
        default=None,
        metavar="TIME",
        help="wall time for the whole search, e.g. 2h, 90m, 30m: no trial starts after it, the "
        "running one is cut after its current epoch, and no trial may take more than half of "
        "it (see --max-trial-minutes); the main knob on real data",
    )
    add(
        "--trials",
        type=int,
        default=None,
        help="finished (complete or pruned) trials the study should hold (default "
        f"{defaults.trials}, or as many as --budget allows)",
    )
    add(
        "--data",
        default=None,
        help="a PCam data set (Kaggle layout, PCam HDF5 or 0/ 1/ folders); "
        "default: the embedded synthetic set",
    )
    add("--study", default=defaults.study, help="study name; an existing one is resumed")
    add(
        "--storage",
        default=None,
        help="SQLAlchemy URL (default: sqlite:///studies/<study>.db), e.g. postgresql://...",
    )
    add(
        "--engine",
        choices=ENGINES,
        default=defaults.engine,
        help="optuna (default), or keras-tuner: KerasTuner's --tuner on the same space and "
        "data, every trial recorded into the Optuna study",
    )
    add(
        "--tuner",
        choices=TUNERS,
        default=None,
        help=f"with --engine keras-tuner: KerasTuner's tuner (default {defaults.tuner})",
    )
    add("--sampler", choices=SAMPLERS, default=None, help=f"(default {defaults.sampler})")
    add("--pruner", choices=PRUNERS, default=None, help=f"(default {defaults.pruner})")
    add("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    add(
        "--max-trial-minutes",
        type=float,
        default=None,
        help="prune a trial whose first batches project it past this (default: half of --budget)",
    )
    add(
        "--no-priors",
        action="store_true",
        help="do not enqueue the documented strong designs after the seed baseline",
    )
    add(
        "--warm-start",
        default=None,
        metavar="STUDY",
        help="enqueue the best trials of this earlier study (a search on a subset, on "
        "synthetic data, or with a shorter budget)",
    )
    add(
        "--warm-start-storage",
        default=None,
        metavar="URL",
        help="where --warm-start's study lives (default: sqlite:///studies/<STUDY>.db)",
    )
    add(
        "--warm-start-top",
        type=int,
        default=defaults.warm_start_top,
        help="how many of its best complete trials to enqueue (default %(default)s)",
    )
    add("--seed", type=int, default=defaults.seed, help="split, sampler and training seed")
    add(
        "--max-epochs",
        type=int,
        default=None,
        help="the epoch budget every trial's learning-rate schedule is planned for; the pruner "
        f"decides how far a trial gets (default {defaults.max_epochs} on the embedded "
        f"synthetic set, {REAL_DATA_EPOCHS} with --data)",
    )
    add(
        "--limit",
        type=int,
        default=None,
        help="use at most this many labelled patches (class balance kept), for quick searches",
    )
    add("--val-fraction", type=float, default=defaults.val_fraction)
    add(
        "--max-params",
        type=int,
        default=defaults.max_params,
        help="prune models with more weights than this (default %(default)s)",
    )
    add(
        "--workers",
        type=int,
        default=defaults.workers,
        help="worker processes on this machine sharing the study (default %(default)s)",
    )
    add(
        "--heartbeat",
        type=int,
        default=defaults.heartbeat,
        help="seconds between worker heartbeats; a trial silent for twice this is re-run",
    )
    add(
        "--precision",
        default="auto",
        choices=("auto", *PRECISIONS),
        help="auto: mixed_bfloat16 on a GPU, float32 on a CPU",
    )
    add(
        "--jit-compile",
        default="auto",
        choices=("auto", "on", "off"),
        help="compiled train steps; auto: always on JAX, on with a GPU on TensorFlow, "
        "off on PyTorch (torch.compile outlasts short trials)",
    )
    add("--val-batch-size", type=int, default=None, help="auto: 1024 on a GPU, 256 on a CPU")
    add("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    add("--no-progress", action="store_true", help="no progress bars")
    add("--no-report", action="store_true", help="do not write the HTML report at the end")
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
        storage=args.storage,
        data=args.data,
        trials=trials,
        budget=budget,
        max_trial_minutes=args.max_trial_minutes,
        priors=not args.no_priors,
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
        max_params=args.max_params,
        workers=args.workers,
        precision=args.precision,
        jit_compile=args.jit_compile,
        val_batch_size=args.val_batch_size,
        heartbeat=args.heartbeat,
        worker_index=args.worker_index,
        progress=not args.no_progress,
        report=not args.no_report,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    from search.runner import run_search, summary
    from search.workers import WorkersFailed

    try:
        outcome = run_search(config)
    except WorkersFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: the running trial is marked FAIL, every finished trial is kept; "
            f"run the same command to resume study {config.study!r}",
            file=sys.stderr,
        )
        return 130
    print(summary(outcome, config))
    return 0


if __name__ == "__main__":
    run_cli(main)
