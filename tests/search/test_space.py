"""The declarative space maps trials to params and back; the seed baseline is in it."""

from __future__ import annotations

import optuna

from pcam.model import SEED_BASELINE, ModelParams
from search.space import SPACE, params_from_values, seed_baseline_values, suggest


def test_suggest_builds_params_from_a_fixed_trial():
    values = seed_baseline_values(max_epochs=6)
    params = suggest(optuna.trial.FixedTrial(values), max_epochs=6)
    assert isinstance(params, ModelParams)
    assert params == ModelParams(
        **{**SEED_BASELINE.to_dict(), "filters": (32, 64, 128), "epochs": 6}
    )


def test_every_sampled_point_is_valid_params():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(50):
        trial = study.ask()
        params = suggest(trial, max_epochs=5)
        assert len(params.filters) == params.blocks and 1 <= params.epochs <= 5
        assert set(trial.params) == {dim.name for dim in SPACE}
        study.tell(trial, 0.5)


def test_params_from_values_caps_filters_and_epochs():
    values = seed_baseline_values(max_epochs=3) | {"blocks": 5, "base_filters": 64, "epochs": 9}
    params = params_from_values(values, max_epochs=3)
    assert params.filters == (64, 128, 256, 256, 256) and params.epochs == 3
