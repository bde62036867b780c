"""Partitions are seeded, stratified, saved with the cache, and subsample with balance kept."""

from __future__ import annotations

import numpy as np
import pytest

from pcam.data import load_training_data
from pcam.errors import ConfigError, DataError
from pcam.split import MIN_PER_CLASS, balanced_subsample, partition, stratified_split
from tests.helpers import write_folders, write_hdf5


def test_split_is_deterministic_and_disjoint():
    labels = np.array([0] * 700 + [1] * 300)
    first = stratified_split(labels, val_fraction=0.2, seed=3)
    again = stratified_split(labels, val_fraction=0.2, seed=3)
    other = stratified_split(labels, val_fraction=0.2, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], other[1])
    train, val = first
    assert not set(train) & set(val) and len(train) + len(val) == 1000


def test_split_is_stratified():
    labels = np.array([0] * 700 + [1] * 300)
    train, val = stratified_split(labels, val_fraction=0.2, seed=0)
    assert (len(val), labels[val].sum()) == (200, 60)
    assert labels[train].mean() == 0.3


def test_subsample_keeps_class_balance():
    labels = np.array([0] * 600 + [1] * 400)
    kept = balanced_subsample(np.arange(1000), labels, limit=100, seed=1)
    assert len(kept) == 100 and labels[kept].sum() == 40


def test_partition_is_saved_and_reused(tmp_path):
    labels = np.array([0, 1] * 50)
    ids = np.array([f"p{i}" for i in range(100)])
    saved = partition(labels, seed=5, val_fraction=0.25, saved_in=tmp_path, ids=ids)
    assert len(list(tmp_path.glob("split-seed5-*.npz"))) == 1
    reused = partition(labels, seed=5, val_fraction=0.25, saved_in=tmp_path, ids=ids)
    assert np.array_equal(saved.val, reused.val) and np.array_equal(saved.train, reused.train)


def test_training_data_on_the_synthetic_set_with_limit(tiny_synthetic):
    data = load_training_data(tiny_synthetic, seed=0, val_fraction=0.25, limit=40, progress=False)
    assert (len(data.train), len(data.val)) == (30, 10)
    assert not set(data.train.ids) & set(data.val.ids)
    again = load_training_data(tiny_synthetic, seed=0, val_fraction=0.25, limit=40, progress=False)
    assert list(again.val.ids) == list(data.val.ids)


def test_hdf5_uses_its_own_validation_split(tmp_path):
    root = write_hdf5(tmp_path / "h", sizes={"train": 8, "valid": 6})
    data = load_training_data(root, progress=False)
    assert (len(data.train), len(data.val)) == (8, 6)
    assert data.val.ids[0] == "valid_0"


def _per_class(labels: np.ndarray, rows: np.ndarray) -> list[int]:
    return np.bincount(labels[rows], minlength=2).tolist()


def test_a_limit_leaving_one_class_in_validation_is_refused_with_one_that_works():
    labels = np.array([0] * 72 + [1] * 48)
    with pytest.raises(ConfigError) as refused:
        partition(labels, seed=0, val_fraction=0.2, limit=9)
    message = str(refused.value)
    assert message.startswith("--limit 9 leaves 0 patches of class 1 (positive) for validation")
    assert "use --limit 23 or more, or leave it out" in message and "\n" not in message
    enough = partition(labels, seed=0, val_fraction=0.2, limit=23)
    assert min(_per_class(labels, enough.val) + _per_class(labels, enough.train)) >= MIN_PER_CLASS


def test_every_accepted_limit_leaves_both_classes_in_both_parts():
    labels = np.array([0] * 72 + [1] * 48)
    accepted = []
    for limit in range(-1, 80):
        try:
            rows = partition(labels, seed=1, val_fraction=0.25, limit=limit)
        except ConfigError:
            continue
        accepted.append(limit)
        assert min(_per_class(labels, rows.train)) >= MIN_PER_CLASS, limit
        assert min(_per_class(labels, rows.val)) >= MIN_PER_CLASS, limit
    assert accepted == list(range(accepted[0], 80)) and accepted[0] > 4


def test_a_val_fraction_leaving_one_patch_of_a_class_is_refused():
    labels = np.array([0] * 72 + [1] * 48)
    with pytest.raises(ConfigError, match=r"^--val-fraction 0\.01 leaves 1 patch of class 0 .*"
                       r"use --val-fraction 0\.04$"):  # fmt: skip
        partition(labels, seed=0, val_fraction=0.01)
    with pytest.raises(ConfigError, match=r"^--val-fraction 0\.99 leaves 1 patch .* for training"):
        partition(labels, seed=0, val_fraction=0.99)


def test_a_labelled_set_too_small_to_split_is_refused(tmp_path):
    root = write_folders(tmp_path / "f", per_class=3)
    with pytest.raises(DataError, match=r"labelled set holds 3 patches of class 0 .* at least 4"):
        load_training_data(root, progress=False)


def test_hdf5_limits_and_validation_splits_without_both_classes_are_refused(tmp_path):
    root = write_hdf5(tmp_path / "h", sizes={"train": 8, "valid": 6})
    for limit in (0, 5):
        with pytest.raises(ConfigError, match=f"^--limit {limit} leaves 0 patches of class"):
            load_training_data(root, limit=limit, progress=False)
    short = write_hdf5(tmp_path / "short", sizes={"train": 8, "valid": 3})
    with pytest.raises(DataError, match=r"own split leaves 1 patch of class 1 .* for validation"):
        load_training_data(short, progress=False)
