"""Partitions are seeded, stratified, saved with the cache, and subsample with balance kept."""

from __future__ import annotations

import numpy as np

from pcam.data import load_training_data
from pcam.split import balanced_subsample, partition, stratified_split
from tests.helpers import write_hdf5


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
