"""Recognise which PCam layout a path holds and list its splits, with every input check.

Three layouts are read:

* ``kaggle``  — ``DIR/train/<id>.tif`` + ``DIR/train_labels.csv`` (``id,label``), and
  ``DIR/test/<id>.tif`` + ``DIR/sample_submission.csv`` (Kaggle's competition layout);
* ``hdf5``    — ``camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5`` (original PCam);
* ``folders`` — ``DIR/0/*`` and ``DIR/1/*`` (Keras' ``image_dataset_from_directory`` convention).

Nothing is decoded here: a :class:`SplitSource` says where one split's pixels are, what its
ids and labels are, and a fingerprint that changes whenever the files do.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pcam.errors import DataError, preview
from pcam.images import IMAGE_SUFFIXES, PATCH_SHAPE

UNKNOWN_LABEL = -1
HDF5_PATTERN = re.compile(r"camelyonpatch_level_2_split_(train|valid|test)_([xy])\.h5$")


@dataclass(frozen=True)
class SplitSource:
    """One split on disk: ids in their canonical order, labels (or UNKNOWN_LABEL), pixels."""

    layout: str
    name: str
    ids: np.ndarray
    labels: np.ndarray
    fingerprint: str
    paths: tuple[str, ...] = ()
    hdf5_x: Path | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def labelled(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels != UNKNOWN_LABEL).all())

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Layout:
    """A data set on disk: its kind, its root, and the names of the splits it holds."""

    kind: str
    root: Path
    split_names: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.kind} layout at {self.root} (splits: {', '.join(self.split_names)})"


def detect(path: str | Path) -> Layout:
    """Say which layout ``path`` holds, or raise DataError saying what is missing."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(
            f"{root}: no such file or folder; pass --data the folder of a PCam data set"
        )
    if root.is_file():
        if HDF5_PATTERN.search(root.name):
            root = root.parent
        else:
            raise DataError(
                f"{root}: a data set is a folder (Kaggle layout, PCam HDF5 files, or 0/ and 1/ "
                "class folders), not a single file"
            )
    names = {entry.name for entry in os.scandir(root)}
    hdf5_splits = sorted({m.group(1) for n in names if (m := HDF5_PATTERN.search(n))})
    if hdf5_splits:
        order = [s for s in ("train", "valid", "test") if s in hdf5_splits]
        return Layout("hdf5", root, tuple(order))
    if "train" in names or "train_labels.csv" in names:
        if not (root / "train").is_dir():
            raise DataError(f"{root}: train_labels.csv is there but the folder train/ is missing")
        if not (root / "train_labels.csv").is_file():
            raise DataError(
                f"{root}: the folder train/ is there but train_labels.csv (columns id,label) is "
                "missing; copy it from the Kaggle download"
            )
        splits = ("train", "test") if (root / "test").is_dir() else ("train",)
        return Layout("kaggle", root, splits)
    if (root / "0").is_dir() or (root / "1").is_dir():
        return Layout("folders", root, ("train",))
    raise DataError(
        f"{root}: not a PCam data set; expected train/ + train_labels.csv (Kaggle), "
        "camelyonpatch_level_2_split_*_x.h5 files (PCam HDF5), or class folders 0/ and 1/"
    )


def open_split(layout: Layout, split: str) -> SplitSource:
    """List one split of a layout, checking ids, labels and files against each other."""
    if split not in layout.split_names:
        raise DataError(
            f"{layout.root}: the {layout.kind} layout has no {split!r} split "
            f"(it has: {', '.join(layout.split_names)})"
        )
    if layout.kind == "kaggle":
        return _kaggle_split(layout.root, split)
    if layout.kind == "hdf5":
        return _hdf5_split(layout.root, split)
    return _folders_split(layout.root)


def _list_images(folder: Path) -> dict[str, tuple[int, int]]:
    """Map each image's file name to its (size, mtime_ns), scanning the folder once.

    Plain strings, no ``Path`` per file: start-up on 220,000 files depends on it.
    """
    found = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file():
                stat = entry.stat()
                found[entry.name] = (stat.st_size, stat.st_mtime_ns)
    return found


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _fingerprint(parts: list[tuple[str, int, int]], *extra: bytes) -> str:
    """A hash of every file's name, size and modification time, and of ``extra`` contents."""
    listing = "\n".join(f"{name}\0{size}\0{mtime_ns}" for name, size, mtime_ns in sorted(parts))
    digest = hashlib.sha256(listing.encode())
    for blob in extra:
        digest.update(hashlib.sha256(blob).digest())
    return digest.hexdigest()[:20]


def read_id_label_csv(csv_path: Path, *, labels_required: bool) -> pd.DataFrame:
    """An ``id,label`` CSV, checked: one row per id; with ``labels_required``, labels 0 or 1
    (as ``int8``). Every failure is a ``DataError`` naming the file and the fix."""
    table = _read_id_csv(csv_path, "label")
    if labels_required:
        numeric = pd.to_numeric(table["label"], errors="coerce")
        bad = table["id"][~numeric.isin([0, 1])]
        if len(bad):
            values = table["label"][~numeric.isin([0, 1])].astype(str).unique()
            raise DataError(
                f"{csv_path}: {len(bad)} row(s) have a label other than 0 or 1 "
                f"(values {preview(values, limit=3)}; ids {preview(bad.tolist())}); "
                "labels must be 0 (no tumour) or 1 (tumour in the centre 32×32 px)"
            )
        table["label"] = numeric.astype(np.int8)
    return table


def read_id_group_csv(csv_path: Path) -> pd.Series:
    """An ``id,group`` CSV (a patch's slide, patient or hospital), checked, as group names
    indexed by id. Every failure is a ``DataError`` naming the file and the fix."""
    table = _read_id_csv(csv_path, "group", as_text=True, flag="--groups ")
    empty = table["id"][table["group"].isna()]
    if len(empty):
        raise DataError(
            f"--groups {csv_path}: {len(empty)} row(s) have no group: {preview(empty.tolist())}; "
            "give every patch its slide (or patient) name"
        )
    return pd.Series(table["group"].astype(str).to_numpy(), index=table["id"].to_numpy())


def _read_id_csv(
    csv_path: Path, column: str, *, as_text: bool = False, flag: str = ""
) -> pd.DataFrame:
    """A CSV with a header row ``id,<column>``, one row per id; ids read as text, and
    ``column`` too with ``as_text``. ``flag`` names the option that gave the file."""
    where = f"{flag}{csv_path}"
    if not csv_path.is_file():
        raise DataError(f"{where}: file missing")
    try:
        table = pd.read_csv(csv_path, dtype={"id": str, **({column: str} if as_text else {})})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{where}: not a readable CSV ({error})") from None
    missing = [name for name in ("id", column) if name not in table.columns]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {', '.join(missing)}; found "
            f"{', '.join(map(str, table.columns)) or 'none'}; it needs a header row 'id,{column}'"
        )
    duplicated = table["id"][table["id"].duplicated()].unique()
    if len(duplicated):
        raise DataError(
            f"{where}: {len(duplicated)} id(s) appear more than once: {preview(duplicated)}; "
            "each patch must have exactly one row"
        )
    return table


def _kaggle_split(root: Path, split: str) -> SplitSource:
    folder = root / split
    files = _list_images(folder)
    by_id = {_stem(name): name for name in files}
    if len(by_id) < len(files):
        raise DataError(f"{folder}: several files share one id (e.g. a.tif and a.png); keep one")
    csv_path = root / ("train_labels.csv" if split == "train" else "sample_submission.csv")
    notes: list[str] = []
    if split == "test":
        if not files:
            raise DataError(f"{folder}: the test folder holds no images (.tif); nothing to predict")
        if csv_path.is_file():
            table = read_id_label_csv(csv_path, labels_required=False)
            _require_same_ids(csv_path, folder, table["id"], by_id)
            ids = table["id"].to_numpy(dtype=str)
        else:
            ids = np.array(sorted(by_id), dtype=str)
            notes.append("no sample_submission.csv: test ids are taken in file-name order")
        labels = np.full(len(ids), UNKNOWN_LABEL, dtype=np.int8)
    else:
        table = read_id_label_csv(csv_path, labels_required=True)
        labelled_ids = set(table["id"].tolist())
        missing = sorted(labelled_ids - by_id.keys())
        if missing:
            raise DataError(
                f"{csv_path}: {len(missing)} labelled id(s) have no image in {folder}/: "
                f"{preview(missing)}; restore the files, or drop those rows from the CSV"
            )
        unlabelled = sorted(by_id.keys() - labelled_ids)
        if unlabelled:
            notes.append(
                f"{len(unlabelled)} image(s) in {folder}/ have no label in {csv_path.name} and "
                f"are left out: {preview(unlabelled)}"
            )
        ids = table["id"].to_numpy(dtype=str)
        labels = table["label"].to_numpy(dtype=np.int8)
        if not len(ids):
            raise DataError(f"{csv_path}: no rows; the training split is empty")
    names = [by_id[i] for i in ids]
    prefix = f"{folder}{os.sep}"
    paths = tuple(prefix + name for name in names)
    stats = [(name, *files[name]) for name in names]
    csv_bytes = csv_path.read_bytes() if csv_path.is_file() else b""
    return SplitSource(
        layout="kaggle",
        name=split,
        ids=ids,
        labels=labels,
        fingerprint=_fingerprint(stats, csv_bytes),
        paths=paths,
        notes=tuple(notes),
    )


def _require_same_ids(csv_path: Path, folder: Path, csv_ids: pd.Series, by_id: dict) -> None:
    listed = set(csv_ids.tolist())
    no_image = sorted(listed - by_id.keys())
    no_row = sorted(by_id.keys() - listed)
    if no_image or no_row:
        parts = []
        if no_image:
            parts.append(f"{len(no_image)} id(s) listed without an image: {preview(no_image)}")
        if no_row:
            parts.append(f"{len(no_row)} image(s) not listed: {preview(no_row)}")
        raise DataError(
            f"{csv_path} and {folder}/ disagree — {'; '.join(parts)}. A submission needs every "
            "test id exactly once: restore the missing files or use the matching CSV"
        )


def _folders_split(root: Path) -> SplitSource:
    ids: list[str] = []
    labels: list[int] = []
    paths: list[str] = []
    stats: list[tuple[str, int, int]] = []
    seen: dict[str, str] = {}
    for label in (0, 1):
        folder = root / str(label)
        if not folder.is_dir():
            raise DataError(f"{folder}: class folder missing; the folders layout needs 0/ and 1/")
        files = _list_images(folder)
        for name in sorted(files):
            stem = _stem(name)
            if stem in seen:
                raise DataError(
                    f"{root}: id {stem!r} appears twice ({seen[stem]} and {label}/{name}); "
                    "each patch must appear once, in one class folder"
                )
            seen[stem] = f"{label}/{name}"
            ids.append(stem)
            labels.append(label)
            paths.append(f"{folder}{os.sep}{name}")
            stats.append((f"{label}/{name}", *files[name]))
    if not ids:
        raise DataError(f"{root}: the class folders 0/ and 1/ hold no images (.tif, .png, .jpg)")
    return SplitSource(
        layout="folders",
        name="train",
        ids=np.array(ids, dtype=str),
        labels=np.array(labels, dtype=np.int8),
        fingerprint=_fingerprint(stats),
        paths=tuple(paths),
    )


def _hdf5_split(root: Path, split: str) -> SplitSource:
    import h5py

    x_path = root / f"camelyonpatch_level_2_split_{split}_x.h5"
    y_path = root / f"camelyonpatch_level_2_split_{split}_y.h5"
    for path in (x_path, y_path):
        if not path.is_file():
            raise DataError(f"{path}: file missing; PCam HDF5 splits come as an _x and a _y file")
    try:
        with h5py.File(x_path, "r") as x_file, h5py.File(y_path, "r") as y_file:
            x_shape = x_file["x"].shape
            labels = np.asarray(y_file["y"]).reshape(-1)
    except (OSError, KeyError) as error:
        raise DataError(
            f"{x_path.parent}: cannot read the {split} HDF5 pair ({error}); each file needs one "
            "dataset, 'x' (N×96×96×3 uint8) or 'y' (N×1×1×1)"
        ) from None
    if tuple(x_shape[1:]) != PATCH_SHAPE:
        raise DataError(f"{x_path}: x has shape {x_shape}, expected (N, 96, 96, 3)")
    if x_shape[0] != len(labels):
        raise DataError(
            f"{x_path.name} holds {x_shape[0]} patches but {y_path.name} holds {len(labels)} "
            "labels; the two files of a split must have the same length (re-download the pair)"
        )
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{y_path}: labels other than 0 or 1: {preview(np.unique(labels))}")
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in (x_path, y_path)]
    return SplitSource(
        layout="hdf5",
        name=split,
        ids=np.array([f"{split}_{i}" for i in range(len(labels))], dtype=str),
        labels=labels.astype(np.int8),
        fingerprint=_fingerprint(stats),
        hdf5_x=x_path,
    )
