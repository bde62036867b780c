"""--recycle-after: a worker process hands the search to a fresh one every N trials."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from search.config import SearchConfig
from search.runner import run_search

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def test_a_process_stops_after_its_trials_and_leaves_the_report_to_the_last(
    tmp_path, tiny_synthetic, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    config = SearchConfig(
        study="r",
        storage=f"sqlite:///{tmp_path / 'r.db'}",
        data=str(tiny_synthetic),
        trials=5,
        max_epochs=1,
        limit=40,
        recycle_after=2,
        budget=600.0,
        progress=False,
    )
    outcome = run_search(config)
    assert outcome.recycle
    trials = [t for t in outcome.study.trials if t.state != TrialState.WAITING]  # not priors
    assert [t.state in FINISHED for t in trials] == [True, True]
    assert [t.user_attrs["worker_generation"] for t in trials] == [0, 0]
    # Report, note and budget account are the last process's: this one wrote none.
    assert not (tmp_path / "studies" / "r" / "report.html").exists()
    assert "budget_runs" not in outcome.study.user_attrs


@pytest.mark.slow
def test_a_recycled_search_ends_with_every_trial_one_summary_and_one_budget_account(
    tmp_path, tiny_synthetic
):
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    argv = [
        sys.executable, "-m", "search.run", "--data", str(tiny_synthetic), "--study", "r",
        "--storage", storage, "--limit", "40", "--max-epochs", "1", "--trials", "4",
        "--recycle-after", "2", "--budget", "10m", "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("going on in a fresh one (--recycle-after)") == 1, done.stderr
    assert done.stdout.count("study 'r' (") == 1, done.stdout  # the summary, once
    assert "Traceback" not in done.stderr

    study = optuna.load_study(study_name="r", storage=storage)
    trials = study.trials
    assert [t.state in FINISHED for t in trials] == [True] * 4
    assert [t.user_attrs["worker_generation"] for t in trials] == [0, 0, 1, 1]
    # The budget counts from the first process's start: one account holding all four trials.
    (account,) = study.user_attrs["budget_runs"]
    assert account["complete_trials"] + account["pruned_trials"] == 4
    assert account["wall_seconds"] >= sum(
        (t.datetime_complete - t.datetime_start).total_seconds() for t in trials
    )
    assert (tmp_path / "studies" / "r" / "report.html").exists()
