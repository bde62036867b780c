"""Every setting of ``python -m search.run``, declared once.

One ``Option`` says a setting's flag, its field of ``SearchConfig``, its default, its help, the
check its value must pass, whether a resumed study must agree on it, and whether the worker
processes of ``--workers`` inherit it. The parser, ``SearchConfig``, the resume check and the
worker command line are all made from ``OPTIONS``: a setting added here reaches all four.

Light on purpose: ``--help`` is built from this module before any backend is imported.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcam.runtime import PRECISIONS

SAMPLERS = ("tpe", "random", "cmaes", "gp")
PRUNERS = ("hyperband", "median", "sha", "none")
ENGINES = ("optuna", "keras-tuner")
TUNERS = ("hyperband", "bayesian", "random")
# The epoch budget of a trial when --max-epochs is not given: the embedded synthetic set keeps
# its promise (100 trials within an hour on 2 cores). On real patches the best designs keep
# gaining on slides no training patch came from up to 20 epochs: a 2-hour search scored 0.916
# on unseen slides with 20, 0.897 with 12 (bench/README.md, bench_quality). A budget under an
# hour keeps 12: on two cores the seed design and the priors take 35 minutes at 20 epochs, and
# the default trial cap (half the budget) would cut the 96×96 prior (17 minutes) of a
# 30-minute search before it trained.
SYNTHETIC_EPOCHS = 4
REAL_DATA_EPOCHS = 20
SHORT_BUDGET_EPOCHS = 12
SHORT_BUDGET_SECONDS = 3600.0
# The most one trial may take on the embedded synthetic set when neither --budget nor
# --max-trial-minutes says. 100 trials within an hour leave 36 s a trial on average, and
# with a looser cap heavy models (which all score near 1.0 there) took the hour, so heavier
# draws are cut at once (bench/README.md, the default run). The seed baseline is measured
# whatever the cap.
SYNTHETIC_TRIAL_MINUTES = 1.0
# Trials one process runs before it hands the search to a fresh one (--recycle-after): on
# TensorFlow a process keeps part of every trial's model whatever is freed
# (bench/bench_cleanup.py, bench_memory), so an overnight search in one process would outgrow
# a laptop; a fresh process costs seconds against the minutes of 20 trials.
RECYCLE_AFTER = 20
UNTIL_BUDGET = 1_000_000  # --trials when only --budget bounds a search
DEFAULT_TRIALS = 100
BUDGET_UNITS = {"s": 1, "m": 60, "h": 3600}
# The storage URL when --storage is not given; how the parent of --workers hands it to its
# workers, so that a password in it never shows in a process list.
STORAGE_ENV = "PCAM_STORAGE"
GROUPS = ("data", "search", "budget & pruning", "runtime", "workers", "output")


@dataclass(frozen=True)
class Option:
    """One setting: the field ``name`` of ``SearchConfig`` and the flag ``--name`` (dashes)."""

    name: str
    annotation: str  # the field's type, as written in a dataclass
    default: Any
    group: str
    help: str  # "{default}" in it shows ``default``
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    # A value must pass ``check``, else ``problem`` (with {flag} and {value}) is the error.
    check: Callable[[Any], bool] | None = None
    problem: str = "{flag} {value}: not allowed"
    # The flag's text as the config holds it (ValueError: a usage error naming the flag).
    convert: Callable[[str], Any] | None = None
    # The value when the flag is absent and the default depends on other flags.
    fallback: Callable[[argparse.Namespace], Any] | None = None
    resume: bool = False  # a resumed study must have been made with the same value
    inherit: bool = True  # the workers of --workers get it on their command line
    flag: str | None = None  # the flag when it is not --name; a bool's flag turns it off
    required: bool = False  # the command cannot run without it

    @property
    def shown_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def switch(self) -> bool:
        """A flag without a value, which sets the setting to the opposite of its default."""
        return isinstance(self.default, bool)

    def problem_with(self, value: Any) -> str | None:
        """Why ``value`` is refused, or None."""
        if value is None and "None" in self.annotation:
            return None
        if self.choices is not None and value not in self.choices:
            return f"{self.shown_flag} {value}: choose from {', '.join(self.choices)}"
        if self.check is not None and not self.check(value):
            return self.problem.format(flag=self.shown_flag, value=value)
        return None

    def add_to(self, parser: argparse._ActionsContainer) -> None:
        """This option on ``parser`` (or one of its groups)."""
        shown_help = self.help.format(default=self.default)
        if self.switch:
            action = "store_false" if self.default else "store_true"
            parser.add_argument(self.shown_flag, dest=self.name, action=action, help=shown_help)
            return
        parser.add_argument(
            self.shown_flag,
            dest=self.name,
            default=None,  # absent: the fallback or the default, applied after parsing
            metavar=None if self.choices else self.metavar or self.name.upper(),
            choices=self.choices,
            type=None if self.convert else _argument_type(self.annotation),
            required=self.required,
            help=shown_help,
        )

    def argv(self, value: Any) -> list[str]:
        """``value`` written back as this flag, or nothing where the flag would add nothing."""
        if self.switch:
            return [self.shown_flag] if value != self.default else []
        return [] if value is None else [self.shown_flag, str(value)]


def option_values(
    parser: argparse.ArgumentParser, options: tuple[Option, ...], args: argparse.Namespace
) -> dict[str, Any]:
    """Each option's value from parsed ``args``: converted (a ValueError is a usage error
    naming the flag), else the fallback or the declared default where the flag was absent."""
    for option in options:  # conversions first: a fallback may read a converted value
        value = getattr(args, option.name)
        if value is not None and option.convert is not None:
            try:
                setattr(args, option.name, option.convert(value))
            except ValueError as error:
                parser.error(str(error))
    values = {}
    for option in options:
        value = getattr(args, option.name)
        if value is None:
            value = option.fallback(args) if option.fallback else option.default
        values[option.name] = value
    return values


def _argument_type(annotation: str) -> Callable[[str], Any] | None:
    base = annotation.replace(" | None", "")
    return {"int": int, "float": float}.get(base)


def parse_budget(text: str) -> float:
    """``2h``, ``90m``, ``1.5h``, ``45s`` or plain seconds, as seconds."""
    spoken = text.strip().lower()
    unit = BUDGET_UNITS.get(spoken[-1:])
    number = spoken[:-1] if unit else spoken
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ValueError(f"--budget {text!r}: write it as 2h, 90m, 1.5h, 45s or seconds") from None
    if not seconds > 0:
        raise ValueError(f"--budget {text!r}: must be more than zero")
    return seconds


def default_epochs(args: argparse.Namespace) -> int:
    """--max-epochs when not given: by the data, and on real data by the budget."""
    if not args.data:
        return SYNTHETIC_EPOCHS
    if args.budget is not None and args.budget < SHORT_BUDGET_SECONDS:
        return SHORT_BUDGET_EPOCHS
    return REAL_DATA_EPOCHS


def absolute_path(path: str) -> str:
    """A path as recorded in the study: absolute, so that search.submit finds it from anywhere."""
    return str(Path(path).expanduser().absolute())


def _at_least(low: float) -> Callable[[Any], bool]:
    return lambda value: value >= low


def _positive(value: float) -> bool:
    return value > 0


# Options more than one command has: search.submit, search.predict and search.report take
# these (their help reworded with dataclasses.replace where the command differs).
DATA = Option(
    "data", "str | None", None, "data",
    "a PCam data set (Kaggle layout, PCam HDF5 or 0/ 1/ folders); "
    "default: the embedded synthetic set",
    metavar="PATH",
)  # fmt: skip
STUDY = Option(
    "study", "str", "pcam", "search",
    "study name; an existing one is resumed (default {default})",
    metavar="NAME", check=lambda value: bool(value.strip()),
    problem="{flag} must not be empty",
)  # fmt: skip
STORAGE = Option(
    "storage", "str | None", None, "search",
    "SQLAlchemy URL (default: $PCAM_STORAGE, else sqlite:///studies/<study>.db), "
    "e.g. postgresql://user@host/db with the password in PGPASSWORD or ~/.pgpass",
    metavar="URL", inherit=False,  # by environment: a password stays out of process lists
    fallback=lambda args: os.environ.get(STORAGE_ENV) or None,
)  # fmt: skip
PROGRESS = Option(
    "progress", "bool", True, "output", "no progress bars", flag="--no-progress"
)  # fmt: skip

OPTIONS: tuple[Option, ...] = (
    DATA,
    Option(
        "limit", "int | None", None, "data",
        "use at most N labelled patches (class balance kept), for quick searches "
        "(default: all)",
        metavar="N", check=_at_least(1), resume=True,
        problem="{flag} {value}: must be at least 1 (leave it out to use every patch)",
    ),
    Option(
        "val_fraction", "float", 0.2, "data",
        "share of the labelled patches held out for validation (default {default}; "
        "PCam HDF5 uses its own validation split)",
        metavar="FRACTION", check=lambda value: 0 < value < 1, resume=True,
        problem="{flag} {value}: must be in (0, 1)",
    ),
    Option(
        "groups", "str | None", None, "data",
        "an id,group CSV giving each patch's slide (or patient): validation holds out "
        "whole groups, as Kaggle's test set holds other slides (default: a random split, "
        "whose patches share slides with training)",
        metavar="CSV", convert=absolute_path,
    ),
    Option(
        "val_data", "str | None", None, "data",
        "validate on this labelled data set (any layout; e.g. PCam's validation split), "
        "training on all of --data (default: a split of --data)",
        metavar="PATH", convert=absolute_path,
    ),
    STUDY,
    STORAGE,
    Option(
        "engine", "str", "optuna", "search",
        "optuna (default), or keras-tuner: KerasTuner's --tuner on the same space and "
        "data, every trial recorded into the Optuna study",
        choices=ENGINES, resume=True,
    ),
    Option(
        "tuner", "str", "hyperband", "search",
        "with --engine keras-tuner: KerasTuner's tuner (default {default})",
        choices=TUNERS,  # recorded for resume with --engine keras-tuner only
        inherit=False,  # --workers is the Optuna engine's
    ),
    Option(
        "sampler", "str", "tpe", "search",
        "Optuna's sampler; tpe is multivariate and seeded (default {default})",
        choices=SAMPLERS,
    ),
    Option(
        "pruner", "str", "hyperband", "search",
        "Optuna's pruner on the epoch resource, never judging a trial before a quarter "
        "of --max-epochs; none: no pruning (default {default})",
        choices=PRUNERS,
    ),
    Option(
        "priors", "bool", True, "search",
        "do not enqueue the documented strong designs after the seed baseline",
        flag="--no-priors", inherit=False,  # enqueued once, by the process that makes the study
    ),
    Option(
        "space", "str | None", None, "search",
        "a TOML file that narrows the search space (search/space.toml): moves a range's "
        "low/high inward, drops choices or fixes a value; part of what defines the study "
        "(default: the whole space)",
        metavar="FILE",
    ),
    Option(
        "warm_start", "str | None", None, "search",
        "enqueue the best trials of this earlier study (a search on a subset, on "
        "synthetic data, or with a shorter budget); default: none",
        metavar="STUDY", inherit=False,
    ),
    Option(
        "warm_start_storage", "str | None", None, "search",
        "where --warm-start's study lives (default: sqlite:///studies/<STUDY>.db)",
        metavar="URL", inherit=False,
    ),
    Option(
        "warm_start_top", "int", 3, "search",
        "how many of its best complete trials to enqueue (default {default})",
        metavar="K", check=_at_least(1), problem="{flag} {value}: at least 1", inherit=False,
    ),
    Option(
        "seed", "int", 0, "search",
        "split, sampler and training seed (default {default})",
        metavar="N", resume=True,
    ),
    Option(
        "budget", "float | None", None, "budget & pruning",
        "wall time for the whole search, e.g. 2h, 90m, 30m: no trial starts after it, the "
        "running one is cut after its current epoch, and no trial may take more than half of "
        "it (see --max-trial-minutes); the main knob on real data (default: none)",
        metavar="TIME", convert=parse_budget, check=_positive, problem="{flag} must be positive",
    ),
    Option(
        "trials", "int", DEFAULT_TRIALS, "budget & pruning",
        "finished (complete or pruned) trials the study should hold (default "
        "{default}, or as many as --budget allows)",
        metavar="N", check=_at_least(1), problem="{flag} {value}: must be at least 1",
        fallback=lambda args: UNTIL_BUDGET if args.budget is not None else DEFAULT_TRIALS,
    ),
    Option(
        "timeout", "float | None", None, "budget & pruning",
        "stop starting trials after this many seconds (default: none)",
        metavar="SECONDS", check=_positive, problem="{flag} must be positive seconds",
    ),
    Option(
        "max_trial_minutes", "float | None", None, "budget & pruning",
        "prune a trial whose first batches, or first two epochs, project it past this; the "
        "seed baseline is always measured (default: half of --budget; without one, "
        f"{SYNTHETIC_TRIAL_MINUTES:g} on the embedded synthetic set, none with --data)",
        metavar="MINUTES", check=_positive, problem="{flag} must be positive",
    ),
    Option(
        "max_epochs", "int", SYNTHETIC_EPOCHS, "budget & pruning",
        "the epoch budget every trial's learning-rate schedule is planned for; the pruner "
        "decides how far a trial gets (default {default} on the embedded "
        f"synthetic set, {REAL_DATA_EPOCHS} with --data, {SHORT_BUDGET_EPOCHS} with --data "
        "and a --budget under an hour)",
        metavar="N", check=_at_least(1), problem="{flag} {value}: must be at least 1",
        resume=True,
        fallback=default_epochs,
    ),
    Option(
        "max_params", "int", 20_000_000, "budget & pruning",
        "prune models with more weights than this (default {default})",
        metavar="N", check=_positive, problem="{flag} must be positive",
    ),
    Option(
        "precision", "str", "auto", "runtime",
        "auto (default): mixed_bfloat16 on a GPU, float32 on a CPU",
        choices=("auto", *PRECISIONS),
    ),
    Option(
        "jit_compile", "str", "auto", "runtime",
        "compiled train steps; auto (default): always on JAX, on with a GPU on "
        "TensorFlow, off on PyTorch (torch.compile outlasts short trials)",
        choices=("auto", "on", "off"),
    ),
    Option(
        "val_batch_size", "int | None", None, "runtime",
        "validation batch size (default: 1024 on a GPU, 256 on a CPU)",
        metavar="N", check=_at_least(1), problem="{flag} must be positive",
    ),
    Option(
        "recycle_after", "int", RECYCLE_AFTER, "runtime",
        "after N trials a worker process replaces itself with a fresh one (same command, "
        "the study resumed), so memory stays flat over a long search; 0: never; the Optuna "
        "engine's (default {default})",
        metavar="N", check=_at_least(0), problem="{flag} {value}: 0 (never) or more trials",
    ),
    Option(
        "workers", "int", 1, "workers",
        "worker processes on this machine sharing the study (default {default})",
        metavar="N", check=_at_least(1), problem="{flag} {value}: must be at least 1",
    ),
    Option(
        "heartbeat", "int", 60, "workers",
        "seconds between worker heartbeats; a trial silent for twice this is re-run "
        "(default {default})",
        metavar="SECONDS", check=_at_least(1), problem="{flag} {value}: must be at least 1 second",
    ),
    Option(
        "worker_index", "int", 0, "workers",
        "this worker's number when several machines share one study (give each a "
        "distinct one): worker 0 logs the data, records the budget and writes the report, "
        "others leave that to it; each samples its own stream (seed + 1000 × N) "
        "(default {default})",
        metavar="N",
    ),
    PROGRESS,
    Option(
        "quiet", "bool", False, "output",
        "only warnings and errors on stderr: no data, trial or report lines (the summary "
        "still goes to stdout)",
    ),
    Option(
        "report", "bool", True, "output", "do not write the HTML report at the end",
        flag="--no-report",
    ),
)  # fmt: skip
