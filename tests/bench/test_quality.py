"""bench/bench_quality.py's names: a search arm given more arguments never lands on the study
or the result of the arm with defaults (it deleted that study's database once)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_quality import result_path, search_name, search_study


def test_a_search_arm_with_more_arguments_has_its_own_study_and_result():
    defaults = search_name("2h", [])
    longer = search_name("2h", ["--max-epochs", "20"])
    assert longer == "2h-max-epochs-20"
    assert search_study("abc", longer) != search_study("abc", defaults)
    assert result_path("search", longer).name == "search-2h-max-epochs-20.json"
    assert result_path("search", defaults).name == "search-2h.json"
    reused = result_path("search", longer, submit_args=["--seed", "1"])
    assert reused.name == "search-2h-max-epochs-20-seed-1.json"
