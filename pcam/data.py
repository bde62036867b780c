"""The one entry point from a path on disk to decoded, partitioned training data."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcam.cache import CachedSplit, cache_folder, default_cache_root, load_or_build
from pcam.layouts import Layout, detect, open_split
from pcam.split import (
    Partition,
    balanced_subsample,
    class_counts,
    limit_shares,
    partition,
    require_scorable,
)

SYNTHETIC_DEFAULT = {"train": 1000, "test": 200, "seed": 0}


@dataclass(frozen=True)
class Subset:
    """Rows ``indices`` of a cached split: what a feed streams and a metric scores."""

    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def y(self) -> np.ndarray:
        return self.labels[self.indices]


@dataclass(frozen=True)
class TrainingData:
    """Training and validation subsets plus everything needed to record where they came from."""

    layout: Layout
    train: Subset
    val: Subset
    fingerprint: str
    content: str  # of the decoded pixels, ids and labels (``CachedSplit.content``)
    split_seed: int
    val_fraction: float
    limit: int | None

    def describe(self) -> str:
        return (
            f"{self.layout.describe()}: {len(self.train)} training / {len(self.val)} "
            f"validation patches (positives {self.train.y.mean():.0%} / {self.val.y.mean():.0%})"
        )


def default_data_dir(cache_root: Path | None = None, *, progress: bool = True) -> Path:
    """The embedded synthetic data set, generated in the cache folder on first use."""
    from pcam.synth import VERSION as SYNTH_VERSION
    from pcam.synth import generate

    spec = SYNTHETIC_DEFAULT
    folder = (cache_root or default_cache_root()) / (
        f"synthetic-v{SYNTH_VERSION}-{spec['train']}-{spec['test']}-seed{spec['seed']}"
    )
    if not (folder / "sample_submission.csv").is_file():
        if progress:
            print(f"generating the embedded synthetic data set in {folder}", file=sys.stderr)
        generate(folder, n_train=spec["train"], n_test=spec["test"], seed=spec["seed"])
    return folder


def load_split(
    path: str | Path,
    split: str,
    *,
    cache_root: Path | None = None,
    progress: bool = True,
) -> tuple[Layout, CachedSplit]:
    """Detect the layout at ``path`` and return one split, decoded once and cached."""
    layout = detect(path)
    source = open_split(layout, split)
    for note in source.notes:
        print(f"note: {note}", file=sys.stderr)
    folder = cache_folder(layout, split, cache_root)
    return layout, load_or_build(source, folder, progress=progress)


def load_training_data(
    path: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    limit: int | None = None,
    cache_root: Path | None = None,
    progress: bool = True,
) -> TrainingData:
    """Training and validation data for a study.

    Kaggle and class-folder layouts: a seeded stratified split of ``train``. PCam HDF5: its
    own ``train`` and slide-disjoint ``valid`` splits. ``limit`` caps both together, keeping
    class balance, for quick searches.
    """
    layout, train_split = load_split(path, "train", cache_root=cache_root, progress=progress)
    if "valid" in layout.split_names:
        _, val_split = load_split(path, "valid", cache_root=cache_root, progress=progress)
        require_scorable(
            class_counts(train_split.labels),
            class_counts(val_split.labels),
            val_fraction=val_fraction,
            limit=limit,
        )
        train_rows = np.arange(len(train_split))
        val_rows = np.arange(len(val_split))
        if limit is not None:
            train_share, val_share = limit_shares(limit, val_fraction)
            train_rows = balanced_subsample(
                train_rows, train_split.labels, limit=train_share, seed=seed
            )
            val_rows = balanced_subsample(
                val_rows, val_split.labels, limit=val_share, seed=seed + 1
            )
        rows = Partition(train_rows, val_rows, seed, val_fraction, limit)
        fingerprint = f"{train_split.fingerprint}+{val_split.fingerprint}"
        content = f"{train_split.content}+{val_split.content}"
    else:
        val_split = train_split
        rows = partition(
            train_split.labels,
            seed=seed,
            val_fraction=val_fraction,
            limit=limit,
            saved_in=train_split.folder,
            ids=train_split.ids,
        )
        fingerprint, content = train_split.fingerprint, train_split.content
    return TrainingData(
        layout=layout,
        train=_subset(train_split, rows.train),
        val=_subset(val_split, rows.val),
        fingerprint=fingerprint,
        content=content,
        split_seed=seed,
        val_fraction=val_fraction,
        limit=limit,
    )


def _subset(split: CachedSplit, rows: np.ndarray) -> Subset:
    return Subset(images=split.images, labels=split.labels, indices=rows, ids=split.ids[rows])
