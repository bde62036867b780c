"""The declarative space maps trials to params and back; the seed baseline is in it."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import resources

import optuna
import pytest

from pcam.errors import ConfigError
from pcam.model import SEED_BASELINE, ModelParams
from search.config import SearchConfig
from search.priors import PRIORS, prior_values
from search.space import (
    SPACE,
    Dimension,
    params_from_values,
    read_space,
    seed_baseline_values,
    suggest,
    values_for,
)
from search.study import make_sampler, seed_baseline_point, starting_points
from tests.conftest import REPO


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


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes"])
def test_every_sampler_draws_valid_params_past_its_startup_trials(sampler):
    """The model-based draws start after the startup trials (CMA-ES imports ``cmaes`` then)."""
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed=0))
    for number in range(14):
        trial = study.ask()
        params = suggest(trial, max_epochs=3)
        assert len(params.filters) == params.blocks
        study.tell(trial, 0.5 + number / 100 + params.learning_rate)
    assert len(study.trials) == 14


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


NARROWING = """
crop = 64                                    # fixed
learning_rate = { low = 3e-4, high = 1e-3 }  # narrowed, still on a log scale
optimizer = ["rmsprop", "adam"]              # sgd dropped

[blocks]
high = 3
"""


def test_the_shipped_space_file_declares_space_and_is_package_data():
    declared = tomllib.loads(resources.files("search").joinpath("space.toml").read_text())
    assert list(declared) == [dim.name for dim in SPACE]
    by_name = {dim.name: dim for dim in SPACE}
    assert by_name["blocks"] == Dimension("blocks", 2, 5, integer=True)
    assert by_name["learning_rate"] == Dimension("learning_rate", 1e-4, 3e-3, log=True)
    assert by_name["weight_decay"].choices == (0.0, 1e-4, 1e-3, 1e-2, 5e-2)
    assert by_name["batch_norm"].choices == (False, True)
    for dim in SPACE:
        entry = declared[dim.name]
        if dim.choices is not None:
            assert list(dim.choices) == entry["choices"], dim.name
        else:
            assert (dim.low, dim.high, dim.log) == (
                entry["low"],
                entry["high"],
                entry.get("log", False),
            )
            assert dim.integer == isinstance(entry["low"], int), dim.name
    # the shipped file is itself a --space file, and leaves the space as it is
    assert read_space(REPO / "search" / "space.toml") == SPACE
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "space.toml" in pyproject["tool"]["setuptools"]["package-data"]["search"]


def test_a_space_file_narrows_ranges_drops_choices_and_fixes_values(tmp_path):
    path = tmp_path / "narrow.toml"
    path.write_text(NARROWING)
    space = {dim.name: dim for dim in read_space(path)}
    assert space["crop"].choices == (64,)
    assert space["optimizer"].choices == ("adam", "rmsprop")  # in the space's order
    assert (space["learning_rate"].low, space["learning_rate"].high) == (3e-4, 1e-3)
    assert space["learning_rate"].log and space["blocks"] == Dimension("blocks", 2, 3, integer=True)
    assert space["head"] == next(dim for dim in SPACE if dim.name == "head")  # left out: kept

    config = SearchConfig(space=str(path))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        params = suggest(trial, max_epochs=2, space=config.search_space)
        assert params.crop == 64 and params.optimizer in ("adam", "rmsprop")
        assert 3e-4 <= params.learning_rate <= 1e-3 and params.blocks <= 3
        assert set(trial.params) == {dim.name for dim in SPACE}  # a fixed value is recorded
        study.tell(trial, 0.5)
    assert {t.params["optimizer"] for t in study.trials} == {"adam", "rmsprop"}
    # what defines the study is the space as read, not the file's name
    copy = tmp_path / "copy.toml"
    copy.write_text(NARROWING)
    assert SearchConfig(space=str(copy)).study_defining() == config.study_defining()
    assert config.study_defining() != SearchConfig().study_defining()
    assert config.to_dict()["space"] == str(path)


def test_priors_and_the_seed_baseline_outside_the_space_are_left_out(
    tmp_path, capsys, command_lines
):
    path = tmp_path / "narrow.toml"
    path.write_text(NARROWING)
    config = SearchConfig(space=str(path))
    assert seed_baseline_point(config) == []  # the seed design crops 96
    assert [attrs["prior"] for _, attrs in starting_points(config)] == ["hand_recipe"]
    notes = capsys.readouterr().err
    assert "seed baseline (trial 0) is not enqueued, outside the search space: crop 96," in notes
    assert "prior 'recipe_cosine' is not enqueued, outside the search space: learning_rate" in notes
    assert "prior 'recipe_96_one_cycle' is not enqueued" in notes
    # without --space every one of them is enqueued, silently
    assert seed_baseline_point(SearchConfig()) == [
        (seed_baseline_values(), {"role": "seed_baseline"})
    ]
    assert len(starting_points(SearchConfig())) == len(PRIORS)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 3", "colour: no such value in the search space (it has blocks,"),
        ("crop = 65", "crop: 65 is not one of the choices [32, 48, 64, 96]"),
        ('optimizer = ["adam", "adamw"]', 'optimizer: "adamw" is not one of the choices'),
        ("batch_norm = 1", "batch_norm: 1 is not one of the choices [false, true]"),
        ("head = []", "head: no choices left; keep at least one of"),
        ("[head]\nchoices = []", "head: no choices left"),
        ("learning_rate = {low = 1e-3, high = 3e-4}", "learning_rate: low 0.001 is above high"),
        ("learning_rate = {low = 1e-5}", "learning_rate: low 1e-05 is outside the space's [0.0001"),
        ("warmup = 0.5", "warmup: value 0.5 is outside the space's [0.0, 0.2]"),
        ("blocks = 2.5", "blocks: value 2.5 is not an integer in [2, 5]"),
        ('warmup = "0.1"', 'warmup: value "0.1" is not a number in [0.0, 0.2]'),
        ("blocks = [2, 3]", "blocks: a range, not choices"),
        ("[blocks]\nlowest = 3", "blocks: unknown key 'lowest'"),
        ("[learning_rate]\nlog = false", "learning_rate: log = false; the scale stays log = true"),
        ("crop = = 64", "not valid TOML"),
    ],
)
def test_a_bad_space_file_is_refused_in_one_line_naming_the_key(tmp_path, text, expected):
    """Before any data is read: exit 2, one line naming the file, the key and what is allowed."""
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "search.run", "--space", str(path), "--trials", "1",
         "--no-progress", "--storage", f"sqlite:///{tmp_path / 'never.db'}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert errors[0].startswith(f"error: --space {path}: ") and expected in errors[0]
    assert not (tmp_path / "never.db").exists()


def test_the_keras_tuner_engine_refuses_a_space_file(tmp_path):
    path = tmp_path / "narrow.toml"
    path.write_text(NARROWING)
    with pytest.raises(ConfigError, match="--space: the Optuna engine's; --engine keras-tuner"):
        SearchConfig(space=str(path), engine="keras-tuner")
