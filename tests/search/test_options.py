"""One declaration per option: a setting added to ``OPTIONS`` reaches the parser, the config,
the worker command line and the resume check with no other edit."""

from __future__ import annotations

import dataclasses

import pytest

from pcam.data import load_training_data
from pcam.errors import ConfigError
from search.config import SearchConfig, config_class
from search.options import OPTIONS, Option
from search.run import build_parser, parse_args
from search.study import check_resume, open_study
from search.workers import worker_argv

FAKE = Option(
    "fake_knob",
    "int",
    3,
    "search",
    "a knob only this test has (default {default})",
    metavar="K",
    check=lambda value: value >= 1,
    problem="{flag} {value}: must be at least 1",
    resume=True,
)
WITH_FAKE = (*OPTIONS, FAKE)


def test_a_declared_option_reaches_help_config_workers_and_resume(tmp_path, tiny_synthetic):
    assert "--fake-knob K" in build_parser(WITH_FAKE).format_help()
    assert "a knob only this test has (default 3)" in build_parser(WITH_FAKE).format_help()
    storage = f"sqlite:///{tmp_path / 'fake.db'}"
    common = ["--data", str(tiny_synthetic), "--limit", "40", "--study", "fake"]
    config = parse_args([*common, "--storage", storage, "--fake-knob", "5"], WITH_FAKE)
    assert config.fake_knob == 5 and type(config) is config_class(WITH_FAKE)
    assert parse_args(common, WITH_FAKE).fake_knob == 3  # absent: the declared default
    argv = worker_argv(config, 2)
    assert argv[argv.index("--fake-knob") + 1] == "5"
    assert config.study_defining()["fake_knob"] == 5

    data = load_training_data(tiny_synthetic, limit=40, progress=False)
    study, existing = open_study(config, data)
    assert not existing
    check_resume(study, config, data)  # the same value resumes
    with pytest.raises(ConfigError, match=r"fake_knob \(5 then, 6 now\)"):
        check_resume(study, dataclasses.replace(config, fake_knob=6), data)
    with pytest.raises(ConfigError, match="--fake-knob 0: must be at least 1"):
        dataclasses.replace(config, fake_knob=0)


def test_the_shipped_config_is_made_from_the_declaration():
    assert [f.name for f in dataclasses.fields(SearchConfig)] == [
        *(option.name for option in OPTIONS),
        "unset",
        "_space_read",
    ]
    defaults = SearchConfig()
    assert all(getattr(defaults, option.name) == option.default for option in OPTIONS)
    assert {option.group for option in OPTIONS} <= {
        group.title for group in build_parser()._action_groups
    }


@pytest.mark.parametrize(
    ("argv", "epochs"),
    [
        ([], 4),  # the embedded synthetic set
        (["--budget", "30m"], 4),
        (["--data", "D"], 20),  # real data: the best designs gain on unseen slides up to 20
        (["--data", "D", "--budget", "2h"], 20),
        (["--data", "D", "--budget", "1h"], 20),
        (["--data", "D", "--budget", "59m"], 12),  # the priors at 20 would fill a short budget
        (["--data", "D", "--budget", "30m", "--max-epochs", "20"], 20),  # given: as given
    ],
)
def test_the_default_epoch_budget_follows_the_data_and_the_budget(argv, epochs):
    config = parse_args(argv)
    assert config.max_epochs == epochs
    # unset, a resumed study's own epoch budget stands instead (search.study)
    assert ("max_epochs" in config.unset) == ("--max-epochs" not in argv)


def test_workers_get_every_inherited_setting_back_as_it_was_parsed(tmp_path):
    argv = [
        "--data", str(tmp_path), "--limit", "40", "--budget", "90m", "--max-epochs", "4",
        "--groups", "slides.csv", "--no-priors", "--seed", "7", "--precision", "float32",
    ]  # fmt: skip
    parent = parse_args(argv)
    worker = parse_args(worker_argv(parent, 1)[3:])
    kept = {option.name for option in OPTIONS if option.inherit}
    per_process = {"workers", "worker_index", "progress", "report"}
    for name in kept - per_process:
        assert getattr(worker, name) == getattr(parent, name), name
    assert (worker.workers, worker.worker_index, worker.progress) == (1, 1, False)
    assert worker.max_epochs == 4  # not the --data default of 20: a given value always travels
    assert worker.priors  # the priors are enqueued once, by the parent
