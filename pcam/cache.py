"""Decode a split once into a memory-mapped uint8 cache; later runs open it in milliseconds.

A cache folder holds ``images.npy`` (N×96×96×3 uint8), ``ids.npy``, ``labels.npy`` and, written
last, ``manifest.json`` with the source's fingerprint. It is built in a temporary sibling folder
and renamed into place only when complete, so an interrupted build leaves nothing that a later
run would trust; a changed source (files added, removed or replaced) changes the fingerprint and
triggers a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pcam.cli import bar_disable
from pcam.errors import DataError, preview
from pcam.images import PATCH_SHAPE, read_patch
from pcam.layouts import Layout, SplitSource

CACHE_FORMAT = 1
CHUNK = 256
PARALLEL_THRESHOLD = 2048  # below this many files a process pool costs more than it saves


def default_cache_root() -> Path:
    """``$PCAM_CACHE_DIR``, else ``~/.cache/pcam-search``."""
    env = os.environ.get("PCAM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pcam-search"


@dataclass(frozen=True)
class CachedSplit:
    """A decoded split: images are a read-only memory map, so opening costs no decoding."""

    name: str
    ids: np.ndarray
    labels: np.ndarray
    images: np.ndarray
    fingerprint: str
    folder: Path

    def __len__(self) -> int:
        return len(self.ids)


def cache_folder(layout: Layout, split: str, cache_root: Path | None = None) -> Path:
    """Where the cache of one split of one data set lives."""
    root = (cache_root or default_cache_root()).expanduser()
    key = hashlib.sha256(str(layout.root.resolve()).encode()).hexdigest()[:12]
    return root / f"{layout.root.resolve().name}-{key}" / split


def load_or_build(
    source: SplitSource,
    folder: Path,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> CachedSplit:
    """Open the cache in ``folder`` if it matches ``source``; otherwise decode and build it."""
    cached = _open_if_current(folder, source.fingerprint)
    if cached is not None:
        return cached
    _build(source, folder, workers=workers, progress=progress)
    cached = _open_if_current(folder, source.fingerprint)
    assert cached is not None, f"cache at {folder} did not verify right after building"
    return cached


def _open_if_current(folder: Path, fingerprint: str) -> CachedSplit | None:
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if manifest.get("format") != CACHE_FORMAT or manifest.get("fingerprint") != fingerprint:
        return None
    try:
        images = np.load(folder / "images.npy", mmap_mode="r")
        ids = np.load(folder / "ids.npy")
        labels = np.load(folder / "labels.npy")
    except (OSError, ValueError):
        return None
    if len(images) != manifest["count"] or len(ids) != len(images) or len(labels) != len(ids):
        return None
    return CachedSplit(manifest["split"], ids, labels, images, fingerprint, folder)


def _remove_abandoned_builds(folder: Path) -> None:
    """Delete staging folders left by builds whose process died (SIGKILL, power loss)."""
    for staging in folder.parent.glob(f".{folder.name}.building-*"):
        pid = int(staging.name.rsplit("-", 2)[-2])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(staging, ignore_errors=True)
        except PermissionError:
            continue


def _build(source: SplitSource, folder: Path, *, workers: int | None, progress: bool) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(folder)
    staging = folder.parent / f".{folder.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        images = np.lib.format.open_memmap(
            staging / "images.npy", mode="w+", dtype=np.uint8, shape=(len(source), *PATCH_SHAPE)
        )
        bar = tqdm(
            total=len(source),
            desc=f"decoding {source.name} ({source.layout})",
            unit="img",
            disable=bar_disable(progress),
            file=sys.stderr,
        )
        errors: list[str] = []
        with bar:
            for start, chunk, chunk_errors in _decoded_chunks(source, workers):
                images[start : start + len(chunk)] = chunk
                errors.extend(chunk_errors)
                bar.update(len(chunk))
        if errors:
            raise DataError(
                f"{len(errors)} image(s) of the {source.name} split could not be used — "
                f"{preview(errors, limit=3)}"
            )
        images.flush()
        del images
        np.save(staging / "ids.npy", source.ids)
        np.save(staging / "labels.npy", source.labels)
        manifest = {
            "format": CACHE_FORMAT,
            "split": source.name,
            "layout": source.layout,
            "count": len(source),
            "fingerprint": source.fingerprint,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        _replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replace_folder(staging: Path, folder: Path) -> None:
    """Swap the finished cache into place; a reader sees the old one or the new one, whole."""
    if folder.exists():
        retired = folder.parent / f".{folder.name}.retired-{uuid.uuid4().hex[:8]}"
        folder.rename(retired)
        shutil.rmtree(retired, ignore_errors=True)
    staging.rename(folder)


def _decoded_chunks(
    source: SplitSource, workers: int | None
) -> Iterator[tuple[int, np.ndarray, list[str]]]:
    if source.hdf5_x is not None:
        yield from _hdf5_chunks(source.hdf5_x, len(source))
        return
    starts = range(0, len(source), CHUNK)
    chunks = [source.paths[start : start + CHUNK] for start in starts]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(source) < PARALLEL_THRESHOLD:
        for start, paths in zip(starts, chunks, strict=True):
            yield (start, *_decode_chunk(paths))
        return
    # fork: workers only run PIL, and a forked child starts in milliseconds where a spawned one
    # would import the caller's whole world (TensorFlow included) first.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_exit_with_parent
    ) as pool:
        for start, (pixels, errors) in zip(starts, pool.map(_decode_chunk, chunks), strict=True):
            yield start, pixels, errors


def _exit_with_parent() -> None:
    """Linux: a decode worker dies with its parent; a SIGKILLed build leaves no orphans.

    (Forked workers share the task pipe's write end, so they would never see it close.)
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _decode_chunk(paths: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    pixels = np.zeros((len(paths), *PATCH_SHAPE), dtype=np.uint8)
    errors = []
    for row, path in enumerate(paths):
        try:
            pixels[row] = read_patch(path)
        except DataError as error:
            errors.append(str(error))
    return pixels, errors


def _hdf5_chunks(x_path: Path, count: int) -> Iterator[tuple[int, np.ndarray, list[str]]]:
    import h5py

    with h5py.File(x_path, "r") as x_file:
        dataset = x_file["x"]
        step = max(CHUNK, (dataset.chunks or (CHUNK,))[0] * 16)
        for start in range(0, count, step):
            yield start, np.asarray(dataset[start : start + step], dtype=np.uint8), []
