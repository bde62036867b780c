"""Whole searches: real Keras training of tiny models into a real SQLite study."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import sqlalchemy
import sqlalchemy.event
from optuna.trial import TrialState

from pcam.errors import ConfigError, run_cli
from search import run, runner
from search.config import SearchConfig
from search.runner import run_search
from search.space import seed_baseline_values
from search.summary import summary
from tests.helpers import (
    checkout_commit,
    children_take_sigint,
    query_study_file,
    stderr_after_stop,
    write_folders,
    write_hdf5,
    write_kaggle,
)

QUICK = ["--max-epochs", "2", "--limit", "40", "--no-progress"]


def _config(tmp_path, data, **overrides) -> SearchConfig:
    values = dict(
        study="tiny",
        storage=f"sqlite:///{tmp_path / 'tiny.db'}",
        data=str(data),
        trials=3,
        max_epochs=2,
        limit=40,
        progress=False,
    )
    return SearchConfig(**(values | overrides))


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Reports go to studies/<study>/ under the working folder: keep them out of the repo."""
    monkeypatch.chdir(tmp_path)


def _search_cli(args: list[str], **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "search.run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=popen.pop("env", os.environ.copy()),
        **popen,
    )


@pytest.mark.slow
def test_study_starts_with_the_seed_baseline_and_stores_epochs(tmp_path, tiny_synthetic):
    # the report has tests of its own
    config = _config(tmp_path, tiny_synthetic, trials=1, report=False)
    outcome = run_search(config)
    trials = outcome.study.trials
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 1
    first = trials[0]
    assert first.user_attrs["role"] == "seed_baseline"
    assert first.params == seed_baseline_values()
    assert sorted(first.intermediate_values) == [0, 1]
    attrs = outcome.study.user_attrs
    assert attrs["split_seed"] == 0 and attrs["data_fingerprint"]
    assert "optuna" in attrs["package_versions"]
    assert attrs["git_commit"] == checkout_commit()
    text = summary(outcome, config)
    assert "seed baseline (trial 0)" in text and "optuna-dashboard sqlite:///" in text
    assert "validation: a random 20% of the labelled patches, from the same slides" in text
    assert "note: validation patches come from the same slides" in text and "--groups" in text

    # the same name resumes the same study and adds trials
    again = run_search(_config(tmp_path, tiny_synthetic, trials=2, report=False))
    assert again.resumed and again.study.user_attrs == attrs
    assert len([t for t in again.study.trials if t.state != TrialState.FAIL]) == 2
    assert again.study.trials[0].number == 0  # no second baseline was enqueued
    assert sum(t.user_attrs.get("role") == "seed_baseline" for t in again.study.trials) == 1

    # Optuna's own command line reads the study
    done = subprocess.run(
        ["optuna", "trials", "--study-name", "tiny", "--storage", config.storage_url, "-f", "json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == len(again.study.trials)


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(tmp_path, tiny_synthetic, capsys):
    # --max-params 1: the one trial is pruned untrained; the refusal is what is tested
    run_search(_config(tmp_path, tiny_synthetic, trials=1, max_params=1, report=False))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_status:  # the command as run_cli runs it
        run_cli(
            lambda: run.main(
                ["--data", str(tiny_synthetic), "--study", "tiny", "--storage",
                 f"sqlite:///{tmp_path / 'tiny.db'}", "--trials", "2", "--max-epochs", "3",
                 "--limit", "40", "--max-params", "1", "--no-progress"]
            )
        )  # fmt: skip
    err = capsys.readouterr().err
    assert exit_status.value.code == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "max_epochs (2 then, 3 now)" in errors[0], err[-3000:]


@pytest.mark.slow
def test_a_resume_without_a_study_defining_flag_goes_on_with_the_study_s_value(
    tmp_path, tiny_synthetic, capsys
):
    """A study made with --max-epochs 2, --limit 40 and --seed 5, resumed without those flags
    and with a budget whose default epoch budget is another (12): it goes on with the study's
    values where the defaults would be refused, and says so in one line."""
    common = ["--data", str(tiny_synthetic), "--study", "tiny", "--storage",
              f"sqlite:///{tmp_path / 'tiny.db'}", "--max-params", "1", "--no-progress",
              "--no-report"]  # fmt: skip
    made_with = ["--max-epochs", "2", "--limit", "40", "--seed", "5"]
    assert run.main([*common, "--trials", "1", *made_with]) == 0
    capsys.readouterr()
    assert run.main([*common, "--trials", "2", "--budget", "30m"]) == 0
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "with the settings it was made with" in line]
    assert len(said) == 1, err[-3000:]
    assert all(flag in said[0] for flag in ("--max-epochs 2", "--limit 40", "--seed 5"))
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny.db'}")
    assert len(study.trials) == 2


@pytest.mark.slow
def test_a_space_file_shapes_the_search_and_a_resume_must_keep_it(tmp_path, tiny_synthetic, capsys):
    narrow = tmp_path / "narrow.toml"
    narrow.write_text(
        'crop = 64\nlearning_rate = { low = 3e-4, high = 1e-3 }\nhead = "global_avg"\n'
    )
    outcome = run_search(
        _config(tmp_path, tiny_synthetic, trials=3, space=str(narrow), report=False)
    )
    trials = outcome.study.trials
    # no seed baseline (it crops 96); of the priors only the hand recipe fits (lr 1e-3, crop 64)
    assert [t.user_attrs.get("role") for t in trials] == ["prior", None, None]
    assert trials[0].user_attrs["prior"] == "hand_recipe"
    for trial in trials:
        assert trial.params["crop"] == 64 and trial.params["head"] == "global_avg"
        assert 3e-4 <= trial.params["learning_rate"] <= 1e-3
    assert trials[2].distributions["crop"] == optuna.distributions.CategoricalDistribution([64])
    recorded = outcome.study.user_attrs["study_defining"]["search_space"]
    assert recorded["crop"] == {"choices": [64]}

    # the same space from another file resumes; another space is refused, in one line
    same = tmp_path / "same.toml"
    same.write_text(narrow.read_text())
    assert run_search(
        _config(tmp_path, tiny_synthetic, trials=3, space=str(same), report=False)
    ).resumed
    other = tmp_path / "other.toml"
    other.write_text(
        'crop = 96\nlearning_rate = { low = 3e-4, high = 1e-3 }\nhead = "global_avg"\n'
    )
    storage = f"sqlite:///{tmp_path / 'tiny.db'}"
    refusals = {
        "crop [64] then, [96] now": ["--space", str(other)],
        'head ["global_avg"] then, ["flatten", "global_avg"] now': [],  # the whole space
    }
    for expected, space in refusals.items():
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_status:  # the command as run_cli runs it
            run_cli(
                lambda space=space: run.main(
                    ["--data", str(tiny_synthetic), "--study", "tiny", "--storage", storage,
                     "--trials", "4", "--max-epochs", "2", "--limit", "40", "--no-progress",
                     *space]
                )
            )  # fmt: skip
        err = capsys.readouterr().err
        assert exit_status.value.code == 2, err[-3000:]
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "different settings: search space, --space (" in errors[0]
        assert expected in errors[0], errors
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 3


@pytest.mark.slow
def test_sigint_leaves_no_running_trial_and_the_next_run_resumes_it(tmp_path, tiny_synthetic):
    database = tmp_path / "int.db"
    storage = f"sqlite:///{database}"
    args = ["--data", str(tiny_synthetic), "--study", "int", "--storage", storage, *QUICK]
    with children_take_sigint():  # TensorFlow's warnings shown: no backend error may follow
        search = _search_cli(
            [*args, "--trials", "50"], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
        )
    deadline = time.time() + 180
    states: list[str] = []
    while time.time() < deadline:  # until a trial has completed and the next one is training
        time.sleep(1)
        states = trial_states(database)
        if "RUNNING" in states and "COMPLETE" in states[: states.index("RUNNING")]:
            break
    else:
        search.kill()
        _, err = search.communicate(timeout=60)
        pytest.fail(
            f"no complete trial followed by a running one within 180 s (trials: {states}); "
            f"the search said: {err[-2000:]}"
        )
    search.send_signal(signal.SIGINT)
    err = stderr_after_stop(search, within=60)
    assert search.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "run the same command to resume" in err
    assert "GeneratorDataset" not in err and "Error occurred" not in err, err[-2000:]
    trials = optuna.load_study(study_name="int", storage=storage).trials
    assert TrialState.RUNNING not in {t.state for t in trials}
    # the trial Ctrl-C stopped says so (test_run_output.py: the same for SIGTERM, mid-epoch)
    (stopped,) = [t for t in trials if t.state == TrialState.FAIL]
    assert stopped.user_attrs["fail_reason"] == "interrupted by SIGINT"
    # the interrupted search still writes its report (README: "also on Ctrl-C")
    assert (tmp_path / "studies" / "int" / "report.html").is_file(), err[-2000:]
    assert f"report: {Path('studies', 'int', 'report.html')}" in err
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    waiting = [t for t in trials if t.state == TrialState.WAITING]  # later priors run first

    resumed = _search_cli([*args, "--trials", str(len(finished) + len(waiting) + 1)])
    _, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err[-2000:]
    assert "resuming study 'int'" in err
    after = optuna.load_study(study_name="int", storage=storage).trials
    assert [t.number for t in after[: len(trials)]] == [t.number for t in trials]
    assert {after[t.number].state for t in waiting} <= {TrialState.COMPLETE, TrialState.PRUNED}
    (new,) = [
        t for t in after[len(trials) :] if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
    ]
    if "fixed_params" in stopped.system_attrs:  # a prior (trials 1-3), as a timely poll finds
        # run again, after the priors still waiting: not lost (test_budget: both cases, no timing)
        assert f"trial {stopped.number} ({stopped.user_attrs['prior']}), interrupted" in err
        assert new.user_attrs["queued_again_from"] == stopped.number
        assert new.params == stopped.params
    else:  # a sampler's draw, where a loaded machine slowed the poll: drawn anew instead
        assert "queued_again_from" not in new.user_attrs


def trial_states(database: Path) -> list[str]:
    """The study's trial states in trial order."""
    rows = query_study_file(database, "SELECT state FROM trials ORDER BY number")
    return [state for (state,) in rows]


MEMORY_SCRIPT = """
import os, sys
import optuna
from pcam.data import load_training_data
from search.objective import Objective
from search.space import seed_baseline_values

def rss_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

import keras
assert keras.backend.backend() == os.environ["KERAS_BACKEND"], keras.backend.backend()
optuna.logging.set_verbosity(optuna.logging.ERROR)
data = load_training_data(sys.argv[1], limit=40, progress=False)
study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
# Every augmentation on: this is also the test that the feed trains on this backend.
values = seed_baseline_values() | {"crop": 32, "base_filters": 16, "d8": True, "hed_jitter": 0.05}
for _ in range(10):
    study.enqueue_trial(values)
rss = []
study.optimize(Objective(data, max_epochs=1, max_params=10**8, seed=0), n_trials=10,
               callbacks=[lambda study, trial: rss.append(rss_mib())])
assert all(t.state.name == "COMPLETE" for t in study.trials)
print(" ".join(f"{r:.1f}" for r in rss))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("backend", "allowed_mib"),
    [
        # The harness itself keeps nothing between trials: flat on the torch backend.
        # TensorFlow's runtime keeps some memory per model built and fitted whatever is freed
        # (a plain model.fit loop the same); there --recycle-after keeps a search flat
        # (test_recycle.py, bench/bench_memory.py).
        ("torch", 40),
    ],
)
@pytest.mark.slow
def test_memory_does_not_grow_from_trial_to_trial(tiny_synthetic, backend, allowed_mib):
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tiny_synthetic)],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rss = [float(v) for v in done.stdout.split()]
    growth = rss[-1] - rss[3]  # after warm-up: allocator pools and caches are filled
    assert growth < allowed_mib, f"RSS grew {growth:.0f} MiB over 6 trials: {rss}"


@pytest.mark.slow
def test_a_small_study_completes_under_the_torch_backend(tmp_path, tiny_synthetic):
    storage = f"sqlite:///{tmp_path / 'torch.db'}"
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    search = _search_cli(
        [
            "--data",
            str(tiny_synthetic),
            "--study",
            "t",
            "--storage",
            storage,
            "--trials",
            "2",
            "--max-epochs",
            "1",
            "--limit",
            "40",
            "--no-progress",
        ],
        env=env,
    )
    out, err = search.communicate(timeout=300)
    assert search.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name="t", storage=storage)
    assert study.user_attrs["package_versions"]["keras_backend"] == "torch"
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) >= 1
    assert "best: trial" in out


def test_timeout_stops_starting_trials(tmp_path, tiny_synthetic, monkeypatch):
    """--timeout S: no trial starts more than S seconds after the command started, and the
    search ends there, short of --trials. Every model is over --max-params: no training."""
    timeout = 4.0
    config = _config(
        tmp_path, tiny_synthetic, trials=10**6, timeout=timeout, max_params=1, report=False
    )
    wait_for_slot = runner._wait_for_slot

    def guarded(study, config, deadline):  # a search that ignores --timeout fails, not hangs
        if time.monotonic() > started + timeout + 60:
            pytest.fail(f"still starting trials 60 s past --timeout {timeout:g}")
        return wait_for_slot(study, config, deadline)

    monkeypatch.setattr(runner, "_wait_for_slot", guarded)
    started = time.monotonic()
    outcome = run_search(config)
    wall = time.monotonic() - started
    # enqueued priors that never started stay WAITING for the next run
    trials = [t for t in outcome.study.trials if t.state != TrialState.WAITING]
    assert len(trials) >= 2 and {t.state for t in trials} == {TrialState.PRUNED}
    last_start = max(t.datetime_start for t in trials)
    assert last_start - outcome.since < timedelta(seconds=timeout + 1), trials[-1]
    assert wall < timeout + 15  # the last trial (pruned at once), then the study note


@contextlib.contextmanager
def refused_trial_starts(count: int) -> Iterator[list[str]]:
    """The database answers the first ``count`` writes that start an enqueued trial (WAITING
    to RUNNING) with SQLite's "database is locked", as a busy shared file does."""
    refused: list[str] = []

    def refuse(connection, cursor, statement, parameters, context, executemany):
        starts = statement.startswith("UPDATE trials SET state") and "RUNNING" in parameters
        if starts and not executemany and len(refused) < count:
            refused.append(statement)
            raise sqlite3.OperationalError("database is locked")
        return statement, parameters

    options = {"retval": True}
    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", refuse, **options)
    try:
        yield refused
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", refuse)


def test_a_trial_recorded_by_another_worker_meanwhile_is_dropped_and_the_search_goes_on(
    tmp_path, tiny_synthetic, monkeypatch, capsys, command_lines
):
    """Two workers on SQLite can both start the same queued trial (Optuna's row lock is a
    no-op there); the one that finishes second may not record it. It says so in one line and
    goes on, and the study still ends with --trials finished trials."""
    from search.objective import Objective

    config = _config(tmp_path, tiny_synthetic, trials=3, max_params=1, report=False)
    original = Objective._run

    def raced(self, trial):
        if trial.number == 0:  # the other worker records it first
            other = optuna.load_study(study_name=config.study, storage=config.storage_url)
            other.tell(trial.number, 0.5)
            return 0.75
        return original(self, trial)

    monkeypatch.setattr(Objective, "_run", raced)
    outcome = run_search(config)
    err = capsys.readouterr().err
    assert "trial 0 was recorded by another worker that ran it too" in err, err[-3000:]
    trials = outcome.study.trials
    assert trials[0].state == TrialState.COMPLETE and trials[0].value == 0.5  # the first tell
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 3
    assert "Traceback" not in err


def test_storage_errors_are_retried_five_times_5_s_apart(
    tmp_path, tiny_synthetic, monkeypatch, capsys, command_lines
):
    """README: a worker rides out transient storage errors, logs each and retries up to 5
    times, 5 s apart; a sixth ends the search. The waits are recorded, not slept."""
    slept: list[float] = []
    monkeypatch.setattr(
        runner,
        "time",
        SimpleNamespace(monotonic=time.monotonic, time=time.time, sleep=slept.append),
    )
    config = _config(tmp_path, tiny_synthetic, trials=3, max_params=1, report=False)
    with refused_trial_starts(5) as refused:
        outcome = run_search(config)
    assert len(refused) == 5 and slept == [5.0] * 5
    trials = outcome.study.trials
    assert [t.state for t in trials] == [TrialState.PRUNED] * 3  # over --max-params: no training
    assert trials[0].user_attrs["role"] == "seed_baseline"  # its start was refused, then taken
    err = capsys.readouterr().err
    for retry in range(1, 6):
        assert (
            "worker 0: storage error (OperationalError: (sqlite3.OperationalError) database is "
            f"locked); retry {retry} of 5 in 5 s"
        ) in err

    slept.clear()
    again = replace(config, study="again", storage=f"sqlite:///{tmp_path / 'again.db'}")
    with refused_trial_starts(6), pytest.raises(optuna.exceptions.StorageInternalError):
        run_search(again)
    assert slept == [5.0] * 5
    assert "retry 5 of 5" in capsys.readouterr().err
    assert not optuna.load_study(study_name="again", storage=again.storage).get_trials(
        states=(TrialState.RUNNING, TrialState.PRUNED, TrialState.COMPLETE)
    )


@pytest.mark.slow
def test_the_same_seed_repeats_a_one_worker_search(tmp_path, tiny_synthetic):
    """One worker: --seed fixes every trial's params and training seed; another seed differs."""

    def trials(name: str, seed: int) -> list[optuna.trial.FrozenTrial]:
        config = _config(
            tmp_path,
            tiny_synthetic,
            study=name,
            storage=f"sqlite:///{tmp_path / name}.db",
            trials=6,
            seed=seed,
            max_params=30_000,  # most sampled models are pruned for size: no training needed
            report=False,
        )
        return run_search(config).study.trials

    first, again, other = trials("a", 0), trials("b", 0), trials("c", 1)
    assert [t.params for t in first] == [t.params for t in again]
    assert [t.user_attrs.get("training_seed") for t in first] == [
        t.user_attrs.get("training_seed") for t in again
    ]
    assert [t.params for t in first[1:]] != [t.params for t in other[1:]]


WRITERS = {
    "kaggle": lambda root: write_kaggle(root, n_train=40),
    "hdf5": lambda root: write_hdf5(root, sizes={"train": 8, "valid": 6}),
    "folders": lambda root: write_folders(root, per_class=10),
}


@pytest.mark.parametrize(
    ("layout", "args", "expected"),
    [
        ("kaggle", ["--limit", "0"], "--limit 0: must be at least 1"),
        ("kaggle", ["--limit", "5"], "--limit 5 leaves 0 patches of class 1 (positive) for valid"),
        ("kaggle", ["--val-fraction", "0.01"], "--val-fraction 0.01 leaves 1 patch of class"),
        ("hdf5", ["--limit", "0"], "--limit 0: must be at least 1"),
        ("hdf5", ["--limit", "5"], "--limit 5 leaves 0 patches of class 1 (positive) for valid"),
        ("folders", ["--limit", "5"], "--limit 5 leaves 0 patches of class 1 (positive) for valid"),
    ],
)
def test_a_split_that_cannot_be_scored_is_refused_in_one_line(
    tmp_path, monkeypatch, capsys, layout, args, expected
):
    """Before any trial: exit 2, one line naming the value and the fix (the command as
    ``run_cli`` runs it, in this process: a PcamError, never a traceback)."""
    root = WRITERS[layout](tmp_path / layout)
    monkeypatch.chdir(tmp_path)
    argv = ["--data", str(root), *args, "--trials", "1", "--max-epochs", "1", "--no-progress"]
    with pytest.raises(SystemExit) as exit_status:
        run_cli(lambda: run.main(argv))
    err = capsys.readouterr().err
    assert exit_status.value.code == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], err[-3000:]
    assert "--limit" in errors[0] or "--val-fraction" in errors[0]
    assert not (tmp_path / "studies").exists() or not any((tmp_path / "studies").iterdir())


def _groups_csv(data: Path, path: Path, *, groups: int = 12) -> Path:
    """Every labelled patch of ``data`` dealt, in id order, to ``groups`` slides."""
    labels = sorted(
        line.split(",")[0] for line in (data / "train_labels.csv").read_text().splitlines()[1:]
    )
    rows = [f"{patch_id},slide{i % groups}" for i, patch_id in enumerate(labels)]
    path.write_text("id,group\n" + "\n".join(rows) + "\n")
    return path


def test_validation_is_recorded_and_a_resume_with_other_validation_is_refused(
    tmp_path, tiny_synthetic
):
    from search.study import open_study, validation_caveat
    from search.submission import load_study_data

    groups = _groups_csv(tiny_synthetic, tmp_path / "slides.csv")
    config = _config(tmp_path, tiny_synthetic, groups=str(groups))
    data = runner.load_data(config)
    study, existing = open_study(config, data)
    attrs = study.user_attrs
    assert not existing and attrs["validation"] == data.validation
    assert attrs["validation"].startswith("groups:") and "--groups" in attrs["validation_note"]
    assert attrs["config"]["groups"] == str(groups) and validation_caveat(attrs) is None
    # search.submit splits the study's data as the search did
    assert list(load_study_data(study, progress=False).val.ids) == list(data.val.ids)
    assert open_study(config, data)[1]  # the same settings resume

    other_groups = _groups_csv(tiny_synthetic, tmp_path / "patients.csv", groups=5)
    folders = write_folders(tmp_path / "other", per_class=3)
    for changed in (
        {"groups": None},  # a random split of the same patches
        {"groups": str(other_groups)},
        {"groups": None, "val_data": str(folders)},
    ):
        other = _config(tmp_path, tiny_synthetic, **changed)
        with pytest.raises(
            ConfigError, match=r"validation: whole groups of --groups .*slides\.csv"
        ):
            open_study(other, runner.load_data(other))

    plain = _config(tmp_path, tiny_synthetic, study="plain")
    study, _ = open_study(plain, runner.load_data(plain))
    assert "same slides" in validation_caveat(study.user_attrs)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--groups", "missing.csv"], "missing.csv: file missing"),
        (["--groups", "{data}/train_labels.csv"], "missing column(s) group"),
        (["--val-data", "{data}"], "also training patches"),
        (["--groups", "x.csv", "--val-data", "y"], "give one of them"),
    ],
)
def test_bad_validation_input_is_refused_in_one_line(
    tmp_path, tiny_synthetic, capsys, args, expected
):
    """Exit 2, one line naming the file and the fix, no study written."""
    argv = ["--data", str(tiny_synthetic), *(a.format(data=tiny_synthetic) for a in args)]
    with pytest.raises(SystemExit) as exit_status:
        run_cli(lambda: run.main([*argv, "--trials", "1", "--no-progress"]))
    err = capsys.readouterr().err
    assert exit_status.value.code == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], err[-3000:]
    assert "Traceback" not in err
    assert not (tmp_path / "studies").exists() or not any((tmp_path / "studies").rglob("*.db"))
