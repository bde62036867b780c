"""How validation patches are chosen: a random split, whole groups (--groups), or another
data set (--val-data); real files, real caches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pcam.data import SAME_SLIDES, VAL_DATA, load_training_data
from pcam.errors import PcamError
from tests.helpers import write_folders, write_kaggle


def write_groups(data: Path, path: Path, *, groups: int = 12, drop: int = 0) -> pd.Series:
    """An id,group CSV for every labelled patch of ``data`` (the last ``drop`` left out):
    ``groups`` slides, patches dealt to them in id order."""
    labels = pd.read_csv(data / "train_labels.csv", dtype={"id": str}).sort_values("id")
    slides = pd.Series([f"slide{i % groups:02d}" for i in range(len(labels))], index=labels["id"])
    kept = slides.iloc[: len(slides) - drop]
    kept.rename("group").rename_axis("id").reset_index().to_csv(path, index=False)
    return slides


def test_a_random_split_shares_slides_and_says_so(tiny_synthetic):
    data = load_training_data(tiny_synthetic, progress=False)
    assert data.validation == SAME_SLIDES and data.validation_shares_slides
    assert "same slides" in data.validation_note


@pytest.mark.parametrize("limit", [None, 60])
def test_groups_keep_every_group_on_one_side(tiny_synthetic, tmp_path, limit):
    slides = write_groups(tiny_synthetic, tmp_path / "groups.csv")
    data = load_training_data(
        tiny_synthetic, groups=tmp_path / "groups.csv", limit=limit, progress=False
    )
    train_slides = set(slides.loc[data.train.ids])
    val_slides = set(slides.loc[data.val.ids])
    assert train_slides and val_slides and not train_slides & val_slides
    for part in (data.train, data.val):
        assert 2 <= part.y.sum() <= len(part) - 2  # both classes on both sides
    total = len(data.train) + len(data.val)
    assert total == (limit or 120) and 0.1 <= len(data.val) / total <= 0.3
    assert data.validation.startswith("groups:") and not data.validation_shares_slides
    assert f"{len(val_slides)} held out" in data.validation_note
    again = load_training_data(
        tiny_synthetic, groups=tmp_path / "groups.csv", limit=limit, progress=False
    )
    assert list(again.val.ids) == list(data.val.ids)  # the same split every time
    other_seed = load_training_data(
        tiny_synthetic, groups=tmp_path / "groups.csv", limit=limit, seed=5, progress=False
    )
    assert set(slides.loc[other_seed.val.ids]) != val_slides  # the seed draws the groups


def test_val_data_trains_on_all_of_data_and_validates_on_the_other_set(tmp_path):
    kaggle = write_kaggle(tmp_path / "kaggle", n_train=20)
    other = write_folders(tmp_path / "other", per_class=3)
    data = load_training_data(kaggle, val_data=other, progress=False)
    assert len(data.train) == 20 and len(data.val) == 6
    assert sorted(data.val.ids) == sorted(p.stem for p in other.glob("*/*.png"))
    assert data.validation == VAL_DATA and str(other) in data.validation_note
    plain = load_training_data(kaggle, progress=False)
    assert data.fingerprint.startswith(plain.fingerprint + "+")  # the other set is part of it


def _one_class_in_one_group(data: Path, path: Path) -> None:
    labels = pd.read_csv(data / "train_labels.csv", dtype={"id": str})
    groups = np.where(labels["label"] == 1, "tumour-slide", labels.index.astype(str))
    labels.assign(group=groups)[["id", "group"]].to_csv(path, index=False)


def _sized(path: Path, side: int) -> Path:
    from PIL import Image

    for label in (0, 1):
        (path / str(label)).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (side, side)).save(path / str(label) / f"q{label}{i}.png")
    return path


BAD_INPUTS = {
    "groups without every id": (
        lambda d, t: {"groups": write_groups(d, t / "g.csv", drop=3) is not None and t / "g.csv"},
        "3 of the 120 labelled patches have no group",
    ),
    "groups file missing": (lambda d, t: {"groups": t / "none.csv"}, "none.csv: file missing"),
    "groups without a group column": (
        lambda d, t: {"groups": d / "train_labels.csv"},
        "missing column(s) group",
    ),
    "a class in one group only": (
        lambda d, t: {"groups": _one_class_in_one_group(d, t / "g.csv") or t / "g.csv"},
        "every positive patch (class 1) is in group 'tumour-slide'",
    ),
    "groups and val-data together": (
        lambda d, t: {"groups": t / "g.csv", "val_data": t},
        "give one of them",
    ),
    "val-data of another patch size": (
        lambda d, t: {"val_data": _sized(t / "small", 64)},
        "image is 64×64 px, expected 96×96",
    ),
    "val-data without labels": (
        lambda d, t: {"val_data": d / "test"},
        "not a PCam data set",
    ),
    "val-data that is the training set": (
        lambda d, t: {"val_data": d},
        "also training patches",
    ),
    "val-data missing": (lambda d, t: {"val_data": t / "nowhere"}, "no such file or folder"),
    "val-data with one patch of a class": (
        lambda d, t: {"val_data": write_folders(t / "few", per_class=1)},
        "few leaves 1 patch of class 0 (negative) for validation",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_validation_input_is_one_clear_error(tiny_synthetic, tmp_path, case):
    make, expected = BAD_INPUTS[case]
    with pytest.raises(PcamError) as error:
        load_training_data(tiny_synthetic, progress=False, **make(tiny_synthetic, tmp_path))
    message = str(error.value)
    assert expected in message and "\n" not in message
    assert "--groups" in message or "--val-data" in message
