"""bench/bench_quality.py's names: a search arm given more arguments never lands on the study
or the result of the arm with defaults (it deleted that study's database once), and the arm
with defaults is named by the epoch budget the defaults give. Several training seeds of one
design, averaged, are scored as one more arm."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_quality import (
    averaged_seeds,
    result_path,
    search_name,
    search_study,
    train_seeds,
)
from bench_quality import test_scores as scores_of  # not a test: pytest would collect it


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


def _seed_result(seed: int, labels: np.ndarray, noise: np.ndarray, *, keep: bool = True) -> dict:
    """What ``train_once`` saves of one training seed, its probabilities ``labels`` + noise."""
    probabilities = np.clip(0.5 * labels + 0.25 + noise, 0, 1)
    scores = scores_of(labels, probabilities, keep=keep)
    unseen = {"path": "u", "tta": "d8", "patches": len(labels), "positives": int(labels.sum()),
              "ids_sha256": "h", **scores_of(labels, probabilities, keep=True)}  # fmt: skip
    return {"arm": "recipe", "changes": {}, "train_seed": seed, "params": {}, "weights": 1,
            "best_epoch": 10 + seed, "test": scores, "test_tta_d8": scores, "unseen": unseen,
            "wall_seconds": 60.0, "busy_elsewhere_cores": 0.1}  # fmt: skip


def test_averaged_seeds_score_the_mean_probability_of_every_patch():
    """Two seeds whose errors differ: their average is scored (and ranks better than either),
    named by its seeds, its time the sum; the locked test only where every seed kept it."""
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 2
    one, two = (rng.normal(0, 0.3, 400) for _ in range(2))
    results = [_seed_result(0, labels, one), _seed_result(1, labels, two)]
    mean = averaged_seeds(results)
    expected = np.mean([r["unseen"]["probabilities"] for r in results], axis=0)
    assert mean["unseen"]["auc"] == pytest.approx(scores_of(labels, expected)["auc"])
    assert mean["unseen"]["auc"] > max(r["unseen"]["auc"] for r in results)
    assert mean["test"]["auc"] == pytest.approx(mean["unseen"]["auc"])
    assert mean["train_seed"] == [0, 1] and mean["best_epoch"] == [10, 11]
    assert mean["wall_seconds"] == 120.0 and mean["val_auc"] is None
    moved = _seed_result(2, labels, two)
    moved["unseen"]["ids_sha256"] = "another folder"
    with pytest.raises(SystemExit, match="not of the same patches"):
        averaged_seeds([results[0], moved])
    older = [_seed_result(0, labels, one, keep=False), results[1]]
    assert averaged_seeds(older)["test"] is None
    assert averaged_seeds(older)["unseen"]["auc"] == pytest.approx(mean["unseen"]["auc"])


def test_several_training_seeds_are_one_result_of_their_own():
    assert train_seeds("1") == 1 and train_seeds("0,1,2") == [0, 1, 2]
    with pytest.raises(argparse.ArgumentTypeError, match="repeats"):
        train_seeds("1,1")
    with pytest.raises(argparse.ArgumentTypeError, match="commas"):
        train_seeds("0;1")
    assert result_path("recipe", None, train_seed=[0, 1, 2]).name == (
        "recipe-train_seeds-0+1+2.json"
    )
    assert result_path("recipe", None, train_seed=2).name == "recipe-train_seed-2.json"
