"""--engine keras-tuner: real KerasTuner searches of tiny models, copied into SQLite studies."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import keras_tuner
import numpy as np
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from pcam.errors import ConfigError
from pcam.synth import generate
from search.config import SearchConfig
from search.run import parse_args
from search.runner import run_search
from search.space import SPACE, seed_baseline_values, suggest
from search.submission import SubmitConfig, submit
from search.summary import summary
from search.tuner_engine import OptunaCopy, PcamHyperModel, project_dir

OPTUNA_ATTRS = {"best_epoch", "epochs_run", "seconds_per_epoch", "images_per_second"}
OPTUNA_ATTRS |= {"params_count", "worker", "engine", "keras_tuner_trial_id"}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return generate(
        tmp_path_factory.mktemp("kt") / "data", n_train=60, n_test=8, seed=0, progress=False
    )


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # studies/ is relative


def _config(tmp_path: Path, data: Path, **changes) -> SearchConfig:
    values = dict(
        study="kt",
        storage=f"sqlite:///{tmp_path}/s.db",
        data=str(data),
        engine="keras-tuner",
        tuner="random",
        trials=2,
        max_epochs=2,
        limit=40,
        progress=False,
        report=False,
    )
    return SearchConfig(**(values | changes))


def _keras_tuner_trial(config: SearchConfig, trial: FrozenTrial) -> keras_tuner.engine.trial.Trial:
    trial_id = trial.user_attrs["keras_tuner_trial_id"]
    return keras_tuner.engine.trial.Trial.load(
        str(project_dir(config) / f"trial_{trial_id}" / "trial.json")
    )


def _check_copies(study: optuna.Study, config: SearchConfig) -> None:
    """Trial 0 is the seed baseline; every KerasTuner trial is in Optuna once, as it scored."""
    trials = study.trials
    ids = [t.user_attrs["keras_tuner_trial_id"] for t in trials]
    assert len(ids) == len(set(ids))
    assert trials[0].user_attrs["role"] == "seed_baseline"
    assert sum(t.user_attrs.get("role") == "seed_baseline" for t in trials) == 1
    for trial in trials:
        assert trial.user_attrs["engine"] == "keras-tuner"
        fixed = optuna.trial.FixedTrial(trial.params)
        suggest(fixed, max_epochs=config.max_epochs)
        assert trial.distributions == fixed.distributions  # the Optuna engine's own
        if trial.state != TrialState.COMPLETE:
            continue
        assert set(trial.user_attrs) >= OPTUNA_ATTRS
        # KerasTuner saw the exact val_auc: its score is the value Optuna holds
        scored = _keras_tuner_trial(config, trial)
        assert scored.metrics.get_best_value("val_auc") == pytest.approx(trial.value)
        assert trial.value == max(trial.intermediate_values.values())
        assert trial.intermediate_values[trial.user_attrs["best_epoch"] - 1] == trial.value
        assert trial.datetime_complete > trial.datetime_start


def test_space_is_declared_as_keras_tuner_hyperparameters() -> None:
    hp = keras_tuner.HyperParameters()
    PcamHyperModel(7).values(hp)
    declared = {p.name: p for p in hp.space}
    assert list(declared) == [dim.name for dim in SPACE]
    for dim in SPACE:
        found = declared[dim.name]
        if dim.choices is not None:
            assert isinstance(found, keras_tuner.engine.hyperparameters.Choice)
            assert list(found.values) == list(dim.choices)
        else:
            assert found.min_value == dim.low
            assert found.max_value == dim.high
            assert found.sampling == ("log" if dim.log else "linear")
    assert declared["learning_rate"].sampling == "log"
    assert "epochs" not in declared  # the budget, never a hyperparameter (Hyperband's resource)


def test_command_line_picks_the_engine_and_refuses_conflicts() -> None:
    config = parse_args(["--engine", "keras-tuner", "--tuner", "bayesian"])
    assert (config.engine, config.tuner, config.sampler) == ("keras-tuner", "bayesian", "tpe")
    assert parse_args([]).engine == "optuna"
    assert parse_args(["--engine", "keras-tuner"]).tuner == "hyperband"
    for argv in (["--engine", "keras-tuner", "--pruner", "median"], ["--tuner", "random"]):
        with pytest.raises(SystemExit):
            parse_args(argv)
    with pytest.raises(ConfigError, match="one worker"):
        SearchConfig(engine="keras-tuner", workers=2)


@pytest.mark.slow
def test_random_search_copies_each_trial_once_through_failures_and_interruptions(
    tmp_path, synthetic, monkeypatch
) -> None:
    config = _config(tmp_path, synthetic)
    params = PcamHyperModel.params

    def second_explodes(self, hp):
        """KerasTuner trial 1 builds and trains with SGD at an infinite learning rate (4 steps
        an epoch): its real loss becomes NaN within the first epoch, on every CPU."""
        chosen = params(self, hp)
        if self.seed != config.seed + 1:
            return chosen
        exploding = dict(optimizer="sgd", learning_rate=math.inf, schedule="constant", warmup=0.0)
        return replace(chosen, **exploding, batch_size=8)

    with monkeypatch.context() as patch:
        patch.setattr(PcamHyperModel, "params", second_explodes)
        outcome = run_search(config)
    study = outcome.study
    # a failed trial does not use up --trials, as in the Optuna engine
    complete, fail = TrialState.COMPLETE, TrialState.FAIL
    assert [t.state for t in study.trials] == [complete, fail, complete]
    diverged = study.trials[1]
    assert diverged.user_attrs["keras_tuner_trial_id"] == "1"
    assert re.fullmatch(
        r"diverged: loss became (nan|inf) in epoch 1", diverged.user_attrs["fail_reason"]
    )
    assert diverged.value is None and diverged.intermediate_values == {}
    assert _keras_tuner_trial(config, diverged).status == "FAILED"
    baseline = study.trials[0]
    assert baseline.params == seed_baseline_values()
    assert sorted(baseline.intermediate_values) == [0, 1]
    attrs = study.user_attrs
    assert attrs["study_defining"]["engine"] == "keras-tuner"
    assert attrs["study_defining"]["tuner"] == "random"
    assert attrs["data_fingerprint"] and "optuna" in attrs["package_versions"]
    _check_copies(study, config)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    # stopped after KerasTuner saved trial 3, before its copy into Optuna
    with monkeypatch.context() as patch:
        patch.setattr(OptunaCopy, "add", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_search(replace(config, trials=3))
    assert len(optuna.load_study(study_name="kt", storage=config.storage).trials) == 3
    # the next run copies it first, then is stopped inside trial 4's training
    with monkeypatch.context() as patch:
        patch.setattr(PcamHyperModel, "fit", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_search(replace(config, trials=4))
    assert len(optuna.load_study(study_name="kt", storage=config.storage).trials) == 4
    # resuming re-runs the interrupted KerasTuner trial under its own id
    resumed = run_search(replace(config, trials=4))
    assert resumed.resumed and resumed.trials_run == 1
    trials = resumed.study.trials
    assert [t.user_attrs["keras_tuner_trial_id"] for t in trials] == ["0", "1", "2", "3", "4"]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    _check_copies(resumed.study, config)


@pytest.mark.slow
def test_hyperband_resumes_its_bracket_and_submit_retrains_the_best(tmp_path, synthetic) -> None:
    # --max-epochs 3: the seed baseline (3 epochs), then bracket 1: three 1-epoch trials,
    # of which the best is promoted to train epochs 1-2 from its weights
    config = _config(tmp_path, synthetic, tuner="hyperband", trials=4, max_epochs=3, report=True)
    outcome = run_search(config)
    assert [len(t.intermediate_values) for t in outcome.study.trials] == [3, 1, 1, 1]
    assert "epochs" not in outcome.study.trials[0].params
    assert (config.output_dir / "report.html").is_file()
    assert "seed baseline (trial 0)" in summary(outcome, config)

    resumed = run_search(replace(config, trials=5))
    assert resumed.resumed and resumed.trials_run == 1
    promoted = resumed.study.trials[4]
    parent_id = promoted.user_attrs["keras_tuner_parent_trial_id"]
    assert parent_id in {"1", "2", "3"}
    round_values = _keras_tuner_trial(config, promoted).hyperparameters.values
    assert (round_values["tuner/initial_epoch"], round_values["tuner/epochs"]) == (1, 3)
    assert promoted.user_attrs["initial_epoch"] == 1 and promoted.user_attrs["epochs_run"] == 2
    parent = next(
        t for t in resumed.study.trials if t.user_attrs["keras_tuner_trial_id"] == parent_id
    )
    assert promoted.params == parent.params
    assert sorted(promoted.intermediate_values) == [1, 2]  # after the parent's best epoch
    _check_copies(resumed.study, config)

    done = submit(
        SubmitConfig(study="kt", storage=config.storage, out=str(tmp_path / "out"), progress=False)
    )
    best = resumed.study.best_trial
    assert done.metadata["trial"] == best.number
    assert done.metadata["epochs_trained"] == best.user_attrs["best_epoch"]
    assert len(done.ids) == 8 and np.isfinite(done.probabilities).all()
    assert (
        json.loads((tmp_path / "out" / "best" / "model.json").read_text())["trial"] == best.number
    )


@pytest.mark.slow
def test_bayesian_search_resumes_and_adds_trials(tmp_path, synthetic) -> None:
    config = _config(tmp_path, synthetic, tuner="bayesian", max_epochs=1)
    run_search(config)
    resumed = run_search(replace(config, trials=3))
    assert resumed.resumed and resumed.trials_run == 1
    trials = resumed.study.trials
    assert [t.user_attrs["keras_tuner_trial_id"] for t in trials] == ["0", "1", "2"]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    _check_copies(resumed.study, config)
    # the finished study is left alone
    again = run_search(replace(config, trials=3))
    assert again.trials_run == 0


def test_models_over_max_params_are_pruned_without_training(tmp_path, synthetic) -> None:
    config = _config(tmp_path, synthetic, max_params=1)
    trials = run_search(config).study.trials
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.PRUNED]
    assert trials[0].user_attrs["role"] == "seed_baseline"
    assert "over --max-params" in trials[0].user_attrs["prune_reason"]
    assert not any(t.intermediate_values for t in trials)
    # the study, and its KerasTuner project, belong to one tuner
    with pytest.raises(ConfigError, match="tuner"):
        run_search(replace(config, tuner="hyperband", trials=3))


def test_a_study_of_the_optuna_engine_is_not_mixed_in(tmp_path, synthetic) -> None:
    config = _config(tmp_path, synthetic)
    study = optuna.create_study(study_name="kt", storage=config.storage, direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    with pytest.raises(ConfigError, match="Optuna engine"):
        run_search(config)


def test_a_project_reloads_only_with_its_space_and_one_made_before_it_was_recorded(
    tmp_path, synthetic
) -> None:
    from types import SimpleNamespace

    from search.tuner_engine import SETTINGS_FILE, _check_project

    config = _config(tmp_path, synthetic)
    split = {"validation": "split", "validation_note": "a random split"}
    data = SimpleNamespace(fingerprint="f1", content="c1", **split)
    _check_project(config, data)  # a new project records its settings, the space among them
    path = project_dir(config) / SETTINGS_FILE
    settings = json.loads(path.read_text())
    assert settings["study_defining"]["search_space"]["crop"] == {"choices": [32, 48, 64, 96]}
    _check_project(config, data)
    _check_project(config, SimpleNamespace(fingerprint="f2", content="c1", **split))  # new times
    with pytest.raises(ConfigError, match="made with other settings"):
        _check_project(config, SimpleNamespace(fingerprint="f2", content="c2", **split))
    with pytest.raises(ConfigError, match="validation: a random split then, whole groups"):
        groups = {"validation": "groups:ab12", "validation_note": "whole groups of --groups g"}
        _check_project(config, SimpleNamespace(fingerprint="f1", content="c1", **groups))
    del settings["data_content"]  # as written before the content was recorded
    del settings["validation"], settings["validation_note"]  # and before validation was
    path.write_text(json.dumps(settings))
    _check_project(config, data)
    settings["study_defining"]["search_space"]["crop"] = {"choices": [64]}
    path.write_text(json.dumps(settings))
    with pytest.raises(ConfigError, match="made with other settings"):
        _check_project(config, data)
    del settings["study_defining"]["search_space"]  # as written before the space was recorded
    path.write_text(json.dumps(settings))
    _check_project(config, data)


@pytest.mark.slow
def test_both_engines_record_the_same_trial_attributes(tmp_path, synthetic) -> None:
    """One trial record for both engines: the seed baseline of an Optuna study and of a
    KerasTuner study carry the same user attributes, bar the KerasTuner bookkeeping."""
    from search.record import RECORD_ATTRS

    common = dict(trials=1, max_epochs=1, limit=40)
    tuned = run_search(_config(tmp_path, synthetic, study="kt", **common)).study.trials[0]
    plain = _config(tmp_path, synthetic, study="op", engine="optuna", tuner="hyperband", **common)
    searched = run_search(plain).study.trials[0]
    assert tuned.state == searched.state == TrialState.COMPLETE
    kept = set(tuned.user_attrs) - {"engine", "keras_tuner_trial_id"}
    assert set(searched.user_attrs) == kept
    assert kept >= set(RECORD_ATTRS) - {"projected_seconds"}  # only once batches were timed
    for key in ("params_count", "training_seed", "best_epoch", "epochs_run", "dtype_policy"):
        assert searched.user_attrs[key] == tuned.user_attrs[key], key
