"""The library logs, the commands print: imported, ``search.run``'s entry point writes nothing
itself, and its log records are every line the command shows."""

from __future__ import annotations

import logging
import re

import pytest

from pcam.errors import run_cli
from search import run
from search.runner import run_search


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _argv(tmp_path, data, study: str) -> list[str]:
    # --max-params 1: every trial is pruned untrained; the lines are what is tested
    return [
        "--data", str(data), "--limit", "40", "--study", study, "--storage",
        f"sqlite:///{tmp_path / study}.db", "--trials", "2", "--max-params", "1",
        "--no-progress", "--no-report",
    ]  # fmt: skip


def _same(line: str) -> str:
    """A line with what differs between two runs (the study's name, seconds) masked."""
    return re.sub(r"\d+\.\d s", "<seconds>", line.replace("library", "command"))


def test_the_library_logs_every_line_the_command_prints(tmp_path, tiny_synthetic, capsys, caplog):
    with pytest.raises(SystemExit) as status:
        run_cli(lambda: run.main(_argv(tmp_path, tiny_synthetic, "command")))
    command = capsys.readouterr()
    assert status.value.code == 0, command.err[-3000:]
    shown = [line for line in command.err.splitlines() if line]
    assert any(line.startswith("trial    0 PRUNED") for line in shown), command.err
    assert "best" in command.out or "trial" in command.out  # the summary: stdout's alone

    caplog.clear()
    caplog.set_level(logging.INFO)
    run_search(run.parse_args(_argv(tmp_path, tiny_synthetic, "library")))
    library = capsys.readouterr()
    assert (library.out, library.err) == ("", "")  # nothing written by the library itself
    logged = [r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("pcam", "search")]
    assert [_same(line) for line in logged] == [_same(line) for line in shown]


def test_quiet_keeps_warnings_and_the_summary(tmp_path, tiny_synthetic, capsys):
    with pytest.raises(SystemExit) as status:
        run_cli(lambda: run.main([*_argv(tmp_path, tiny_synthetic, "quiet"), "--quiet"]))
    printed = capsys.readouterr()
    assert status.value.code == 0, printed.err[-3000:]
    assert "trial    0" not in printed.err and "data:" not in printed.err
    assert printed.out.strip()  # the summary
    assert logging.getLogger("search").level == logging.NOTSET  # put back after the command
