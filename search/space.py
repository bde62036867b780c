"""The search space, declared once; ``suggest(trial)`` turns a trial into ``ModelParams``.

``SPACE`` is declared in ``search/space.toml`` (package data) and read from it here. A file
given to ``--space`` has the same form and narrows it (``read_space``): ranges moved inward,
choices dropped, values fixed; a study records the space it searches (``space_dict``).

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

import json
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import optuna

from pcam.errors import ConfigError
from pcam.model import SEED_BASELINE, ModelParams

MAX_FILTERS = 256
SPACE_FILE = "space.toml"  # the default space: package data of ``search``, beside this module
RANGE_KEYS = ("low", "high", "log")


@dataclass(frozen=True)
class Dimension:
    """One searched value: an int or float range (``log`` for scale) or a list of choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    integer: bool = False

    def allows(self, value: Any) -> bool:
        """Whether a trial of this dimension can hold ``value``."""
        if self.choices is not None:
            return any(_same_kind(choice, value) and choice == value for choice in self.choices)
        return _is_number(value) and self.low <= value <= self.high

    def describe(self) -> str:
        """What the dimension allows, as a ``--space`` file would write it."""
        if self.choices is not None:
            return json.dumps(list(self.choices))
        return f"[{self.low}, {self.high}]{' (log scale)' if self.log else ''}"


def _shown(value: Any) -> str:
    """``value`` as TOML spells it (``true``, ``"sgd"``)."""
    return json.dumps(value, default=str)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "number" if isinstance(value, float) else type(value).__name__


def _same_kind(choice: Any, value: Any) -> bool:
    """``value`` may stand for ``choice``: TOML's ``0`` for ``0.0``, never ``1`` for ``true``."""
    return _kind(value) == _kind(choice) or (_kind(choice), _kind(value)) == ("number", "integer")


def declared_space(text: str, *, source: str) -> tuple[Dimension, ...]:
    """The dimensions a space file declares in full (``search/space.toml``), in its order."""
    table = _parse_toml(text, source=source)
    return tuple(_declared(name, entry, source=source) for name, entry in table.items())


def _declared(name: str, entry: Any, *, source: str) -> Dimension:
    where = f"{source}: {name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: declare it as a table with low and high, or with choices")
    if "choices" in entry:
        choices = entry["choices"]
        if set(entry) != {"choices"} or not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list, and alone")
        return Dimension(name, choices=tuple(choices))
    low, high = entry.get("low"), entry.get("high")
    extra = set(entry) - set(RANGE_KEYS)
    if (
        extra
        or not (_is_number(low) and _is_number(high))
        or not isinstance(entry.get("log", False), bool)
    ):
        raise ConfigError(f"{where}: a range needs numbers low and high (and log = true or false)")
    integer = isinstance(low, int) and isinstance(high, int)
    log = entry.get("log", False)
    if not low <= high or (log and low <= 0):
        raise ConfigError(f"{where}: low {low} and high {high} make no range")
    if not integer:
        low, high = float(low), float(high)
    return Dimension(name, low, high, log=log, integer=integer)


def narrowed_space(
    table: dict[str, Any], *, within: tuple[Dimension, ...], source: str
) -> tuple[Dimension, ...]:
    """``within`` narrowed by ``table`` (a ``--space`` file): a range's ``low``/``high`` moved
    inward, choices dropped, or one value fixed; names it leaves out keep their dimension.

    Anything the file cannot mean (an unknown name or key, a value or range outside
    ``within``, no choices, low above high, a value of the wrong type) raises a one-line
    ``ConfigError`` that names ``source``, the key and what is allowed.
    """
    known = {dim.name for dim in within}
    for name in table:
        if name not in known:
            raise ConfigError(
                f"{source}: {name}: no such value in the search space (it has "
                f"{', '.join(dim.name for dim in within)})"
            )
    return tuple(
        _narrowed(dim, table[dim.name], where=f"{source}: {dim.name}") if dim.name in table else dim
        for dim in within
    )


def _narrowed(dim: Dimension, entry: Any, *, where: str) -> Dimension:
    allowed = ("choices",) if dim.choices is not None else RANGE_KEYS
    if isinstance(entry, dict):
        for key in entry:
            if key not in allowed:
                raise ConfigError(
                    f"{where}: unknown key {key!r}; give {' or '.join(allowed)}, or one value "
                    f"to fix it (the space allows {dim.describe()})"
                )
    if dim.choices is not None:
        chosen = entry.get("choices", []) if isinstance(entry, dict) else entry
        chosen = chosen if isinstance(chosen, list) else [chosen]  # one value fixes it
        if not chosen:
            raise ConfigError(f"{where}: no choices left; keep at least one of {dim.describe()}")
        for value in chosen:
            if not dim.allows(value):
                raise ConfigError(
                    f"{where}: {_shown(value)} is not one of the choices {dim.describe()}"
                )
        kept = tuple(c for c in dim.choices if any(_same_kind(c, v) and c == v for v in chosen))
        return replace(dim, choices=kept)
    if isinstance(entry, list):
        raise ConfigError(
            f"{where}: a range, not choices: give low and high, or one value to fix it "
            f"(the space allows {dim.describe()})"
        )
    if isinstance(entry, dict):
        if entry.get("log", dim.log) is not dim.log:
            raise ConfigError(
                f"{where}: log = {_shown(entry['log'])}; the scale stays log = {_shown(dim.log)}"
            )
        low = _bound(dim, entry.get("low", dim.low), key="low", where=where)
        high = _bound(dim, entry.get("high", dim.high), key="high", where=where)
    else:
        low = high = _bound(dim, entry, key="value", where=where)
    if low > high:
        raise ConfigError(f"{where}: low {low} is above high {high}")
    return replace(dim, low=low, high=high)


def _bound(dim: Dimension, value: Any, *, key: str, where: str) -> int | float:
    kind = "an integer" if dim.integer else "a number"
    if not _is_number(value) or (dim.integer and not isinstance(value, int)):
        raise ConfigError(f"{where}: {key} {_shown(value)} is not {kind} in {dim.describe()}")
    if not dim.allows(value):
        raise ConfigError(f"{where}: {key} {value} is outside the space's {dim.describe()}")
    return int(value) if dim.integer else float(value)


def _parse_toml(text: str, *, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML ({error})") from None


def read_space(path: str | Path) -> tuple[Dimension, ...]:
    """``--space FILE``: ``SPACE`` narrowed by the file (see ``narrowed_space``)."""
    source = f"--space {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{source}: cannot read it ({error})") from None
    return narrowed_space(_parse_toml(text, source=source), within=SPACE, source=source)


def space_dict(space: tuple[Dimension, ...]) -> dict[str, dict[str, Any]]:
    """The space as plain data, in order: what a study records and a resume compares."""
    return {
        dim.name: {"choices": list(dim.choices)}
        if dim.choices is not None
        else {"low": dim.low, "high": dim.high, "log": dim.log}
        for dim in space
    }


def space_changes(then: dict[str, Any], now: dict[str, Any]) -> str:
    """How two ``space_dict`` records differ, one clause per dimension."""

    def spoken(entry: dict[str, Any] | None) -> str:
        if entry is None:
            return "absent"
        if "choices" in entry:
            return json.dumps(entry["choices"])
        return f"[{entry['low']}, {entry['high']}]{' (log scale)' if entry.get('log') else ''}"

    names = [name for name in {**then, **now} if then.get(name) != now.get(name)]
    return "; ".join(
        f"{name} {spoken(then.get(name))} then, {spoken(now.get(name))} now" for name in names
    )


def outside(values: dict[str, Any], space: tuple[Dimension, ...]) -> list[str]:
    """The values a trial of ``space`` could not hold, as ``name value, allowed ...``."""
    return [
        f"{dim.name} {_shown(values[dim.name])}, allowed {dim.describe()}"
        for dim in space
        if dim.name in values and not dim.allows(values[dim.name])
    ]


# The one declaration of the space; the comments beside its values live there too.
SPACE: tuple[Dimension, ...] = declared_space(
    resources.files("search").joinpath(SPACE_FILE).read_text(encoding="utf-8"),
    source=f"search/{SPACE_FILE}",
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


def suggest(
    trial: optuna.Trial, *, max_epochs: int, space: tuple[Dimension, ...] = SPACE
) -> ModelParams:
    """Sample every dimension of ``space`` (``SPACE``, or a ``--space`` narrowing of it) from
    ``trial`` and build the params. A fixed value is a one-value distribution: every trial
    still records every name."""
    values: dict[str, Any] = {}
    for dim in space:
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
