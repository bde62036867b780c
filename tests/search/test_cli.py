"""Every command answers --help and --version at once, and refuses a bad input before its
backend loads (seconds, not the import of TensorFlow)."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import subprocess
import sys

import optuna
import pytest

from pcam.cli import COMMANDS

BACKENDS = ("keras", "tensorflow", "jax", "torch")
START_UP_CHATTER = ("absl", "cpu_feature_guard", "onednn", "tensorflow binary")
# Runs a command as ``python -m`` does, then says which backend modules it had loaded.
RUN_AND_LIST_BACKENDS = f"""
import runpy, sys
module = sys.argv.pop(1)
status = 0
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit as stop:
    status = stop.code
print("backends loaded:", sorted(name for name in {BACKENDS!r} if name in sys.modules))
sys.exit(status)
"""


def run_command(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_BACKENDS, module, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("module", COMMANDS)
def test_help_answers_without_loading_a_backend(module):
    done = run_command(module, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m {module}")
    assert "next:" in done.stdout
    chatter = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if any(word in line.lower() for word in START_UP_CHATTER)
    ]
    assert chatter == []
    assert done.stdout.rstrip().endswith("backends loaded: []")


@pytest.mark.parametrize(
    ("module", "args", "said"),
    [
        ("search.run", ["--data", "{missing}"], "{missing}: no such file or folder"),
        ("search.submit", ["--study", "nope", "--storage", "{storage}"], "no study 'nope'"),
        ("search.submit", ["--draws", "0"], "--draws 0: must be at least 1"),
    ],
    ids=["run-missing-data", "submit-unknown-study", "submit-no-draws"],
)
def test_a_bad_input_is_refused_before_a_backend_loads(tmp_path, module, args, said):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="there", storage=storage)
    fill = {"missing": str(tmp_path / "missing"), "storage": storage}
    done = run_command(module, *(arg.format(**fill) for arg in args))
    assert done.returncode == 2, done.stderr
    assert f"error: {said.format(**fill)}" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout.rstrip().endswith("backends loaded: []")


@pytest.mark.parametrize("module", COMMANDS)
def test_version_names_the_installed_package(module):
    done = run_command(module, "--version")
    assert done.returncode == 0, done.stderr
    assert f"python -m {module} {importlib.metadata.version('pcam-search')}" in done.stdout


@pytest.mark.parametrize("module", COMMANDS)
def test_every_option_says_what_it_takes_and_what_it_does(module):
    parser = importlib.import_module(module).build_parser()
    for action in parser._actions:
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{module} {name}: no help"
        takes_a_value = action.nargs != 0
        if takes_a_value and action.choices is None:
            assert action.metavar, f"{module} {name}: no metavar"
        if takes_a_value and action.option_strings and not action.required:
            assert "default" in action.help, f"{module} {name}: its default goes unsaid"


def test_search_run_groups_its_options_and_documents_the_worker_index():
    from search.run import build_parser

    parser = build_parser()
    groups = {group.title: group for group in parser._action_groups}
    expected = ["data", "search", "budget & pruning", "runtime", "workers", "output"]
    assert [title for title in groups if title in expected] == expected
    worker_options = [a.dest for a in groups["workers"]._group_actions]
    assert "worker_index" in worker_options
    assert "studies/<study>.db" in parser.epilog and "search.submit" in parser.epilog


@pytest.mark.slow  # imports every public name in a fresh process
def test_the_packages_name_their_public_surface_and_load_no_backend_for_it():
    """``import pcam`` and ``import search`` load no backend; every name in ``__all__``
    resolves (the ones that train load Keras then, as a user would expect)."""
    probe = (
        "import sys, pcam, search\n"
        f"print(sorted(name for name in {BACKENDS!r} if name in sys.modules))\n"
        "print(all(getattr(p, n) is not None for p in (pcam, search) for n in p.__all__))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.splitlines() == ["[]", "True"], done.stderr[-2000:]
    import pcam
    import search

    assert {"ModelParams", "load_training_data", "train"} <= set(pcam.__all__)
    assert {"SearchConfig", "run_search", "submit", "SPACE"} <= set(search.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = pcam.nothing
