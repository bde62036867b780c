"""The frozen configuration of a search, and the values a resumed study must agree on."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcam.runtime import PRECISIONS

# Bumped when the meaning of a trial's values changes; a study of another version can be
# scored and submitted, not resumed. 2: epochs became the budget, schedules were added.
SPACE_VERSION = 2

SAMPLERS = ("tpe", "random", "cmaes", "gp")
PRUNERS = ("hyperband", "median", "sha", "none")
ENGINES = ("optuna", "keras-tuner")
TUNERS = ("hyperband", "bayesian", "random")
STUDIES_DIR = Path("studies")
# The epoch budget of a trial when --max-epochs is not given: the embedded synthetic set keeps
# its promise (100 trials within an hour on 2 cores); on real patches the recipe that beats the
# seed design needs about a dozen epochs to settle (bench/README.md, bench_quality).
SYNTHETIC_EPOCHS = 4
REAL_DATA_EPOCHS = 12
# The most one trial may take on the embedded synthetic set when neither --budget nor
# --max-trial-minutes says. 100 trials within an hour leave 36 s a trial on average: with a
# 2-minute cap a default search on the 2-core VM ran 56 trials in its first hour (67 s a
# trial, heavy models that all scored near 1.0), so heavier draws are cut at once. The seed
# baseline (47 s there) is measured whatever the cap; the priors (about 1.5 min) are pruned.
SYNTHETIC_TRIAL_MINUTES = 1.0
# Trials one process runs before it hands the search to a fresh one (--recycle-after): on
# TensorFlow a process keeps 70-80 MiB of every trial's model whatever is freed (README,
# bench/bench_cleanup.py), so an overnight search in one process would outgrow a laptop; a
# fresh process costs seconds against the minutes of 20 trials.
RECYCLE_AFTER = 20
# How a recycled process learns when the search began (seconds since the epoch) and how many
# processes ran it before; only search.run sets them, on the process it replaces itself with.
STARTED_ENV = "PCAM_SEARCH_STARTED"
GENERATION_ENV = "PCAM_SEARCH_GENERATION"
UNTIL_BUDGET = 1_000_000  # --trials when only --budget bounds a search
BUDGET_UNITS = {"s": 1, "m": 60, "h": 3600}
PASSWORD_IN_URL = re.compile(r"(//[^/:@]*):[^@/]*@")
# The storage URL when --storage is not given; how the parent of --workers hands it to its
# workers, so that a password in it never shows in a process list.
STORAGE_ENV = "PCAM_STORAGE"


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


def redacted(url: str | None) -> str | None:
    """``url`` with its password hidden (``postgresql://user:***@host/db``): the only form of a
    storage URL the harness stores, prints or writes. Give the password in ``PGPASSWORD`` or
    ``~/.pgpass`` instead, and nothing needs hiding."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL SQLAlchemy reads: hide what sits between user: and @
        return PASSWORD_IN_URL.sub(r"\1:***@", url)


def default_storage_url(study: str) -> str:
    """Where a study lives when no ``--storage`` is given: ``studies/<study>.db``."""
    return f"sqlite:///{STUDIES_DIR / study}.db"


def spoken_duration(seconds: float) -> str:
    """``45 s``, ``12.5 min``, ``2.0 h``: a duration as a person would say it."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``python -m search.run`` was asked to do."""

    study: str = "pcam"
    storage: str | None = None
    data: str | None = None
    trials: int = 100
    timeout: float | None = None
    sampler: str = "tpe"
    pruner: str = "hyperband"
    engine: str = "optuna"
    tuner: str = "hyperband"
    space: str | None = None  # --space FILE: narrows search/space.toml; None: that space
    seed: int = 0
    max_epochs: int = SYNTHETIC_EPOCHS
    budget: float | None = None  # seconds; no trial starts after it, the running one is cut
    max_trial_minutes: float | None = None  # default: half the budget
    priors: bool = True
    warm_start: str | None = None
    warm_start_storage: str | None = None
    warm_start_top: int = 3
    limit: int | None = None
    val_fraction: float = 0.2
    groups: str | None = None  # --groups CSV: id,group; each group on one side of the split
    val_data: str | None = None  # --val-data PATH: validate on this labelled data set
    max_params: int = 20_000_000
    workers: int = 1
    heartbeat: int = 60
    recycle_after: int = RECYCLE_AFTER  # 0: one process runs every trial
    precision: str = "auto"
    jit_compile: str = "auto"
    val_batch_size: int | None = None
    worker_index: int = 0
    progress: bool = True
    report: bool = True
    # --space FILE as read (and checked) once, when the config is made; None without it.
    _space_read: tuple[Any, ...] | None = dataclasses.field(
        init=False, default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        from pcam.errors import ConfigError

        checks = [
            (self.trials >= 1, f"--trials {self.trials}: must be at least 1"),
            (self.max_epochs >= 1, f"--max-epochs {self.max_epochs}: must be at least 1"),
            (self.sampler in SAMPLERS, f"--sampler {self.sampler}: choose from {SAMPLERS}"),
            (self.pruner in PRUNERS, f"--pruner {self.pruner}: choose from {PRUNERS}"),
            (self.engine in ENGINES, f"--engine {self.engine}: choose from {ENGINES}"),
            (self.tuner in TUNERS, f"--tuner {self.tuner}: choose from {TUNERS}"),
            (
                self.engine == "optuna" or self.workers == 1,
                f"--workers {self.workers}: --engine {self.engine} runs one worker",
            ),
            (self.timeout is None or self.timeout > 0, "--timeout must be positive seconds"),
            (self.budget is None or self.budget > 0, "--budget must be positive"),
            (
                self.max_trial_minutes is None or self.max_trial_minutes > 0,
                "--max-trial-minutes must be positive",
            ),
            (self.warm_start_top >= 1, f"--warm-start-top {self.warm_start_top}: at least 1"),
            (
                self.warm_start is None or self.engine == "optuna",
                "--warm-start: the Optuna engine's; drop --engine keras-tuner",
            ),
            (
                self.budget is None or self.engine == "optuna",
                "--budget: the Optuna engine's; with --engine keras-tuner use --timeout",
            ),
            (0 < self.val_fraction < 1, f"--val-fraction {self.val_fraction}: must be in (0, 1)"),
            (
                self.groups is None or self.val_data is None,
                "--groups and --val-data both choose the validation patches: give one of them",
            ),
            (
                self.limit is None or self.limit >= 1,
                f"--limit {self.limit}: must be at least 1 (leave it out to use every patch)",
            ),
            (self.max_params > 0, "--max-params must be positive"),
            (self.workers >= 1, f"--workers {self.workers}: must be at least 1"),
            (
                self.precision in ("auto", *PRECISIONS),
                f"--precision {self.precision}: choose auto or one of {PRECISIONS}",
            ),
            (self.jit_compile in ("auto", "on", "off"), "--jit-compile: choose auto, on or off"),
            (
                self.val_batch_size is None or self.val_batch_size >= 1,
                "--val-batch-size must be positive",
            ),
            (
                self.recycle_after >= 0,
                f"--recycle-after {self.recycle_after}: 0 (never) or more trials",
            ),
            (self.heartbeat >= 1, f"--heartbeat {self.heartbeat}: must be at least 1 second"),
            (bool(self.study.strip()), "--study must not be empty"),
            (
                self.space is None or self.engine == "optuna",
                "--space: the Optuna engine's; --engine keras-tuner searches the default space "
                "(search/space.toml)",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.space is not None:
            from search.space import read_space

            object.__setattr__(self, "_space_read", read_space(self.space))

    @property
    def search_space(self) -> tuple[Any, ...]:
        """The dimensions this search samples: ``SPACE``, narrowed by ``--space``."""
        from search.space import SPACE

        return SPACE if self._space_read is None else self._space_read

    @property
    def storage_url(self) -> str:
        """``--storage``, or SQLite at ``studies/<study>.db``."""
        return self.storage or default_storage_url(self.study)

    @property
    def trial_cap_seconds(self) -> float | None:
        """The most one trial may take: ``--max-trial-minutes``, else half the budget, else
        ``SYNTHETIC_TRIAL_MINUTES`` on the embedded synthetic set; no cap on real data."""
        if self.max_trial_minutes is not None:
            return 60 * self.max_trial_minutes
        if self.budget is not None:
            return self.budget / 2
        return 60 * SYNTHETIC_TRIAL_MINUTES if self.data is None else None

    @property
    def output_dir(self) -> Path:
        """Where this study's model, submission and report go."""
        return STUDIES_DIR / self.study

    def study_defining(self) -> dict[str, Any]:
        """Settings that change what a trial's value means: a resumed study must keep them.
        The space is recorded as it was resolved, not by its file's name."""
        from search.space import space_dict

        values = {
            "max_epochs": self.max_epochs,
            "limit": self.limit,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "engine": self.engine,
            "space": SPACE_VERSION,
            "search_space": space_dict(self.search_space),
        }
        if self.engine == "keras-tuner":
            values["tuner"] = self.tuner
        return values

    @property
    def shown_storage(self) -> str:
        """``storage_url`` as printed and stored: its password hidden."""
        return redacted(self.storage_url)

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored with the study: storage URLs without their passwords."""
        values = dataclasses.asdict(self)
        del values["_space_read"]  # study_defining records the space itself
        for key in ("storage", "warm_start_storage"):
            values[key] = redacted(values[key])
        return values
