"""The synthetic set: Kaggle layout, reproducible, and labelled by the PCam centre rule."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pcam.layouts import detect, open_split
from pcam.synth import CENTRE, HAZE, _tumour_cluster, generate, render_patch


def test_writes_the_kaggle_layout(tiny_synthetic):
    layout = detect(tiny_synthetic)
    assert layout.kind == "kaggle" and layout.split_names == ("train", "test")
    train = open_split(layout, "train")
    assert len(train) == 120 and 0.2 < train.labels.mean() < 0.6
    answers = pd.read_csv(tiny_synthetic / "test_labels.csv")
    submission = pd.read_csv(tiny_synthetic / "sample_submission.csv")
    assert list(answers.id) == list(submission.id) and (submission.label == 0).all()


def test_same_seed_same_bytes(tmp_path):
    first = generate(tmp_path / "a", n_train=6, n_test=2, seed=3, workers=1, progress=False)
    again = generate(tmp_path / "b", n_train=6, n_test=2, seed=3, workers=1, progress=False)
    assert (first / "train_labels.csv").read_text() == (again / "train_labels.csv").read_text()
    for path in (first / "train").iterdir():
        assert path.read_bytes() == (again / "train" / path.name).read_bytes()


@pytest.mark.parametrize("want_centre", [True, False])
def test_tumour_reaches_the_centre_iff_asked(want_centre):
    rng = np.random.default_rng(11)
    for _ in range(30):
        density, haze = _tumour_cluster(rng, want_centre=want_centre)
        assert bool((density[:, CENTRE, CENTRE] > 0.5).any()) == want_centre
        assert haze.max() <= HAZE < 0.5  # the haze is never counted as tumour


@pytest.mark.slow
def test_rendered_labels_follow_the_centre_rule_with_ring_distractors():
    rng = np.random.default_rng(5)
    negatives_with_ring_tumour = 0
    for label in [0] * 40 + [1] * 20:
        _, mask = render_patch(rng, label=label)
        assert bool(mask[CENTRE, CENTRE].any()) == bool(label)
        negatives_with_ring_tumour += int(label == 0 and mask.any())
    assert 10 <= negatives_with_ring_tumour <= 30  # about half the negatives


def test_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    done = subprocess.run(
        [sys.executable, "-m", "pcam.synth", "--out", str(tmp_path / "out"), "--train", "4"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "not empty" in done.stderr and "Traceback" not in done.stderr
