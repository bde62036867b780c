"""The declarative space maps trials to params and back; the seed baseline is in it."""

from __future__ import annotations

import optuna
import pytest

from pcam.model import SEED_BASELINE, ModelParams
from search.priors import PRIORS, prior_values
from search.space import SPACE, params_from_values, seed_baseline_values, suggest, values_for


def test_suggest_builds_params_from_a_fixed_trial():
    params = suggest(optuna.trial.FixedTrial(seed_baseline_values()), max_epochs=6)
    assert isinstance(params, ModelParams)
    assert params == ModelParams(
        **{**SEED_BASELINE.to_dict(), "filters": (32, 64, 128), "epochs": 6}
    )


def test_every_sampled_point_is_valid_params_trained_for_the_budget():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    schedules = set()
    for _ in range(50):
        trial = study.ask()
        params = suggest(trial, max_epochs=5)
        assert len(params.filters) == params.blocks and params.epochs == 5
        assert set(trial.params) == {dim.name for dim in SPACE}
        schedules.add(params.schedule)
        study.tell(trial, 0.5)
    assert "epochs" not in {dim.name for dim in SPACE}
    assert schedules == {"constant", "cosine", "one_cycle"}


def test_params_from_values_caps_filters_and_an_old_studys_epochs():
    values = seed_baseline_values() | {"blocks": 5, "base_filters": 64}
    params = params_from_values(values, max_epochs=3)
    assert params.filters == (64, 128, 256, 256, 256) and params.epochs == 3
    # a trial of a study made when epochs were searched keeps its own count, and its schedule
    old = {k: v for k, v in values.items() if k not in ("schedule", "warmup", "weight_decay")}
    params = params_from_values(old | {"epochs": 2, "optimizer": "adamw"}, max_epochs=3)
    assert params.epochs == 2 and params.schedule == "constant" and params.optimizer == "adamw"


@pytest.mark.parametrize("name", [name for name, _, _ in PRIORS])
def test_every_prior_is_a_point_of_the_space(name):
    values = dict(prior_values())[name]
    params = dict((n, p) for n, p, _ in PRIORS)[name]
    # the Optuna engine draws exactly these values when they are enqueued
    rebuilt = suggest(optuna.trial.FixedTrial(values), max_epochs=params.epochs)
    assert rebuilt == params
    for dim in SPACE:
        value = values[dim.name]
        if dim.choices is not None:
            assert value in dim.choices, dim.name
        else:
            assert dim.low <= value <= dim.high, dim.name
    assert values_for(rebuilt) == values
