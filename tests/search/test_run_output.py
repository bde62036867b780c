"""A search as a log sees it: output into pipes, and a search stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import query_study_file, stderr_after_stop


def _search_argv(data, storage: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "search.run", "--data", str(data), "--study", "s",
            "--storage", storage, "--limit", "40", "--no-report", *args]  # fmt: skip


@pytest.mark.slow
def test_a_search_into_pipes_writes_plain_lines_one_per_trial(tmp_path, tiny_synthetic):
    """Also the process recycling of a real command line: with --recycle-after 1 each trial
    runs in a fresh process, and the search still ends with one summary, one report and one
    budget account counted from the first start."""
    storage = f"sqlite:///{tmp_path / 'pipes.db'}"
    # Progress stays asked for (no --no-progress); bytes, since text mode would turn "\r"
    # into "\n".
    argv = _search_argv(tiny_synthetic, storage, "--trials", "2", "--max-epochs", "1")
    argv = [arg for arg in argv if arg != "--no-report"]
    done = subprocess.run(
        [*argv, "--recycle-after", "1", "--budget", "10m"],
        capture_output=True,
        cwd=tmp_path,
        timeout=300,
    )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, err[-3000:]
    assert b"\r" not in done.stdout + done.stderr
    assert "Traceback" not in err and "ExperimentalWarning" not in err  # Optuna's heartbeats
    trial_lines = [line for line in err.splitlines() if line.startswith("trial ")]
    study = optuna.load_study(study_name="s", storage=storage)
    trials = study.trials
    assert len(trials) == 2
    assert [int(line.split()[1]) for line in trial_lines] == [t.number for t in trials]

    assert err.count("going on in a fresh one (--recycle-after)") == 1, err
    assert [t.user_attrs["worker_generation"] for t in trials] == [0, 1]
    assert out.count("study 's' (") == 1, out  # the summary, once
    assert err.count("report: ") == 1 and (tmp_path / "studies" / "s" / "report.html").exists()
    # the budget counts from the first process's start: one account holding both trials
    (account,) = study.user_attrs["budget_runs"]
    assert account["complete_trials"] + account["pruned_trials"] == 2
    assert account["wall_seconds"] >= sum(
        (t.datetime_complete - t.datetime_start).total_seconds() for t in trials
    )


@pytest.mark.slow
def test_a_stopped_search_fails_its_trial_with_the_reason_and_no_backend_error(
    tmp_path, tiny_synthetic
):
    """SIGTERM mid-epoch (a scheduler's stop); Ctrl-C is test_run.py's interrupt-and-resume."""
    database = tmp_path / "stop.db"
    storage = f"sqlite:///{database}"
    # The seed baseline is never pruned: its 200 epochs outlast the wait below.
    argv = _search_argv(tiny_synthetic, storage, "--trials", "1", "--max-epochs", "200")
    search = subprocess.Popen(
        [*argv, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"},  # TensorFlow's warnings shown
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # until its first epoch is reported: mid-training
        time.sleep(0.5)
        if epochs_reported(database):
            break
    else:
        search.kill()
        _, err = search.communicate(timeout=60)
        pytest.fail(f"no epoch was reported within 180 s; the search said: {err[-3000:]}")
    search.send_signal(signal.SIGTERM)
    err = stderr_after_stop(search, within=120)
    assert search.returncode == 143, err[-3000:]  # 128 + SIGTERM; Ctrl-C's 130 in test_run
    assert "Traceback" not in err and "run the same command to resume" in err
    assert "GeneratorDataset" not in err and "Error occurred" not in err, err[-3000:]
    (trial,) = optuna.load_study(study_name="s", storage=storage).trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "interrupted by SIGTERM"


def epochs_reported(database) -> int:
    """Epochs the search has reported so far."""
    rows = query_study_file(database, "SELECT count(*) FROM trial_intermediate_values")
    return rows[0][0] if rows else 0
