"""Spending a budget: --budget, the per-trial time cap, pruning that waits, priors and warm
starts, old studies, and the statistical ties a submission ensembles."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from pcam.data import load_training_data
from pcam.errors import ConfigError
from search import objective as objective_module
from search.config import SearchConfig
from search.objective import Objective
from search.options import parse_budget
from search.priors import PRIOR_ROLE, PRIORS, SEED_BASELINE_ROLE, WARM_START_ROLE
from search.pruning import first_judged_epoch, make_pruner
from search.runner import run_search
from search.space import seed_baseline_values, suggest
from search.study import open_study
from search.submission import choose_trials
from search.summary import summary

SMALL = {"blocks": 2, "base_filters": 16, "dense_units": 64, "crop": 32, "batch_size": 32}


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def data(tiny_synthetic):
    return load_training_data(tiny_synthetic, limit=40, progress=False)


def _config(tmp_path, data_path, **overrides) -> SearchConfig:
    values = dict(
        study="budget",
        storage=f"sqlite:///{tmp_path / 'budget.db'}",
        data=str(data_path),
        trials=3,
        max_epochs=2,
        limit=40,
        progress=False,
        report=False,
        priors=False,
    )
    return SearchConfig(**(values | overrides))


@pytest.mark.parametrize(
    ("text", "seconds"), [("2h", 7200), ("90m", 5400), ("1.5h", 5400), ("45s", 45), ("600", 600)]
)
def test_budgets_are_read_as_people_write_them(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["two hours", "-5m"])
def test_a_bad_budget_is_refused_on_the_command_line(text):
    done = subprocess.run(
        [sys.executable, "-m", "search.run", "--budget", text],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--budget" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_budget_cuts_the_running_trial_starts_no_other_and_is_recorded(
    tmp_path, tiny_synthetic
):
    # An epoch budget no trial can finish in 15 s (time enough on a busy machine for the data
    # and a tiny model's first epochs: the backend is already loaded in this process): trial 0
    # is cut after the epoch that passes the budget, and no trial starts after it.
    config = _config(
        tmp_path, tiny_synthetic, trials=10**6, max_epochs=500, budget=15.0, max_trial_minutes=60
    )
    outcome = run_search(config)
    trials = outcome.study.trials
    assert len(trials) == 1
    cut = trials[0]
    # cut, it still counts: its best epoch is a measurement the retrain reproduces
    assert cut.state == TrialState.COMPLETE
    assert cut.user_attrs["budget_cut"].startswith("cut after epoch")
    assert cut.user_attrs["budget_cut"].endswith("of 500")
    epochs = len(cut.intermediate_values)
    assert 0 < epochs < 500 and cut.user_attrs["epochs_run"] == epochs
    assert cut.value == max(cut.intermediate_values.values())
    assert cut.user_attrs["best_epoch"] <= epochs
    assert outcome.wall_seconds < 15 + 30  # one epoch of a tiny model past the budget, at most
    (run,) = outcome.study.user_attrs["budget_runs"]
    assert run["budget_seconds"] == 15.0 and run["complete_trials"] == 1
    assert run["budget_cut_trials"] == 1 and run["pruned_trials"] == 0
    assert run["wall_seconds"] >= 15
    text = summary(outcome, config)
    assert "budget 15 s: used" in text and "(1 cut short by the budget)" in text
    assert "overhead" in text and f"best: trial {cut.number}" in text


@pytest.mark.slow
def test_a_trial_projected_past_the_cap_is_pruned_from_its_first_batches(tiny_synthetic):
    data = load_training_data(tiny_synthetic, progress=False)  # 96 patches: 3 steps of 32
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(seed_baseline_values() | SMALL)
    objective = Objective(data, max_epochs=50, max_params=10**7, seed=0, time_cap=0.5)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    reason = trial.user_attrs["prune_reason"]
    assert reason.startswith("too slow: its first batches project") and "50 epochs" in reason
    assert trial.user_attrs["projected_seconds"] > 0.5
    # 50 epochs project far past twice the cap: stopped at its first timed batch (the second
    # of epoch 1's three), and the cut epoch is not reported
    assert trial.user_attrs["projected_seconds"] > 2 * 0.5
    assert sorted(trial.intermediate_values) == []
    # the seed baseline is measured whatever the cap: it is what the search is judged against
    study.enqueue_trial(seed_baseline_values() | SMALL, user_attrs={"role": SEED_BASELINE_ROLE})
    study.optimize(
        Objective(data, max_epochs=2, max_params=10**7, seed=0, time_cap=0.5), n_trials=1
    )
    assert study.trials[1].state == TrialState.COMPLETE
    assert study.trials[1].user_attrs["projected_seconds"] > 0.5
    # the same trial without a cap trains
    study.enqueue_trial(seed_baseline_values() | SMALL)
    study.optimize(Objective(data, max_epochs=1, max_params=10**7, seed=0), n_trials=1)
    assert study.trials[2].state == TrialState.COMPLETE


@pytest.mark.slow
def test_a_trial_its_first_batches_under_read_is_pruned_after_two_epochs(
    tiny_synthetic, monkeypatch
):
    """Validation is part of a trial's time but not of its first batches: with a validation
    pass made 2 s slower (real prediction, then a sleep: the same on any machine) a 50-epoch
    trial passes the first batches' look and is pruned at the end of its second epoch, both
    epochs measured. The 96 training patches are taken three times, so that the first
    batches are timed within the first epoch (9 steps of 32)."""
    import pcam.train

    predict = pcam.train.predict

    def slow_predict(*args, **kwargs):
        time.sleep(2.0)
        return predict(*args, **kwargs)

    monkeypatch.setattr(pcam.train, "predict", slow_predict)
    data = load_training_data(tiny_synthetic, progress=False)
    tripled = dataclasses.replace(data.train, indices=np.tile(data.train.indices, 3))
    data = dataclasses.replace(data, train=tripled)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(seed_baseline_values() | SMALL)
    objective = Objective(data, max_epochs=50, max_params=10**7, seed=0, time_cap=60.0)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    reason = trial.user_attrs["prune_reason"]
    assert reason.startswith("too slow: its first two epochs project") and "50 epochs" in reason
    assert reason.endswith("over the 1.0 min a trial may take")
    assert trial.user_attrs["projected_seconds"] < 60.0  # the first batches' look passed it
    assert float(re.search(r"project ([\d.]+) min", reason)[1]) > 1.0  # 48 x over 2 s
    assert sorted(trial.intermediate_values) == [0, 1]
    assert trial.user_attrs["epochs_run"] == 2 and trial.user_attrs["first_epoch_seconds"] > 0


@pytest.mark.slow  # real training until the budget runs out
def test_a_trial_the_budget_cuts_before_its_first_judged_epoch_is_pruned(data):
    # A deadline already passed: every trial is cut after its first epoch.
    def run(max_epochs, role=None):
        study = optuna.create_study(direction="maximize")
        study.enqueue_trial(
            seed_baseline_values() | SMALL, user_attrs={"role": role} if role else None
        )
        objective = Objective(
            data, max_epochs=max_epochs, max_params=10**7, seed=0, deadline=time.monotonic()
        )
        study.optimize(objective, n_trials=1)
        return study.trials[0]

    # 1 epoch of 8, before epoch 2 (the first judged): too early to tell the sampler anything
    early = run(max_epochs=8)
    assert early.state == TrialState.PRUNED
    assert early.user_attrs["budget_cut"] == "cut after epoch 1 of 8"
    assert early.user_attrs["prune_reason"] == (
        "cut by the budget after epoch 1, before epoch 2, the first a pruner may judge"
    )
    # 1 epoch of 4 reaches the first judged epoch (1): it counts, with its value
    judged = run(max_epochs=4)
    assert judged.state == TrialState.COMPLETE and judged.user_attrs["budget_cut"]
    assert judged.value == judged.intermediate_values[0]
    # the seed design, priors and warm starts are evidence however early they are cut
    seed = run(max_epochs=8, role=SEED_BASELINE_ROLE)
    assert seed.state == TrialState.COMPLETE and "prune_reason" not in seed.user_attrs


@pytest.mark.slow
def test_a_trial_that_cannot_reach_its_first_judged_epoch_in_the_budget_stops_at_once(data):
    """With 30 s of the budget left, a searched trial whose first batches project 25,000
    epochs (the first a pruner judges, of 100,000) past them is pruned then, not trained until
    the budget cuts it short of anything the sampler could use; the seed design is measured.
    (The margins hold on a loaded machine: no model of this size runs 25,000 epochs in 30 s.)"""

    def run(*, left: float, role: str | None = None):
        study = optuna.create_study(direction="maximize")
        study.enqueue_trial(
            seed_baseline_values() | SMALL, user_attrs={"role": role} if role else None
        )
        objective = Objective(
            data, max_epochs=100_000, max_params=10**7, seed=0, deadline=time.monotonic() + left
        )
        started = time.monotonic()
        study.optimize(objective, n_trials=1)
        return study.trials[0], time.monotonic() - started

    searched, seconds = run(left=30)
    assert searched.state == TrialState.PRUNED
    reason = searched.user_attrs["prune_reason"]
    assert reason.startswith("too slow: its first batches project") and "100000 epochs" in reason
    assert re.search(
        r"epoch 25000, the first a pruner may judge, would come after the 0\.\d min left", reason
    ), reason
    assert len(searched.intermediate_values) <= 2 and seconds < 30
    seed, _ = run(left=5, role=SEED_BASELINE_ROLE)
    assert seed.state == TrialState.COMPLETE and seed.user_attrs["budget_cut"]


def test_no_trial_starts_once_less_is_left_than_the_quickest_took_to_a_judged_epoch(
    tmp_path, tiny_synthetic, data, caplog
):
    """A budget that ends before any trial could reach an epoch a pruner judges starts nothing
    more (each would be stopped at its first batches, a row of noise: nine in the last minute
    of a real 2-hour search); without such a measurement yet, the seed design runs."""
    config = _config(tmp_path, tiny_synthetic, trials=3, budget=60.0, max_trial_minutes=60)
    study, _ = open_study(config, data)  # the seed design waits
    first = first_judged_epoch(config.max_epochs)
    timed = {"epochs_run": first, "build_seconds": 1.0, "first_epoch_seconds": 100.0}
    study.add_trial(  # measured on an earlier run: over 100 s to its first judged epoch
        optuna.trial.create_trial(value=0.9, user_attrs=timed | {"seconds_per_epoch": 30.0})
    )
    with caplog.at_level("INFO", logger="search.runner"):
        outcome = run_search(config)
    assert [t.state for t in outcome.study.trials] == [TrialState.WAITING, TrialState.COMPLETE]
    assert "less than the quickest trial so far took to reach epoch" in caplog.text
    # a quicker trial's record (2 s) lets the seed design start, and run
    quick = {"first_epoch_seconds": 1.0, "seconds_per_epoch": 1.0}
    outcome.study.add_trial(optuna.trial.create_trial(value=0.8, user_attrs=timed | quick))
    assert run_search(config).study.trials[0].state == TrialState.COMPLETE


def test_the_cap_defaults_to_half_the_budget(tmp_path, tiny_synthetic):
    assert _config(tmp_path, tiny_synthetic, budget=3600.0).trial_cap_seconds == 1800
    capped = _config(tmp_path, tiny_synthetic, budget=3600.0, max_trial_minutes=5)
    assert capped.trial_cap_seconds == 300
    assert _config(tmp_path, tiny_synthetic).trial_cap_seconds is None


@pytest.mark.parametrize("name", ["hyperband", "median", "sha"])
def test_no_pruner_judges_a_trial_before_a_quarter_of_the_budget(name):
    """A slow starter (the batch-norm recipe) is not pruned while it trails; a trial that
    still trails after a quarter of the budget can be."""
    max_epochs = 12
    assert first_judged_epoch(max_epochs) == 3
    # named: Hyperband puts trials in brackets by a hash of the study name, random otherwise
    study = optuna.create_study(
        study_name="judged", direction="maximize", pruner=make_pruner(name, max_epochs)
    )
    for _ in range(6):
        trial = study.ask()
        for epoch in range(max_epochs):
            trial.report(0.9, step=epoch)
            trial.should_prune()
        study.tell(trial, 0.9)
    judged_at = []
    for _ in range(4):
        trial = study.ask()
        for epoch in range(max_epochs):
            trial.report(0.5, step=epoch)
            if trial.should_prune():
                judged_at.append(epoch + 1)
                break
        study.tell(trial, state=TrialState.PRUNED)
    assert judged_at, "a trial that trails all the way must be pruned at some point"
    assert min(judged_at) >= first_judged_epoch(max_epochs)


def test_a_new_study_enqueues_the_seed_then_the_priors(tmp_path, tiny_synthetic, data):
    study, resumed = open_study(_config(tmp_path, tiny_synthetic, priors=True, trials=10), data)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    roles = [t.user_attrs["role"] for t in waiting]
    assert not resumed
    assert roles == [SEED_BASELINE_ROLE] + [PRIOR_ROLE] * len(PRIORS)
    assert [t.user_attrs.get("prior") for t in waiting[1:]] == [name for name, _, _ in PRIORS]
    # a study of 2 trials takes one prior, so that none is left waiting
    few = _config(tmp_path, tiny_synthetic, priors=True, trials=2, study="few")
    assert len(open_study(few, data)[0].get_trials(states=(TrialState.WAITING,))) == 2


def test_a_resume_queues_an_interrupted_queued_design_again_once_and_not_a_draw(
    tmp_path, tiny_synthetic, data, monkeypatch
):
    """Ctrl-C mid-trial fails the trial; the resumed search queues the seed design (a prior, a
    warm start) again with its values and role, so that it is not lost, and only once; a
    sampler's draw is drawn anew instead."""

    def interrupted_training(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(objective_module, "train", interrupted_training)
    config = _config(tmp_path, tiny_synthetic, trials=10)
    study, _ = open_study(config, data)
    objective = Objective(data, max_epochs=2, max_params=10**9, seed=0)
    for _ in range(2):  # the queued seed design, then a sampler's draw
        with pytest.raises(KeyboardInterrupt):
            study.optimize(objective, n_trials=1)
    seed_design, draw = study.trials
    assert seed_design.state == draw.state == TrialState.FAIL
    assert draw.user_attrs["fail_reason"] == "interrupted by SIGINT"
    for _ in range(2):  # resumed twice: still one copy
        resumed, existing = open_study(config, data)
        assert existing
        assert len(resumed.trials) == 3
    again = resumed.trials[2]
    assert again.state == TrialState.WAITING
    assert again.system_attrs["fixed_params"] == seed_design.system_attrs["fixed_params"]
    assert again.user_attrs == {"role": SEED_BASELINE_ROLE, "queued_again_from": 0}


def test_warm_start_enqueues_the_top_trials_of_an_earlier_study(tmp_path, tiny_synthetic, data):
    earlier = optuna.create_study(
        study_name="earlier", storage=f"sqlite:///{tmp_path / 'earlier.db'}", direction="maximize"
    )
    sampler_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    values_by_score = {}
    for score in (0.71, 0.93, 0.88, 0.60):
        trial = sampler_study.ask()
        suggest(trial, max_epochs=2)
        earlier.add_trial(
            optuna.trial.create_trial(
                params=trial.params, distributions=trial.distributions, value=score
            )
        )
        values_by_score[score] = trial.params
    config = _config(
        tmp_path,
        tiny_synthetic,
        warm_start="earlier",
        warm_start_storage=f"sqlite:///{tmp_path / 'earlier.db'}",
        warm_start_top=2,
    )
    study, _ = open_study(config, data)
    carried = [
        t
        for t in study.get_trials(states=(TrialState.WAITING,))
        if t.user_attrs.get("role") == WARM_START_ROLE
    ]
    enqueued = [t.system_attrs["fixed_params"] for t in carried]
    assert enqueued == [values_by_score[0.93], values_by_score[0.88]]
    assert [t.user_attrs["warm_start"] for t in carried] == ["earlier#1", "earlier#2"]


def test_a_missing_warm_start_study_is_a_clear_error(tmp_path, tiny_synthetic, data):
    config = _config(tmp_path, tiny_synthetic, warm_start="nowhere")
    with pytest.raises(ConfigError, match="--warm-start nowhere: no study database"):
        open_study(config, data)
    # nothing half-made is left for the next run to resume
    assert "budget" not in optuna.get_all_study_names(storage=config.storage_url)


def test_a_study_of_the_old_space_is_refused_with_what_to_do(tmp_path, tiny_synthetic, data):
    config = _config(tmp_path, tiny_synthetic)
    study = optuna.create_study(
        study_name=config.study, storage=config.storage_url, direction="maximize"
    )
    old = {k: v for k, v in config.study_defining().items() if k != "space"}
    study.set_user_attr("study_defining", old)  # made when epochs were a searched value
    study.set_user_attr("data_fingerprint", data.fingerprint)
    with pytest.raises(ConfigError, match="older pcam-search") as refused:
        open_study(config, data)
    assert "python -m search.submit --study budget" in str(refused.value)
    assert "new --study" in str(refused.value)


def _scored_study(values: list[float], *, positives: int = 240, patches: int = 600):
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("val_positives", positives)
    study.set_user_attr("val_patches", patches)
    for value in values:
        study.add_trial(optuna.trial.create_trial(value=value))
    return study


def test_the_default_ensemble_takes_the_statistical_ties_of_the_best():
    # 600 validation patches: the 95% interval of 0.93 reaches about 0.91
    study = _scored_study([0.80, 0.93, 0.925, 0.915, 0.90, 0.92])
    assert [t.number for t in choose_trials(study, ensemble=None)] == [1, 2, 5]
    assert [t.number for t in choose_trials(_scored_study([0.80, 0.93]), ensemble=None)] == [1]
    # with 60 000 validation patches nothing ties
    large = _scored_study([0.93, 0.925], positives=24_000, patches=60_000)
    assert [t.number for t in choose_trials(large, ensemble=None)] == [0]


def test_a_trial_that_went_on_from_a_hyperband_parent_is_not_retrained_as_if_from_scratch():
    study = _scored_study([0.90, 0.85])
    study.add_trial(
        optuna.trial.create_trial(
            value=0.93, user_attrs={"keras_tuner_parent_trial_id": "0007", "initial_epoch": 2}
        )
    )
    # the defaults choose among trials trained from scratch
    assert [t.number for t in choose_trials(study, ensemble=1)] == [0]
    with pytest.raises(ConfigError, match=r"trial 2 went on from the weights of KerasTuner Hyper"):
        choose_trials(study, trial=2)
    assert [t.number for t in choose_trials(study, trial=1)] == [1]


def test_resuming_a_study_made_before_content_hashes_records_its_data_content(
    tmp_path, tiny_synthetic, data
):
    """Resumed on unchanged files, an older study learns its data set's content hash (what
    lets it accept a copy with new file times later: test_submit's copy test)."""
    from search.study import study_provenance

    config = _config(tmp_path, tiny_synthetic)
    study = optuna.create_study(
        study_name=config.study, storage=config.storage_url, direction="maximize"
    )
    for key, value in study_provenance(config, data).items():
        if key != "data_content":
            study.set_user_attr(key, value)
    resumed, existing = open_study(config, data)
    assert existing and resumed.user_attrs["data_content"] == data.content
