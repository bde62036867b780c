"""The frozen configuration of a search, and the values a resumed study must agree on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcam.runtime import PRECISIONS

SAMPLERS = ("tpe", "random", "cmaes", "gp")
PRUNERS = ("hyperband", "median", "sha", "none")
ENGINES = ("optuna", "keras-tuner")
TUNERS = ("hyperband", "bayesian", "random")
STUDIES_DIR = Path("studies")


def default_storage_url(study: str) -> str:
    """Where a study lives when no ``--storage`` is given: ``studies/<study>.db``."""
    return f"sqlite:///{STUDIES_DIR / study}.db"


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
    seed: int = 0
    max_epochs: int = 4
    limit: int | None = None
    val_fraction: float = 0.2
    max_params: int = 20_000_000
    workers: int = 1
    heartbeat: int = 60
    precision: str = "auto"
    jit_compile: str = "auto"
    val_batch_size: int | None = None
    worker_index: int = 0
    progress: bool = True
    report: bool = True

    def __post_init__(self) -> None:
        from pcam.errors import DataError

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
            (0 < self.val_fraction < 1, f"--val-fraction {self.val_fraction}: must be in (0, 1)"),
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
            (self.heartbeat >= 1, f"--heartbeat {self.heartbeat}: must be at least 1 second"),
            (bool(self.study.strip()), "--study must not be empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise DataError(message)

    @property
    def storage_url(self) -> str:
        """``--storage``, or SQLite at ``studies/<study>.db``."""
        return self.storage or default_storage_url(self.study)

    @property
    def output_dir(self) -> Path:
        """Where this study's model, submission and report go."""
        return STUDIES_DIR / self.study

    def study_defining(self) -> dict[str, Any]:
        """Settings that change what a trial's value means: a resumed study must keep them."""
        values = {
            "max_epochs": self.max_epochs,
            "limit": self.limit,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "engine": self.engine,
        }
        if self.engine == "keras-tuner":
            values["tuner"] = self.tuner
        return values

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
