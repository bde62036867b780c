"""optuna-dashboard serves a study written by the real search, trials and curves included."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from search.dashboard import ARTIFACTS_DIR as ARTIFACTS
from tests.search.test_report import tiny_search_root, tiny_search_study

START_TIMEOUT = 60.0  # a busy 2-core machine starts it slowly


def dashboard_command() -> str:
    """The ``optuna-dashboard`` script of this Python's environment (a declared dependency)."""
    beside = Path(sys.executable).with_name("optuna-dashboard")
    found = str(beside) if beside.is_file() else shutil.which("optuna-dashboard")
    assert found, "optuna-dashboard is not installed (pip install -e .)"
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """(base URL, storage URL, study name) of a running dashboard, one for the module's tests
    (they only read); the server always stops."""
    storage, name = tiny_search_study(tmp_path_factory.getbasetemp())
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard") / "server.log"
    with open(log, "w") as out:
        artifacts = tiny_search_root(tmp_path_factory.getbasetemp()) / ARTIFACTS
        command = [dashboard_command(), storage, "--host", "127.0.0.1", "--port", str(port)]
        server = subprocess.Popen(
            [*command, "--artifact-dir", str(artifacts)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if server.poll() is not None:
                pytest.fail(f"optuna-dashboard exited ({server.returncode}): {log.read_text()}")
            try:
                get_json(f"{base}/api/studies")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"optuna-dashboard did not answer in {START_TIMEOUT:.0f} s")
                time.sleep(0.2)
        yield base, storage, name
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
def test_dashboard_serves_the_trials_of_a_real_search(dashboard):
    base, storage, name = dashboard
    study = optuna.load_study(study_name=name, storage=storage)
    summaries = get_json(f"{base}/api/studies")["study_summaries"]
    summary = next(s for s in summaries if s["study_name"] == name)
    served = get_json(f"{base}/api/studies/{summary['study_id']}")
    trials = {trial["number"]: trial for trial in served["trials"]}
    assert len(trials) == len(study.trials) == 3
    for stored in study.trials:
        trial = trials[stored.number]
        assert trial["state"].lower() == stored.state.name.lower()
        assert trial["values"] == [pytest.approx(stored.value)]
        params = {param["name"]: param["param_external_value"] for param in trial["params"]}
        assert params == {key: str(value) for key, value in stored.params.items()}
        served_curve = {point["step"]: point["value"] for point in trial["intermediate_values"]}
        assert served_curve == pytest.approx(stored.intermediate_values)
        attrs = {attr["key"]: attr["value"] for attr in trial["user_attrs"]}
        assert attrs["worker"] == stored.user_attrs["worker"]
    assert {"key": "role", "value": "seed_baseline"} in trials[0]["user_attrs"]


@pytest.mark.slow
def test_the_dashboard_names_the_metric_and_shows_the_study_note(dashboard):
    base, storage, name = dashboard
    study = optuna.load_study(study_name=name, storage=storage)
    best = study.best_trial
    summaries = get_json(f"{base}/api/studies")["study_summaries"]
    summary = next(s for s in summaries if s["study_name"] == name)
    served = get_json(f"{base}/api/studies/{summary['study_id']}")
    assert served["objective_names"] == ["val_auc"]  # the dashboard's name for metric names
    note = served["note"]["body"]
    assert note.startswith(f"## pcam-search study `{name}`")
    assert f"best: trial {best.number}, validation AUC **{best.value:.4f}**" in note
    assert "seed baseline: trial 0" in note and "- trials: " in note
    assert f"python -m search.submit --study {name}" in note


@pytest.mark.slow
def test_the_dashboard_serves_the_report_as_a_study_artifact(dashboard, tmp_path_factory):
    base, _, name = dashboard
    summaries = get_json(f"{base}/api/studies")["study_summaries"]
    study_id = next(s["study_id"] for s in summaries if s["study_name"] == name)
    served = get_json(f"{base}/api/studies/{study_id}")
    (artifact,) = [a for a in served["artifacts"] if a["filename"] == "report.html"]
    with urllib.request.urlopen(f"{base}/artifacts/{study_id}/{artifact['artifact_id']}") as got:
        page = got.read()
    report = tiny_search_root(tmp_path_factory.getbasetemp()) / "studies" / name / "report.html"
    assert page == report.read_bytes()
