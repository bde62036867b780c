"""Search engines compared: best validation AUC against the training epochs spent (issue 7).

``python bench/bench_engines.py [--seeds 0 1 2] [--budget 60] [--limit 2000] [--max-epochs 4]
[--synthetic 2500] [--sample PATH | --no-sample]`` runs four arms on the same data, with the
same budget of training epochs and the same seeds:

- ``optuna-tpe-hyperband``: Optuna's TPE sampler with Hyperband pruning (the default search);
- ``optuna-random``: Optuna's random sampler, no pruning;
- ``keras-tuner-hyperband``: KerasTuner's Hyperband (``--engine keras-tuner``);
- ``keras-tuner-bayesian``: KerasTuner's Bayesian optimisation.

Every arm starts with the seed baseline (trial 0, ``--max-epochs`` epochs) and starts no new
trial once its trials have trained ``--budget`` epochs (the last one may overshoot). An arm's
curve is the best validation AUC seen after each epoch trained, epochs in the order they ran;
the table compares arms at the budget. Each data set is split once (seed 0); ``--seeds`` seed
the samplers, oracles and training. Output: a table on stdout, an offline plotly page
``bench/results/bench_engines.html`` and the figures in ``bench/results/bench_engines.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import optuna
from common import (
    DEFAULT_SAMPLE,
    RESULTS,
    describe_machine,
    format_table,
    machine_info,
    synthetic_set,
    write_results,
)

from pcam.data import TrainingData, load_training_data
from pcam.errors import DataError, run_cli
from pcam.runtime import resolve
from search.config import SearchConfig
from search.objective import Objective, TrialFailed
from search.study import open_study
from search.tuner_engine import run_keras_tuner

ARMS = ("optuna-tpe-hyperband", "optuna-random", "keras-tuner-hyperband", "keras-tuner-bayesian")
COLOURS = dict(zip(ARMS, ("#1f77b4", "#7f7f7f", "#d62728", "#2ca02c"), strict=True))


def epochs_spent(study: optuna.Study) -> int:
    """Epochs that produced a validation AUC, over every trial of the study."""
    return sum(len(t.intermediate_values) for t in study.get_trials(deepcopy=False))


def best_so_far(study: optuna.Study) -> list[float]:
    """The best validation AUC after each epoch trained: trials as they ended, epochs in order."""
    curve, best = [], -math.inf
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        for step in sorted(trial.intermediate_values):
            best = max(best, trial.intermediate_values[step])
            curve.append(best)
    return curve


def run_arm(arm: str, data: TrainingData, *, seed: int, budget: int, args) -> dict[str, Any]:
    """One search of ``arm`` until ``budget`` epochs, in a folder and SQLite file of its own."""
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        config = SearchConfig(
            study=f"{arm}-seed{seed}",
            storage=f"sqlite:///{folder}/bench.db",
            trials=100_000,
            seed=seed,
            max_epochs=args.max_epochs,
            limit=args.limit,
            progress=False,
            report=False,
        )

        def enough(study: optuna.Study) -> bool:
            return epochs_spent(study) >= budget

        started = time.perf_counter()
        if arm.startswith("optuna-"):
            sampler, pruner = (
                ("tpe", "hyperband") if arm == "optuna-tpe-hyperband" else ("random", "none")
            )
            study = _optuna_search(replace(config, sampler=sampler, pruner=pruner), data, enough)
        else:
            tuner = arm.removeprefix("keras-tuner-")
            study = run_keras_tuner(
                replace(config, engine="keras-tuner", tuner=tuner), data, stop_when=enough
            )
        wall = time.perf_counter() - started
        trials = study.get_trials(deepcopy=False)
        states = [t.state.name for t in trials]
        baseline = next((t for t in trials if t.user_attrs.get("role") == "seed_baseline"), None)
        curve = best_so_far(study)
        return {
            "arm": arm,
            "seed": seed,
            "wall_seconds": round(wall, 1),
            "trials": len(trials),
            "complete": states.count("COMPLETE"),
            "pruned": states.count("PRUNED"),
            "failed": states.count("FAIL"),
            "epochs": len(curve),
            "best_at_budget": curve[min(budget, len(curve)) - 1] if curve else math.nan,
            "best": study.best_value if states.count("COMPLETE") else math.nan,
            "seed_baseline_auc": baseline.value if baseline is not None else math.nan,
            "curve": curve,
        }


def _optuna_search(config: SearchConfig, data: TrainingData, enough) -> optuna.Study:
    """The Optuna engine's trials (``search.objective``) until ``enough(study)``."""
    study, _ = open_study(config, data)
    objective = Objective(
        data,
        max_epochs=config.max_epochs,
        max_params=config.max_params,
        seed=config.seed,
        runtime=resolve(),
    )

    def stop_at_budget(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if enough(study):
            study.stop()

    study.optimize(objective, callbacks=[stop_at_budget], catch=(TrialFailed,))
    return study


def data_sets(args) -> list[tuple[str, Path]]:
    sets = []
    if args.synthetic:
        sets.append((f"synthetic ({args.synthetic} patches)", synthetic_set(args.synthetic)))
    if args.sample is not None:
        if args.sample.is_dir():
            sets.append((f"real sample ({args.sample.name})", args.sample))
        else:
            print(f"note: no real sample at {args.sample}; skipped", file=sys.stderr)
    if not sets:
        raise DataError("nothing to run: give --synthetic N or --sample PATH")
    return sets


def summarise(runs: list[dict[str, Any]]) -> list[list[str]]:
    """One row per data set and arm: means over the seeds (± their spread)."""

    def spread(values: list[float]) -> str:
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return "–"
        if len(values) == 1:
            return f"{values[0]:.4f}"
        return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"

    rows = []
    for name in dict.fromkeys(run["data"] for run in runs):
        for arm in ARMS:
            own = [run for run in runs if run["data"] == name and run["arm"] == arm]
            if not own:
                continue
            rows.append(
                [
                    name,
                    arm,
                    str(len(own)),
                    f"{statistics.mean(r['trials'] for r in own):.1f}",
                    f"{statistics.mean(r['epochs'] for r in own):.1f}",
                    spread([r["best_at_budget"] for r in own]),
                    spread([r["seed_baseline_auc"] for r in own]),
                    f"{statistics.mean(r['wall_seconds'] for r in own):.0f}",
                ]
            )
    return rows


def write_plot(runs: list[dict[str, Any]], *, budget: int, path: Path) -> Path:
    """Best validation AUC against epochs spent: one panel per data set, mean line per arm."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(dict.fromkeys(run["data"] for run in runs))
    figure = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True)
    for column, name in enumerate(names, start=1):
        for arm in ARMS:
            own = [run for run in runs if run["data"] == name and run["arm"] == arm]
            if not own:
                continue
            for run in own:  # each seed, faint
                figure.add_trace(
                    go.Scatter(
                        x=list(range(1, len(run["curve"]) + 1)),
                        y=run["curve"],
                        mode="lines",
                        line={"color": COLOURS[arm], "width": 1},
                        opacity=0.3,
                        legendgroup=arm,
                        showlegend=False,
                        name=f"{arm} seed {run['seed']}",
                    ),
                    row=1,
                    col=column,
                )
            length = min(len(run["curve"]) for run in own)
            mean = [statistics.mean(run["curve"][i] for run in own) for i in range(length)]
            figure.add_trace(
                go.Scatter(
                    x=list(range(1, length + 1)),
                    y=mean,
                    mode="lines",
                    line={"color": COLOURS[arm], "width": 3},
                    legendgroup=arm,
                    showlegend=column == 1,
                    name=f"{arm} (mean of {len(own)} seed(s))",
                ),
                row=1,
                col=column,
            )
        figure.add_vline(x=budget, line_dash="dot", line_color="black", row=1, col=column)
        figure.update_xaxes(title_text="training epochs spent", row=1, col=column)
    figure.update_yaxes(title_text="best validation ROC AUC so far", row=1, col=1)
    figure.update_layout(
        title=f"Search engines: best validation AUC against epochs (budget {budget} epochs)",
        height=520,
        width=max(700, 560 * len(names)),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(path, include_plotlyjs=True)  # offline: plotly.js embedded once
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python bench/bench_engines.py", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one search per arm and seed")
    add("--budget", type=int, default=60, help="training epochs per search (default 60)")
    add("--max-epochs", type=int, default=4, help="most epochs a trial trains (default 4)")
    add("--limit", type=int, default=2000, help="labelled patches used per data set")
    add("--synthetic", type=int, default=2500, help="synthetic patches to generate; 0: none")
    add("--sample", type=Path, default=DEFAULT_SAMPLE, help="the real PCam sample (Kaggle layout)")
    add("--no-sample", dest="sample", action="store_const", const=None)
    add("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    args = parser.parse_args(argv)
    if args.budget < args.max_epochs:
        parser.error(f"--budget {args.budget} is under one seed baseline ({args.max_epochs})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes per new model
    machine = machine_info()
    print(describe_machine(machine))
    runs = []
    for name, path in data_sets(args):
        data = load_training_data(path, seed=0, limit=args.limit, progress=False)
        print(f"{name}: {data.describe()}", file=sys.stderr)
        for seed in args.seeds:
            for arm in args.arms:
                print(f"{name}: {arm}, seed {seed}", file=sys.stderr)
                run = run_arm(arm, data, seed=seed, budget=args.budget, args=args)
                runs.append({"data": name, **run})
    header = [
        "data",
        "arm",
        "seeds",
        "trials",
        "epochs run",
        f"best val AUC at {args.budget} epochs",
        "seed baseline AUC",
        "wall s",
    ]
    print(format_table(header, summarise(runs)))
    page = write_plot(runs, budget=args.budget, path=RESULTS / "bench_engines.html")
    record = write_results(
        "bench_engines",
        {"machine": machine, "settings": {k: str(v) for k, v in vars(args).items()}, "runs": runs},
    )
    print(f"plot: {page}\nfigures: {record}\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    run_cli(main)
