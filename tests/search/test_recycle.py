"""--recycle-after: a worker process hands the search to a fresh one every N trials.

The command-line side (the process replacing itself, one summary, one budget account) is
tested with real processes in test_run_output.py."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from search.config import SearchConfig
from search.runner import run_search

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.mark.slow
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
