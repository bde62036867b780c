"""The frozen configuration of a search, and the values a resumed study must agree on."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search.options import OPTIONS, SYNTHETIC_TRIAL_MINUTES, Option

# Bumped when the meaning of a trial's values changes; a study of another version can be
# scored and submitted, not resumed. 2: epochs became the budget, schedules were added.
SPACE_VERSION = 2

STUDIES_DIR = Path("studies")
# How a recycled process learns when the search began (seconds since the epoch) and how many
# processes ran it before; only search.run sets them, on the process it replaces itself with.
STARTED_ENV = "PCAM_SEARCH_STARTED"
GENERATION_ENV = "PCAM_SEARCH_GENERATION"
PASSWORD_IN_URL = re.compile(r"(//[^/:@]*):[^@/]*@")


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


# Checks that involve more than one setting; each option's own check is in its declaration.
CONSTRAINTS: tuple[tuple[Callable[[Any], bool], str], ...] = (
    (
        lambda c: c.engine == "optuna" or c.workers == 1,
        "--workers {c.workers}: --engine {c.engine} runs one worker",
    ),
    (
        lambda c: c.warm_start is None or c.engine == "optuna",
        "--warm-start: the Optuna engine's; drop --engine keras-tuner",
    ),
    (
        lambda c: c.budget is None or c.engine == "optuna",
        "--budget: the Optuna engine's; with --engine keras-tuner use --timeout",
    ),
    (
        lambda c: c.groups is None or c.val_data is None,
        "--groups and --val-data both choose the validation patches: give one of them",
    ),
    (
        lambda c: c.space is None or c.engine == "optuna",
        "--space: the Optuna engine's; --engine keras-tuner searches the default space "
        "(search/space.toml)",
    ),
)


class SearchSettings:
    """What every ``SearchConfig`` does with its settings; the settings themselves (its
    fields) are ``search.options.OPTIONS``, from which ``config_class`` makes the class."""

    OPTIONS: tuple[Option, ...] = ()

    def __post_init__(self) -> None:
        from pcam.errors import ConfigError

        for option in self.OPTIONS:
            if problem := option.problem_with(getattr(self, option.name)):
                raise ConfigError(problem)
        for holds, message in CONSTRAINTS:
            if not holds(self):
                raise ConfigError(message.format(c=self))
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

        values: dict[str, Any] = {o.name: getattr(self, o.name) for o in self.OPTIONS if o.resume}
        values["space"] = SPACE_VERSION
        values["search_space"] = space_dict(self.search_space)
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
        del values["unset"]
        for key in ("storage", "warm_start_storage"):
            values[key] = redacted(values[key])
        return values


@functools.cache
def config_class(options: tuple[Option, ...]) -> type:
    """A frozen dataclass with one field per option, its default the option's."""
    fields = [(o.name, o.annotation, dataclasses.field(default=o.default)) for o in options]
    # The study-defining options the command line left unset: resuming a study, they take its
    # recorded values (search.study.with_recorded_settings) instead of their defaults.
    fields.append(
        ("unset", "tuple[str, ...]", dataclasses.field(default=(), repr=False, compare=False))
    )
    # --space FILE as read (and checked) once, when the config is made; None without it.
    fields.append(
        ("_space_read", "tuple[Any, ...] | None", dataclasses.field(
            init=False, default=None, repr=False, compare=False
        ))
    )  # fmt: skip
    made = dataclasses.make_dataclass(
        "SearchConfig",
        fields,
        bases=(SearchSettings,),
        frozen=True,
        namespace={"OPTIONS": options, "__doc__": "Everything search.run was asked to do."},
    )
    made.__module__ = __name__
    return made


SearchConfig = config_class(OPTIONS)
