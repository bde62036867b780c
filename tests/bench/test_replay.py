"""The replay benchmark (bench/bench_replay.py): the search's rules on a simulated clock, a
seed that repeats its results, and a table exported from a real study."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_replay as replay
import record_local

from search.priors import PRIOR_ROLE, SEED_BASELINE_ROLE, prior_values
from search.space import seed_baseline_values, suggest

MAX_EPOCHS = 12
MINUTE = 60.0


def _recorded(number, role, values, curve, *, epoch_minutes=1.0, projected=None):
    return replay.Recorded(
        number=number,
        role=role,
        values=values,
        curve=tuple(curve),
        start_seconds=1.0,
        epoch_seconds=(epoch_minutes * MINUTE,) * len(curve),
        projected_seconds=projected if projected is not None else epoch_minutes * 12 * MINUTE,
        steps_per_epoch=38,
        epochs=MAX_EPOCHS,
    )


def _table() -> replay.Table:
    """The seed design, the priors (one too slow for any cap) and sampled trials: a good one,
    a heavy loser, a light one."""
    seed = _recorded(
        0, SEED_BASELINE_ROLE, seed_baseline_values(), [0.80 + 0.006 * e for e in range(12)]
    )
    priors = [
        _recorded(1 + i, PRIOR_ROLE, values, [0.85 + 0.007 * e for e in range(12)], epoch_minutes=2)
        for i, (_, values) in enumerate(prior_values())
    ]
    priors[-1] = _recorded(3, PRIOR_ROLE, prior_values()[-1][1], [], projected=500 * MINUTE)
    sampled = [
        _recorded(
            4, "sampled", {**seed_baseline_values(), "blocks": 5}, [0.70] * 12, epoch_minutes=3
        ),
        _recorded(5, "sampled", {**seed_baseline_values(), "dense_units": 64}, [0.82] * 12),
    ]
    return replay.Table((seed, *priors, *sampled), MAX_EPOCHS, 600, 246, {"studies": ["test"]})


def test_the_search_s_rules_for_a_trial_near_the_cap_and_the_budget_s_end():
    table = _table()
    study = optuna.create_study(direction="maximize")
    design = table.trials[1]  # 2-minute epochs, 24 minutes in all

    def run(*, left, cap=None, judged=True):
        return replay.run_trial(
            study.ask(), design, left=left, cap=cap, judged=judged, max_epochs=MAX_EPOCHS
        )

    seconds, counted = run(left=120 * MINUTE, cap=20 * MINUTE)
    assert counted is None and seconds < MINUTE  # over the cap: its first batches only
    # 10 minutes left: epoch 3 (6 minutes in) can be judged, so it starts, cut at 10 minutes
    assert run(left=10 * MINUTE) == (10 * MINUTE, pytest.approx(max(design.curve[:4])))
    # 5 minutes left: epoch 3 would end after the budget, so a sampled trial does not start
    seconds, counted = run(left=5 * MINUTE)
    assert counted is None and seconds < MINUTE
    # ... while a prior (never judged) starts and counts with its 2 epochs
    assert run(left=5 * MINUTE, judged=False) == (5 * MINUTE, pytest.approx(design.curve[1]))


def test_a_trial_its_first_batches_under_read_stops_after_two_epochs():
    """Cap 20 minutes: a 24-minute trial whose first batches projected 18 passes them and is
    stopped by the speed check's second look, after two epochs, which it pays for; one
    recorded as stopped there (two epochs timed, no curve) costs the same, and the export
    keeps such a trial that way. Near the budget's end (no cap past it) it runs on and the
    budget cuts it."""
    study = optuna.create_study(direction="maximize")
    design = _table().trials[1]  # 1 s of building, 2-minute epochs, 24 minutes in all
    under_read = dataclasses.replace(design, projected_seconds=18 * MINUTE)
    stopped = dataclasses.replace(under_read, curve=(), epoch_seconds=(2 * MINUTE, 2 * MINUTE))

    def run(recorded, *, left=120 * MINUTE, cap=20 * MINUTE):
        return replay.run_trial(
            study.ask(), recorded, left=left, cap=cap, judged=True, max_epochs=MAX_EPOCHS
        )

    for recorded in (under_read, stopped):
        assert run(recorded) == (1.0 + 4 * MINUTE, None)
    assert run(under_read, cap=30 * MINUTE) == (design.total_seconds, design.best)
    # No cap, 4 minutes left: its first batches' 18 minutes pass 4 x 4, the most a trial may
    # project that must reach epoch 3 within the budget, so it stops at once; 7 minutes left:
    # it starts, the second look leaves the budget's end to the budget, which cuts it in
    # epoch 4 with epochs 1-3 counted
    seconds, counted = run(under_read, left=4 * MINUTE, cap=None)
    assert counted is None and seconds < MINUTE
    assert run(under_read, left=7 * MINUTE, cap=None) == (
        7 * MINUTE,
        pytest.approx(max(design.curve[:3])),
    )

    recording = optuna.create_study(direction="maximize")
    recording.enqueue_trial(design.values)
    trial = recording.ask()
    suggest(trial, max_epochs=MAX_EPOCHS)
    for epoch, value in enumerate((0.81, 0.83)):
        trial.report(value, epoch)
    for key, value in {
        "prune_reason": "too slow: its first two epochs project 24.0 min for 12 epochs, over ...",
        "projected_seconds": 1080.0,
        "build_seconds": 1.0,
        "first_epoch_seconds": 110.0,  # training only
        "seconds_per_epoch": 120.0,  # the run's wall over its two epochs, validation included
    }.items():
        trial.set_user_attr(key, value)
    frozen = recording.tell(trial, state=optuna.trial.TrialState.PRUNED)
    exported = replay.recorded_trial(
        frozen, number=7, max_epochs=MAX_EPOCHS, train_patches=2400, study="s"
    )
    assert (exported.curve, exported.start_seconds) == ((), 1.0)
    assert exported.epoch_seconds == (110.0, 130.0) and exported.projected_seconds == 1080.0


def test_the_same_seed_replays_the_same_search_and_the_priors_come_first():
    table = _table()
    strategy = replay.STRATEGIES[1]
    first = replay.simulate(table, strategy, budget=90 * MINUTE, seed=3)
    again = replay.simulate(table, strategy, budget=90 * MINUTE, seed=3)
    assert [(s.recorded.number, s.seconds, s.counted) for s in first] == [
        (s.recorded.number, s.seconds, s.counted) for s in again
    ]
    assert [s.recorded.number for s in first[:4]] == [0, 1, 2, 3]
    assert first[3].counted is None  # the too-slow prior
    assert sum(s.seconds for s in first) == pytest.approx(90 * MINUTE)
    summary = replay.summarise(table, first)
    assert summary["best"] == pytest.approx(table.priors_best)
    assert summary["minutes_to_priors_best"] == pytest.approx((1 + 12 * 60 + 1 + 24 * 60) / 60)


def test_the_priors_run_in_the_search_s_order_or_in_the_order_before_issue_26():
    """The default queues the priors as ``search.priors`` orders them (the strongest first);
    the strategy before issue 26 in the old order, each recorded prior known by its values."""
    table = _table()
    position = {name: 1 + i for i, (name, _) in enumerate(prior_values())}
    assert replay.PRIOR_ORDER[0] == "recipe_96_one_cycle"
    for strategy, order in (
        (replay.STRATEGIES[1], replay.PRIOR_ORDER),
        (replay.STRATEGIES[0], ("hand_recipe", "recipe_cosine", "recipe_96_one_cycle")),
    ):
        spans = replay.simulate(table, strategy, budget=120 * MINUTE, seed=0)
        assert [s.recorded.number for s in spans[:4]] == [0] + [position[n] for n in order]


def test_a_local_phase_takes_the_recorded_perturbations_of_the_incumbent_once_each():
    """Perturbations recorded around the best prior (bench/record_local.py) answer the local
    phase exactly, each once, in a seeded order; then new perturbations, answered by the
    nearest recorded trial, take over."""
    table = _table()
    best = table.trials[1]  # the best prior: its curve ends highest
    local = [
        dataclasses.replace(
            _recorded(6 + i, replay.LOCAL_ROLE, {**best.values, "dense_units": units}, [0.9] * 12),
            perturbs="test#1",
        )
        for i, units in enumerate((64, 256))
    ]
    best = dataclasses.replace(best, source="test#1")
    table = dataclasses.replace(table, trials=(table.trials[0], best, *table.trials[2:], *local))
    strategy = dataclasses.replace(replay.STRATEGIES[1], local=1.0)
    spans = replay.simulate(table, strategy, budget=200 * MINUTE, seed=1)
    # once the seed design and priors have run, every sampled trial is local: the recorded first
    assert [s.recorded.role for s in spans[:4]] == [SEED_BASELINE_ROLE] + [PRIOR_ROLE] * 3
    assert sorted(s.recorded.number for s in spans[4:6]) == [6, 7] and len(spans) > 6
    pool = list(local)
    rng = np.random.default_rng(0)
    assert replay.local_move(best, pool, rng) == local[0].values
    assert replay.local_move(table.trials[2], pool, rng) != local[1].values  # not its origin
    assert replay.local_move(best, pool, rng) == local[1].values and pool == []
    new = replay.local_move(best, pool, rng)
    assert 1 <= sum(new[k] != best.values[k] for k in new) <= 3


def test_the_heavy_loser_is_pruned_at_the_first_judged_epoch_by_the_default_only():
    """The recorded trial far below the incumbent is stopped at epoch 3 by the default
    pruner (far-below rule); without pruning it runs its 36 minutes."""
    table = _table()
    loser = table.trials[4]
    for strategy, minutes in ((replay.STRATEGIES[1], 3 * 3), (replay.STRATEGIES[-1], 36)):
        study = optuna.create_study(direction="maximize", pruner=strategy.pruner(MAX_EPOCHS))
        study.set_user_attr("val_positives", 246)
        study.set_user_attr("val_patches", 600)
        done = study.ask()
        for epoch, value in enumerate(table.trials[1].curve):
            done.report(value, epoch)
        study.tell(done, table.trials[1].best)
        seconds, counted = replay.run_trial(
            study.ask(), loser, left=600 * MINUTE, cap=None, judged=True, max_epochs=MAX_EPOCHS
        )
        assert (seconds - 1.0) / MINUTE == pytest.approx(minutes)
        assert (counted is None) == (minutes < 36)


@pytest.mark.slow
def test_a_table_exported_from_a_real_study_replays(tmp_path, tiny_synthetic):
    """A real two-trial search (seed design and a prior, pruning off), exported: its whole
    curves, costs and roles, replayed for every strategy."""
    import subprocess

    storage = f"sqlite:///{tmp_path / 'r.db'}"
    search = subprocess.run(
        [sys.executable, "-m", "search.run", "--data", str(tiny_synthetic), "--study", "r",
         "--storage", storage, "--trials", "2", "--max-epochs", "2", "--limit", "40",
         "--pruner", "none", "--sampler", "random", "--no-progress", "--no-report"],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert search.returncode == 0, search.stderr[-3000:]
    # a perturbation queued for the next recording (bench/record_local.py) is not exported yet
    record_local.enqueue_local(optuna.load_study(study_name="r", storage=storage), 1, seed=0)
    table = replay.export([(storage, "r")], tmp_path / "curves.json")
    assert [t.role for t in table.trials] == [SEED_BASELINE_ROLE, PRIOR_ROLE]
    assert all(len(t.curve) == 2 and len(t.epoch_seconds) == 2 for t in table.trials)
    assert replay.load(tmp_path / "curves.json") == table
    # a budget of a few dozen such trials: seconds of replay, not thousands of simulated trials
    budget = 20 * sum(t.total_seconds for t in table.trials)
    rows, _ = replay.replay_table(table, budget=budget, seeds=2)
    assert len(rows) == len(replay.STRATEGIES)

    # Curves recorded on a machine half as fast join the table in its reference's seconds, its
    # seed design first timed beside other work (3x as slow), then alone: the alone run counts.
    recorded = optuna.load_study(study_name="r", storage=storage)
    slower = optuna.create_study(study_name="slower", storage=storage, direction="maximize")
    for key, value in recorded.user_attrs.items():
        slower.set_user_attr(key, value)
    seed_run = recorded.trials[0]
    timed = ("build_seconds", "first_epoch_seconds", "seconds_per_epoch", "train_seconds")
    busy = {key: 3 * seed_run.user_attrs[key] for key in timed}
    slower.add_trial(
        optuna.trial.create_trial(
            params=seed_run.params,
            distributions=seed_run.distributions,
            value=seed_run.value,
            intermediate_values=seed_run.intermediate_values,
            user_attrs=seed_run.user_attrs | busy,
        )
    )
    slower.add_trials(recorded.trials[:2])
    raw = json.loads((tmp_path / "curves.json").read_text())
    raw["source"]["seed_epoch_seconds"]["r"] *= 2  # the reference machine's, made twice as slow
    (tmp_path / "curves.json").write_text(json.dumps(raw))
    added = replay.export([(storage, "slower")], tmp_path / "curves.json", add=True)
    assert added.source["studies"] == ["r", "slower"]
    assert [t.role for t in added.trials] == [SEED_BASELINE_ROLE, PRIOR_ROLE] + [
        replay.REPEAT_ROLE
    ] * 3
    assert [t.number for t in added.trials] == [0, 1, 2, 3, 4]
    for original, repeat in zip(table.trials, added.trials[3:], strict=True):
        assert repeat.curve == original.curve
        assert repeat.epoch_seconds == pytest.approx([2 * e for e in original.epoch_seconds], 0.01)
    # exported again, a study replaces its trials; the queued designs stay the reference's
    again = replay.export([(storage, "slower")], tmp_path / "curves.json", add=True)
    assert again.trials == added.trials
    assert replay.replay_table(again, budget=budget, seeds=2)[0] == rows
