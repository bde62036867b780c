"""bench/bench_quality.py's names: a search arm given more arguments never lands on the study
or the result of the arm with defaults (it deleted that study's database once), and the arm
with defaults is named by the epoch budget the defaults give."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_quality import result_path, search_name, search_study


def test_a_search_arm_with_more_arguments_has_its_own_study_and_result():
    defaults = search_name("2h", [])
    shorter = search_name("2h", ["--max-epochs", "12"])
    assert defaults == search_name("2h", ["--max-epochs", "20"]) == "2h-max-epochs-20"
    assert shorter == "2h-max-epochs-12"
    assert search_study("abc", shorter) != search_study("abc", defaults)
    assert result_path("search", shorter).name == "search-2h-max-epochs-12.json"
    assert result_path("search", defaults).name == "search-2h-max-epochs-20.json"
    assert search_name("30m", []) == "30m-max-epochs-12"  # a short budget's default
    assert search_name("2h", ["--seed", "1"]) == "2h-max-epochs-20-seed-1"
    reused = result_path("search", defaults, submit_args=["--seed", "1"])
    assert reused.name == "search-2h-max-epochs-20-seed-1.json"
