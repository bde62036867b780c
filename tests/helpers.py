"""Writers of small real data sets, in every layout and with every kind of defect."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def patch(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(96, 96, 3), dtype=np.uint8)


def write_kaggle(root: Path, *, n_train: int = 12, n_test: int = 4) -> Path:
    """A Kaggle-layout folder of random patches, half of them labelled positive."""
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows = ["id,label"]
    for i in range(n_train):
        Image.fromarray(patch(i)).save(root / "train" / f"t{i:03d}.tif")
        rows.append(f"t{i:03d},{i % 2}")
    (root / "train_labels.csv").write_text("\n".join(rows) + "\n")
    test_rows = ["id,label"]
    for i in range(n_test):
        Image.fromarray(patch(1000 + i)).save(root / "test" / f"x{i:03d}.tif")
        test_rows.append(f"x{i:03d},0")
    (root / "sample_submission.csv").write_text("\n".join(test_rows) + "\n")
    return root


def write_hdf5(root: Path, *, sizes: dict[str, int], y_sizes: dict[str, int] | None = None) -> Path:
    import h5py

    root.mkdir(parents=True, exist_ok=True)
    for split, n in sizes.items():
        x = np.stack([patch(i) for i in range(n)]) if n else np.zeros((0, 96, 96, 3), np.uint8)
        n_y = (y_sizes or {}).get(split, n)
        y = (np.arange(n_y) % 2).astype(np.uint8).reshape(n_y, 1, 1, 1)
        with h5py.File(root / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as f:
            f.create_dataset("x", data=x, chunks=(max(1, min(n, 4)), 96, 96, 3), compression="gzip")
        with h5py.File(root / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as f:
            f.create_dataset("y", data=y)
    return root


def write_folders(root: Path, *, per_class: int = 4, suffix: str = ".png") -> Path:
    for label in (0, 1):
        (root / str(label)).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(patch(label * 100 + i)).save(root / str(label) / f"p{label}{i}{suffix}")
    return root


def checkout_commit() -> str:
    """What the provenance should record for this checkout, asked of git here: HEAD, with
    ``+dirty`` while tracked files differ from it (untracked ones do not count)."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "diff", "HEAD", "--name-only"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    return head + ("+dirty" if changed else "")


@contextlib.contextmanager
def children_take_sigint() -> Iterator[None]:
    """Processes started inside take SIGINT as Ctrl-C even while this one ignores it, as a
    command started in the background by a non-interactive shell does: an ignored signal stays
    ignored across exec, and Python then installs no KeyboardInterrupt handler."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stderr_after_stop(process: subprocess.Popen, *, within: float) -> str:
    """A stopped command's stderr once it has exited. One still running ``within`` seconds
    after its stop is aborted, which makes Python's fault handler (on for every command the
    tests run: conftest.py) print where each of its threads stood, and the test fails with it."""
    try:
        return process.communicate(timeout=within)[1]
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, err = process.communicate(timeout=60)
        stacks = err.split("\nExtension modules:")[0]  # the list of loaded C modules after them
        pytest.fail(
            f"still running {within:g} s after its stop; where it stood:\n{stacks[-12000:]}"
        )


class StopsWhileFinalized:
    """Its finalizer receives a SIGTERM, as TensorFlow's objects can when a stop lands during a
    garbage collection: the handler's exception is raised inside ``__del__``, where Python
    drops it."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGTERM)


def query_study_file(database: Path, sql: str) -> list[tuple]:
    """The rows of ``sql`` on a study's SQLite file while a search writes it, read with plain
    SQLite, no table written: opening the file through Optuna while the search creates it would
    race it to create the schema. A query-only connection, not a read-only one (``mode=ro``),
    so that it reads the write-ahead log as the search's own connections do (a read-only one
    once saw no epoch until a 200-epoch trial had ended). No rows before the schema exists."""
    if not database.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(database)) as db:
            db.execute("PRAGMA query_only = ON")
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []
