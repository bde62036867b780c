"""Seeded, stratified train/validation partitions, saved beside the cache they index."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcam.errors import ConfigError, DataError

# The fewest patches of each class that the training part and the validation part may hold.
# Without both classes the validation AUC is undefined (NaN every epoch) and training learns a
# constant. With one patch of a class the AUC is just where that single patch ranks, a coin a
# pruner would compare trials on. Two is the least that avoids both and still lets a quick
# search (--limit 40, a fifth of it held out) run on a set that is 40% positive.
MIN_PER_CLASS = 2
CLASS_NAMES = ("negative", "positive")
# Seeded orders of the groups that ``group_split`` tries: enough to come near the asked share
# of patches and of positives for a few hundred slides, in milliseconds.
GROUP_SPLIT_DRAWS = 200


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
        raise ConfigError(f"validation fraction {val_fraction} must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        n_val = _held_out(len(rows), val_fraction)
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
    quotas = _quotas(counts.tolist(), limit)
    for label, quota in zip(classes, quotas, strict=True):
        members = rows[labels[rows] == label]
        kept.append(rng.choice(members, size=quota, replace=False))
    return np.sort(np.concatenate(kept))


def limit_shares(limit: int, val_fraction: float) -> tuple[int, int]:
    """How many of ``limit`` patches go to training and how many to validation."""
    n_val = max(1, round(limit * val_fraction))
    return limit - n_val, n_val


def class_counts(labels: np.ndarray) -> tuple[int, int]:
    """(negatives, positives) among ``labels``."""
    positives = int(np.count_nonzero(labels))
    return len(labels) - positives, positives


def require_scorable(
    labelled: tuple[int, int],
    own_val: tuple[int, int] | None,
    *,
    val_fraction: float,
    limit: int | None,
    val_source: str | None = None,
) -> None:
    """Refuse, before anything is drawn or trained, a partition whose training or validation
    part would hold fewer than ``MIN_PER_CLASS`` patches of a class.

    ``labelled`` is (negatives, positives) of the labelled set; ``own_val`` those of a
    validation split of the data set's own (PCam HDF5), or of ``val_source`` (``--val-data
    PATH``), or None when validation is drawn from ``labelled``. The message names the value
    to change and what to change it to.
    """
    if not 0 < val_fraction < 1:
        raise ConfigError(f"--val-fraction {val_fraction}: must lie strictly between 0 and 1")
    short = _shortfall(labelled, own_val, val_fraction, limit)
    if short is None:
        return
    needed = f"training and validation each need {MIN_PER_CLASS} patches of each class"
    if limit is not None and _shortfall(labelled, own_val, val_fraction, None) is None:
        total = sum(labelled) + sum(own_val or (0, 0))
        enough = next(
            (
                n
                for n in range(max(limit, 0) + 1, total + 1)
                if _shortfall(labelled, own_val, val_fraction, n) is None
            ),
            None,
        )
        fix = "leave it out" if enough is None else f"use --limit {enough} or more, or leave it out"
        raise ConfigError(f"--limit {limit} leaves {short}; {needed}: {fix}")
    if own_val is not None and val_source is not None:
        raise DataError(f"{val_source} leaves {short}; {needed}: add labelled patches to it")
    if own_val is not None:
        raise DataError(
            f"the data set's own split leaves {short}; {needed}: restore the full split files"
        )
    smallest = min(labelled)
    if smallest < 2 * MIN_PER_CLASS:
        raise DataError(
            f"the labelled set holds {_patches(smallest)} of class "
            f"{labelled.index(smallest)} ({CLASS_NAMES[labelled.index(smallest)]}); each class "
            f"needs at least {2 * MIN_PER_CLASS}, {MIN_PER_CLASS} to train on and "
            f"{MIN_PER_CLASS} to validate on: add labelled patches of that class"
        )
    fractions = [
        share / 100
        for share in range(1, 100)
        if _shortfall(labelled, None, share / 100, None) is None
    ]
    nearest = min(fractions, key=lambda fraction: abs(fraction - val_fraction))
    raise ConfigError(
        f"--val-fraction {val_fraction} leaves {short}; {needed}: use --val-fraction {nearest}"
    )


def _held_out(n: int, val_fraction: float) -> int:
    """How many of a class's ``n`` patches ``stratified_split`` holds out for validation: its
    share, and at least one on each side once the class has two."""
    n_val = round(n * val_fraction)
    return min(max(n_val, 1), n - 1) if n >= 2 else n_val


def _quotas(counts: list[int], limit: int) -> list[int]:
    """How many of each class (``counts``, the classes present) a subsample of ``limit`` keeps."""
    total = sum(counts)
    quotas = [math.floor(count / total * limit) for count in counts]
    quotas[counts.index(max(counts))] += limit - sum(quotas)
    return [min(quota, count) for quota, count in zip(quotas, counts, strict=True)]


def _kept(counts: tuple[int, int], limit: int | None) -> tuple[int, int]:
    """(negatives, positives) that ``balanced_subsample`` keeps of ``counts`` under ``limit``."""
    if limit is None or max(limit, 0) >= sum(counts):
        return counts
    present = [count for count in counts if count > 0]
    quotas = iter(_quotas(present, max(limit, 0)))
    negatives, positives = (next(quotas) if count > 0 else 0 for count in counts)
    return negatives, positives


def _shortfall(
    labelled: tuple[int, int],
    own_val: tuple[int, int] | None,
    val_fraction: float,
    limit: int | None,
) -> str | None:
    """The scarcest class of either part under these settings, if it is short of
    ``MIN_PER_CLASS`` ("0 patches of class 1 (positive) for validation"), counted as
    ``partition`` and ``balanced_subsample`` draw; None if neither part is short."""
    if own_val is None:
        val = tuple(_held_out(count, val_fraction) for count in labelled)
        train = tuple(count - held for count, held in zip(labelled, val, strict=True))
    else:
        train, val = labelled, own_val
    if limit is not None:
        train_share, val_share = limit_shares(limit, val_fraction)
        train, val = _kept(train, train_share), _kept(val, val_share)
    count, part, label = min(
        (count, part, label)
        for part, counts in (("training", train), ("validation", val))
        for label, count in enumerate(counts)
    )
    if count >= MIN_PER_CLASS:
        return None
    return f"{_patches(count)} of class {label} ({CLASS_NAMES[label]}) for {part}"


def _patches(count: int) -> str:
    return f"{count} patch" if count == 1 else f"{count} patches"


def group_split(
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    val_fraction: float,
    seed: int,
    source: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices so that every group (a slide, a patient) lies on one side.

    Of ``GROUP_SPLIT_DRAWS`` seeded orders of the groups, each held out up to the share
    closest to ``val_fraction``, the one nearest that share and the set's share of positives
    wins, among those that leave ``MIN_PER_CLASS`` of each class on both sides. ``source``
    names the groups file in errors.
    """
    names, group_of = np.unique(groups, return_inverse=True)
    sizes = np.bincount(group_of, minlength=len(names))
    positives = np.bincount(group_of, weights=labels, minlength=len(names)).astype(int)
    by_class = (sizes - positives, positives)
    for label, counts in enumerate(by_class):
        holders = np.flatnonzero(counts)
        if len(holders) == 1:
            raise DataError(
                f"--groups {source}: every {CLASS_NAMES[label]} patch (class {label}) is in "
                f"group '{names[holders[0]]}', and a group stays on one side, so training and "
                "validation cannot both hold that class: group more finely (slides rather than "
                "patients), or validate on another data set with --val-data"
            )
    total, share = len(labels), float(np.mean(labels))
    rng = np.random.default_rng(seed)
    best, best_score = None, np.inf
    for _ in range(GROUP_SPLIT_DRAWS):
        order = rng.permutation(len(names))
        held = np.cumsum(sizes[order])
        k = int(np.argmin(np.abs(held[:-1] - val_fraction * total))) + 1
        val_groups = order[:k]
        counts = [(c[val_groups].sum(), c.sum() - c[val_groups].sum()) for c in by_class]
        if min(min(pair) for pair in counts) < MIN_PER_CLASS:
            continue
        val_size = held[k - 1]
        score = abs(val_size / total - val_fraction) + abs(counts[1][0] / val_size - share)
        if score < best_score:
            best, best_score = val_groups, score
    if best is None:
        raise DataError(
            f"--groups {source}: no way of holding out whole groups leaves {MIN_PER_CLASS} "
            "patches of each class on both sides of the split (the classes sit in too few "
            "groups); use a larger --val-fraction, a finer grouping, or --val-data"
        )
    held_out = np.isin(group_of, best)
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


def partition(
    labels: np.ndarray,
    *,
    seed: int,
    val_fraction: float,
    limit: int | None = None,
    saved_in: Path | None = None,
    ids: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    groups_source: str = "",
    groups_tag: str = "",
) -> Partition:
    """The study's train/validation partition; with ``saved_in``, reuse or save its ids.

    ``limit`` caps training plus validation patches together, class balance kept. With
    ``groups`` (one per row; ``groups_source`` names their file, ``groups_tag`` their hash)
    every group lies on one side.
    """
    if groups is None:
        require_scorable(class_counts(labels), None, val_fraction=val_fraction, limit=limit)
    saved = None
    if saved_in is not None:
        tag = f"split-seed{seed}-val{val_fraction:g}-limit{limit or 'all'}"
        tag += f"-groups{groups_tag}.npz" if groups is not None else ".npz"
        saved = saved_in / tag
        if saved.exists() and ids is not None:
            stored = np.load(saved)
            position = {patch_id: row for row, patch_id in enumerate(ids)}
            train = np.array([position[i] for i in stored["train_ids"]], dtype=np.int64)
            val = np.array([position[i] for i in stored["val_ids"]], dtype=np.int64)
            return Partition(train, val, seed, val_fraction, limit)
    if groups is None:
        train, val = stratified_split(labels, val_fraction=val_fraction, seed=seed)
    else:
        if not 0 < val_fraction < 1:
            raise ConfigError(f"--val-fraction {val_fraction}: must lie strictly between 0 and 1")
        train, val = group_split(
            labels, groups, val_fraction=val_fraction, seed=seed, source=groups_source
        )
        require_scorable(
            class_counts(labels[train]),
            class_counts(labels[val]),
            val_fraction=val_fraction,
            limit=limit,
        )
    if limit is not None:
        train_share, val_share = limit_shares(limit, val_fraction)
        train = balanced_subsample(train, labels, limit=train_share, seed=seed)
        val = balanced_subsample(val, labels, limit=val_share, seed=seed + 1)
    if saved is not None and ids is not None:
        staging = saved.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(staging, train_ids=ids[train], val_ids=ids[val])
        os.replace(staging, saved)
    return Partition(train, val, seed, val_fraction, limit)
