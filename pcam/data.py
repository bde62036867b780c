"""The one entry point from a path on disk to decoded, partitioned training data."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcam.cache import CachedSplit, cache_folder, default_cache_root, load_or_build
from pcam.errors import ConfigError, DataError, PcamError, preview
from pcam.layouts import Layout, detect, open_split, read_id_group_csv
from pcam.split import (
    Partition,
    balanced_subsample,
    class_counts,
    limit_shares,
    partition,
    require_scorable,
)

logger = logging.getLogger(__name__)

SYNTHETIC_DEFAULT = {"train": 1000, "test": 200, "seed": 0}
# How validation patches were chosen (``TrainingData.validation``): a random share of the
# training slides' patches, the data set's own validation split (PCam HDF5), whole groups of
# --groups (``groups:<hash>``), or a separate labelled data set (--val-data).
SAME_SLIDES, OWN_SPLIT, GROUPS, VAL_DATA = "split", "own", "groups", "val-data"


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
    validation: str = SAME_SLIDES  # how validation was chosen: SAME_SLIDES, OWN_SPLIT, ...
    validation_note: str = ""  # the same, as a user reads it

    @property
    def validation_shares_slides(self) -> bool:
        """True when validation patches may come from the training patches' slides."""
        return self.validation == SAME_SLIDES

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
            logger.info(f"generating the embedded synthetic data set in {folder}")
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
        logger.warning(f"note: {note}")
    folder = cache_folder(layout, split, cache_root)
    return layout, load_or_build(source, folder, progress=progress)


def load_training_data(
    path: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
    limit: int | None = None,
    groups: str | Path | None = None,
    val_data: str | Path | None = None,
    cache_root: Path | None = None,
    progress: bool = True,
) -> TrainingData:
    """Training and validation data for a study.

    Kaggle and class-folder layouts: a seeded stratified split of ``train``, or with
    ``groups`` (an ``id,group`` CSV: slides, patients) a seeded split that keeps each group
    on one side. PCam HDF5: its own ``train`` and slide-disjoint ``valid`` splits. With
    ``val_data`` (any layout; its ``valid`` split if it has one, else ``train``): all of
    ``train`` to train on and that data set to validate on. ``limit`` caps training and
    validation together, keeping class balance, for quick searches.
    """
    if groups is not None and val_data is not None:
        raise ConfigError(
            "--groups and --val-data both choose the validation patches: give one of them"
        )
    layout, train_split = load_split(path, "train", cache_root=cache_root, progress=progress)
    if val_data is not None:
        val_split = _validation_set(val_data, train_split, cache_root, progress)
        validation, note = VAL_DATA, f"--val-data {val_data} ({len(val_split)} patches)"
    elif "valid" in layout.split_names and groups is None:
        _, val_split = load_split(path, "valid", cache_root=cache_root, progress=progress)
        validation, note = OWN_SPLIT, "the data set's own validation split (PCam: other slides)"
    else:
        rows, validation, note = _drawn_validation(
            train_split, seed=seed, val_fraction=val_fraction, limit=limit, groups=groups
        )
        return _training_data(layout, train_split, train_split, rows, validation, note)
    require_scorable(
        class_counts(train_split.labels),
        class_counts(val_split.labels),
        val_fraction=val_fraction,
        limit=limit,
        val_source=None if val_data is None else f"--val-data {val_data}",
    )
    train_rows = np.arange(len(train_split))
    val_rows = np.arange(len(val_split))
    if limit is not None:
        train_share, val_share = limit_shares(limit, val_fraction)
        train_rows = balanced_subsample(
            train_rows, train_split.labels, limit=train_share, seed=seed
        )
        val_rows = balanced_subsample(val_rows, val_split.labels, limit=val_share, seed=seed + 1)
    rows = Partition(train_rows, val_rows, seed, val_fraction, limit)
    return _training_data(layout, train_split, val_split, rows, validation, note)


def _drawn_validation(
    split: CachedSplit,
    *,
    seed: int,
    val_fraction: float,
    limit: int | None,
    groups: str | Path | None,
) -> tuple[Partition, str, str]:
    """Validation drawn from the training split itself: at random, or by whole groups."""
    by_row, groups_tag = None, ""
    if groups is not None:
        by_row, groups_tag = _groups_by_row(Path(groups).expanduser(), split.ids)
    rows = partition(
        split.labels,
        seed=seed,
        val_fraction=val_fraction,
        limit=limit,
        saved_in=split.folder,
        ids=split.ids,
        groups=by_row,
        groups_source=str(groups),
        groups_tag=groups_tag,
    )
    if by_row is None:
        note = (
            f"a random {val_fraction:.0%} of the labelled patches, from the same slides as the "
            "training patches"
        )
        return rows, SAME_SLIDES, note
    held, kept = (len(np.unique(by_row[part])) for part in (rows.val, rows.train))
    note = f"whole groups of --groups {groups} ({held} held out, {kept} trained on)"
    return rows, f"{GROUPS}:{groups_tag}", note


def _training_data(
    layout: Layout,
    train_split: CachedSplit,
    val_split: CachedSplit,
    rows: Partition,
    validation: str,
    note: str,
) -> TrainingData:
    same = val_split is train_split
    return TrainingData(
        layout=layout,
        train=_subset(train_split, rows.train),
        val=_subset(val_split, rows.val),
        fingerprint=train_split.fingerprint
        if same
        else f"{train_split.fingerprint}+{val_split.fingerprint}",
        content=train_split.content if same else f"{train_split.content}+{val_split.content}",
        split_seed=rows.seed,
        val_fraction=rows.val_fraction,
        limit=rows.limit,
        validation=validation,
        validation_note=note,
    )


def _validation_set(
    path: str | Path, train_split: CachedSplit, cache_root: Path | None, progress: bool
) -> CachedSplit:
    """The labelled split of ``--val-data``, checked against the training patches."""
    if not Path(path).expanduser().exists():
        raise DataError(f"--val-data {path}: no such file or folder; pass a labelled data set")
    try:
        layout = detect(path)
        name = "valid" if "valid" in layout.split_names else "train"
        if not open_split(layout, name).labelled:
            raise DataError(
                f"{path}: its {name} split has no labels; --val-data needs labelled patches "
                "(class folders 0/ 1/, a Kaggle layout with train_labels.csv, or PCam HDF5)"
            )
        _, val_split = load_split(path, name, cache_root=cache_root, progress=progress)
    except PcamError as error:
        raise type(error)(f"--val-data: {error}") from None
    shared = np.intersect1d(val_split.ids, train_split.ids)
    if len(shared):
        raise DataError(
            f"--val-data {path}: {len(shared)} of its patch ids are also training patches "
            f"({preview(shared.tolist())}); validation must be patches the search does not "
            "train on: pass another data set, or drop --val-data"
        )
    return val_split


def _groups_by_row(csv_path: Path, ids: np.ndarray) -> tuple[np.ndarray, str]:
    """The group of each of ``ids`` from ``--groups``, and a short hash of that assignment."""
    mapping = read_id_group_csv(csv_path)
    missing = ids[~np.isin(ids, mapping.index.to_numpy())]
    if len(missing):
        raise DataError(
            f"--groups {csv_path}: {len(missing)} of the {len(ids)} labelled patches have no "
            f"group: {preview(missing.tolist())}; add an id,group row for each of them"
        )
    by_row = mapping.loc[ids].to_numpy(dtype=str)
    rows = "\n".join(f"{i},{g}" for i, g in zip(ids, by_row, strict=True))
    return by_row, hashlib.sha256(rows.encode()).hexdigest()[:12]


def _subset(split: CachedSplit, rows: np.ndarray) -> Subset:
    return Subset(images=split.images, labels=split.labels, indices=rows, ids=split.ids[rows])
