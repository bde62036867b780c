"""Perturbations of the best prior queued for recording (bench/record_local.py), on a real
SQLite study."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_replay as replay
import record_local

from search.priors import PRIOR_ROLE, prior_values
from search.space import SPACE, suggest


def _study(tmp_path: Path) -> optuna.Study:
    storage = f"sqlite:///{tmp_path / 'curves.db'}"
    study = optuna.create_study(study_name="curves", storage=storage, direction="maximize")
    for (name, values), value in zip(prior_values(), (0.93, 0.91, 0.92), strict=True):
        study.enqueue_trial(values, user_attrs={"role": PRIOR_ROLE, "prior": name})
        trial = study.ask()
        suggest(trial, max_epochs=12)
        study.tell(trial, value)
    return study


def test_perturbations_of_the_best_prior_wait_first_and_a_second_call_draws_new_ones(tmp_path):
    study = _study(tmp_path)
    best = dict(prior_values()[0][1])  # 0.93
    first = record_local.enqueue_local(study, 4, seed=0)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 4
    assert {t.user_attrs["role"] for t in waiting} == {replay.LOCAL_ROLE}
    assert {t.user_attrs["perturbs"] for t in waiting} == {"curves#0"}
    for values in first:
        moved = [name for name in best if values[name] != best[name]]
        assert 1 <= len(moved) <= 3, moved
        assert all(dim.allows(values[dim.name]) for dim in SPACE)
    # the queued trials run before any draw, with their values and role
    trial = study.ask()
    suggest(trial, max_epochs=12)
    assert trial.params == first[0] and trial.user_attrs["role"] == replay.LOCAL_ROLE
    study.tell(trial, 0.5)
    assert record_local.enqueue_local(study, 4, seed=0) != first[1:] + first[:1]


def test_it_says_what_is_missing(tmp_path, capsys):
    empty = optuna.create_study(study_name="empty", storage=f"sqlite:///{tmp_path / 'e.db'}")
    with pytest.raises(SystemExit, match="no complete prior to perturb yet"):
        record_local.enqueue_local(empty, 2, seed=0)
    missing = tmp_path / "none.db"
    with pytest.raises(SystemExit, match=r"no such database; record with bench/record_curves"):
        record_local.main(["2", "--storage", f"sqlite:///{missing}"])
    assert not missing.exists()
