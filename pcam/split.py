"""Seeded, stratified train/validation partitions, saved beside the cache they index."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcam.errors import DataError


@dataclass(frozen=True)
class Partition:
    """Row indices of the training and validation patches, and how they were drawn."""

    train: np.ndarray
    val: np.ndarray
    seed: int
    val_fraction: float
    limit: int | None


def stratified_split(
    labels: np.ndarray, *, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices so that each class keeps its share in both parts."""
    if not 0 < val_fraction < 1:
        raise DataError(f"validation fraction {val_fraction} must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_val = round(len(rows) * val_fraction)
        if len(rows) >= 2:
            n_val = min(max(n_val, 1), len(rows) - 1)
        val_parts.append(rows[:n_val])
        train_parts.append(rows[n_val:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(val_parts))


def balanced_subsample(
    rows: np.ndarray, labels: np.ndarray, *, limit: int, seed: int
) -> np.ndarray:
    """At most ``limit`` of ``rows``, drawn per class so that the class shares are kept."""
    if limit >= len(rows):
        return rows
    rng = np.random.default_rng(seed)
    kept = []
    classes, counts = np.unique(labels[rows], return_counts=True)
    quotas = np.floor(counts / counts.sum() * limit).astype(int)
    quotas[np.argmax(counts)] += limit - quotas.sum()
    for label, quota in zip(classes, quotas, strict=True):
        members = rows[labels[rows] == label]
        kept.append(rng.choice(members, size=min(quota, len(members)), replace=False))
    return np.sort(np.concatenate(kept))


def partition(
    labels: np.ndarray,
    *,
    seed: int,
    val_fraction: float,
    limit: int | None = None,
    saved_in: Path | None = None,
    ids: np.ndarray | None = None,
) -> Partition:
    """The study's train/validation partition; with ``saved_in``, reuse or save its ids.

    ``limit`` caps training plus validation patches together, class balance kept.
    """
    if limit is not None and limit < 4:
        raise DataError(f"--limit {limit} is too small; use at least 4 patches")
    saved = None
    if saved_in is not None:
        tag = f"split-seed{seed}-val{val_fraction:g}-limit{limit or 'all'}.npz"
        saved = saved_in / tag
        if saved.exists() and ids is not None:
            stored = np.load(saved)
            position = {patch_id: row for row, patch_id in enumerate(ids)}
            train = np.array([position[i] for i in stored["train_ids"]], dtype=np.int64)
            val = np.array([position[i] for i in stored["val_ids"]], dtype=np.int64)
            return Partition(train, val, seed, val_fraction, limit)
    train, val = stratified_split(labels, val_fraction=val_fraction, seed=seed)
    if limit is not None:
        n_val = max(1, round(limit * val_fraction))
        train = balanced_subsample(train, labels, limit=limit - n_val, seed=seed)
        val = balanced_subsample(val, labels, limit=n_val, seed=seed + 1)
    if saved is not None and ids is not None:
        staging = saved.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(staging, train_ids=ids[train], val_ids=ids[val])
        os.replace(staging, saved)
    return Partition(train, val, seed, val_fraction, limit)
