"""The search space, declared once; ``suggest(trial)`` turns a trial into ``ModelParams``.

Both engines read ``SPACE``: Optuna through ``suggest``, KerasTuner through its own
hyperparameters of the same names, ranges and scales. Filters per block are not searched one
by one: a base width doubles at every block (capped at ``MAX_FILTERS``), the design of the
seed CNN and of most PCam models.

Epochs are not searched: they are the study's budget (``--max-epochs``). Every trial plans its
learning-rate schedule for the whole budget and the pruner decides how far it gets, so a
trial is never rewarded for stopping early and a short draw never looks like a bad model.
Studies made before this (with a searched ``epochs``) can still be scored and submitted.
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
    # adamw is adam with weight_decay > 0: searching both would count the same model twice.
    Dimension("optimizer", choices=("adam", "rmsprop", "sgd")),
    Dimension("schedule", choices=("constant", "cosine", "one_cycle")),
    Dimension("warmup", 0.0, 0.2),
    # Decoupled decay (a step shrinks weights by rate × decay); 0 keeps the seed design in range.
    Dimension("weight_decay", choices=(0.0, 1e-4, 1e-3, 1e-2, 5e-2)),
    Dimension("label_smoothing", 0.0, 0.1),
    Dimension("batch_size", choices=(32, 64, 128, 256)),
    Dimension("crop", choices=(32, 48, 64, 96)),
    Dimension("d8", choices=(False, True)),
    Dimension("hed_jitter", 0.0, 0.1),
)
SEARCHED_EPOCHS = "epochs"  # a dimension of studies made before epochs became the budget


def filters_for(blocks: int, base_filters: int) -> tuple[int, ...]:
    return tuple(min(base_filters * 2**block, MAX_FILTERS) for block in range(blocks))


def params_from_values(values: dict[str, Any], *, max_epochs: int) -> ModelParams:
    """Map sampled values (by ``SPACE`` name) to the params dataclass; ``max_epochs`` is the
    budget. A trial of an older study carries its own ``epochs`` (capped at the budget), and
    lacks the schedule values: it gets the schedule it ran with, a constant rate."""
    values = dict(values)
    base_filters = int(values.pop("base_filters"))
    values["filters"] = filters_for(int(values["blocks"]), base_filters)
    values["epochs"] = min(int(values.get(SEARCHED_EPOCHS, max_epochs)), max_epochs)
    return ModelParams.from_dict(values)


def suggest(trial: optuna.Trial, *, max_epochs: int) -> ModelParams:
    """Sample every dimension of ``SPACE`` from ``trial`` and build the params."""
    values: dict[str, Any] = {}
    for dim in SPACE:
        if dim.choices is not None:
            values[dim.name] = trial.suggest_categorical(dim.name, dim.choices)
        elif dim.integer:
            values[dim.name] = trial.suggest_int(dim.name, int(dim.low), int(dim.high), log=dim.log)
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


def seed_baseline_values() -> dict[str, Any]:
    """Trial 0 of every study: the untuned seed design (trained, like all, for the budget)."""
    return values_for(SEED_BASELINE)
