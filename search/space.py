"""The search space, declared once; ``suggest(trial)`` turns a trial into ``ModelParams``.

Both engines read ``SPACE``: Optuna through ``suggest``, KerasTuner through its own
hyperparameters of the same names, ranges and scales. Filters per block are not searched one
by one: a base width doubles at every block (capped at ``MAX_FILTERS``), the design of the
seed CNN and of most PCam models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from pcam.model import SEED_BASELINE, ModelParams

MAX_FILTERS = 256


@dataclass(frozen=True)
class Dimension:
    """One searched value: an int or float range (``log`` for scale) or a list of choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    integer: bool = False


SPACE: tuple[Dimension, ...] = (
    Dimension("blocks", 2, 5, integer=True),
    Dimension("base_filters", choices=(16, 32, 64)),
    Dimension("convs_per_block", 1, 2, integer=True),
    Dimension("kernel_size", choices=(3, 5)),
    Dimension("block_dropout", 0.0, 0.5),
    Dimension("dense_units", choices=(64, 128, 256, 512)),
    Dimension("dense_dropout", 0.0, 0.6),
    Dimension("batch_norm", choices=(False, True)),
    Dimension("head", choices=("flatten", "global_avg")),
    Dimension("learning_rate", 1e-4, 3e-3, log=True),
    Dimension("optimizer", choices=("adam", "adamw", "rmsprop", "sgd")),
    Dimension("batch_size", choices=(32, 64, 128, 256)),
    Dimension("crop", choices=(32, 48, 64, 96)),
    Dimension("d8", choices=(False, True)),
    Dimension("hed_jitter", 0.0, 0.1),
    Dimension("epochs", 1, None, integer=True),  # high: the study's --max-epochs
)


def filters_for(blocks: int, base_filters: int) -> tuple[int, ...]:
    return tuple(min(base_filters * 2**block, MAX_FILTERS) for block in range(blocks))


def params_from_values(values: dict[str, Any], *, max_epochs: int) -> ModelParams:
    """Map sampled values (by ``SPACE`` name) to the params dataclass."""
    values = dict(values)
    base_filters = int(values.pop("base_filters"))
    values["filters"] = filters_for(int(values["blocks"]), base_filters)
    values["epochs"] = min(int(values["epochs"]), max_epochs)
    return ModelParams.from_dict(values)


def suggest(trial: optuna.Trial, *, max_epochs: int) -> ModelParams:
    """Sample every dimension of ``SPACE`` from ``trial`` and build the params."""
    values: dict[str, Any] = {}
    for dim in SPACE:
        if dim.choices is not None:
            values[dim.name] = trial.suggest_categorical(dim.name, dim.choices)
        elif dim.integer:
            high = max_epochs if dim.high is None else int(dim.high)
            values[dim.name] = trial.suggest_int(dim.name, int(dim.low), high, log=dim.log)
        else:
            values[dim.name] = trial.suggest_float(dim.name, dim.low, dim.high, log=dim.log)
    return params_from_values(values, max_epochs=max_epochs)


def values_for(params: ModelParams) -> dict[str, Any]:
    """The inverse of ``params_from_values``: what to enqueue to rerun ``params``."""
    values = {dim.name: getattr(params, dim.name) for dim in SPACE if dim.name != "base_filters"}
    values["base_filters"] = params.filters[0]
    if params.filters != filters_for(params.blocks, params.filters[0]):
        raise ValueError(f"filters {params.filters} do not double per block; not in SPACE")
    return values


def seed_baseline_values(*, max_epochs: int) -> dict[str, Any]:
    """Trial 0 of every study: the untuned seed design, trained for the full epoch budget."""
    values = values_for(SEED_BASELINE)
    values["epochs"] = max_epochs
    return values
