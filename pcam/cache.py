"""Decode a split once into a memory-mapped uint8 cache; later runs open it in milliseconds.

A cache folder holds ``images.npy`` (N×96×96×3 uint8), ``ids.npy``, ``labels.npy`` and, written
last, ``manifest.json`` with the source's fingerprint. It is built in a temporary sibling folder
and renamed into place only when complete, so an interrupted build leaves nothing that a later
run would trust; a changed source (files added, removed or replaced) changes the fingerprint and
triggers a rebuild. The manifest also records each cache file's size and modification time and
a checksum of the ids and labels: a file cut short, replaced or edited after the build is
noticed when the cache is opened (in milliseconds: the 6 GB of images are not hashed), and the
split is decoded again.

The fingerprint is quick (names, sizes and modification times) and so also changes when
identical files are copied without their times. The manifest therefore also keeps ``content``,
a SHA-256 of the decoded pixels, ids and labels, taken while building: what a study records to
recognise its data set in a copy (another machine, a restored backup), where the fingerprint
alone would refuse it.
"""

from __future__ import annotations

import hashlib
import json
import logging
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
from pcam.errors import DISK_FULL, DataError, StorageError, preview
from pcam.images import PATCH_SHAPE, read_patch
from pcam.layouts import Layout, SplitSource
from pcam.publish import replace_folder

logger = logging.getLogger(__name__)

CACHE_FORMAT = 3  # 2: the manifest describes the files it vouches for; 3: and their content
FILES = ("images.npy", "ids.npy", "labels.npy")
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
    content: str  # SHA-256 of the decoded pixels, ids and labels: the same for a copy

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
    cached, damage = _open_if_current(folder, source.fingerprint)
    if cached is not None:
        return cached
    if damage is not None:
        logger.warning(f"note: the cache at {folder} {damage}; decoding the split again")
    _build(source, folder, workers=workers, progress=progress)
    cached, damage = _open_if_current(folder, source.fingerprint)
    assert cached is not None, f"cache at {folder} did not verify right after building: {damage}"
    return cached


def _open_if_current(folder: Path, fingerprint: str) -> tuple[CachedSplit | None, str | None]:
    """The cache in ``folder`` if it is whole and of this source; else None and, when a cache
    of this source is there but was changed after its build, what is wrong with it."""
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None, None
    if manifest.get("format") != CACHE_FORMAT or manifest.get("fingerprint") != fingerprint:
        return None, None  # none yet for this source (or an older format): build one
    for name, recorded in manifest["files"].items():
        try:
            stat = (folder / name).stat()
        except FileNotFoundError:
            return None, f"lacks {name}"
        if stat.st_size != recorded[0]:
            return (
                None,
                f"has {name} of {stat.st_size:,} bytes where its build wrote {recorded[0]:,}",
            )
        if stat.st_mtime_ns != recorded[1]:
            return None, f"has {name} modified after its build"
    try:
        images = np.load(folder / "images.npy", mmap_mode="r")
        ids = np.load(folder / "ids.npy")
        labels = np.load(folder / "labels.npy")
    except (OSError, ValueError) as error:
        return None, f"cannot be read ({error})"
    if _checksum(ids, labels) != manifest["checksum"]:
        return None, "has ids or labels that differ from those it was built with"
    if len(images) != manifest["count"] or len(ids) != len(images) or len(labels) != len(ids):
        return None, f"holds {len(images)} images, {len(ids)} ids, {len(labels)} labels"
    cached = CachedSplit(
        manifest["split"], ids, labels, images, fingerprint, folder, manifest["content"]
    )
    return cached, None


def _checksum(ids: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (ids, labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


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
    """Decode ``source`` into a staging sibling of ``folder`` and rename it into place only
    when whole, so an interrupted build leaves nothing a later run would trust."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(folder)
    staging = folder.parent / f".{folder.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        content = hashlib.sha256()  # chunks arrive in order: the hash of the whole array
        _decode_images(source, staging, content, workers=workers, progress=progress)
        checksum = _save_ids_and_labels(source, staging)
        content.update(checksum.encode())
        _write_manifest(source, staging, checksum=checksum, content=content.hexdigest())
        replace_folder(staging, folder)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            raise _disk_full(source, folder) from None
        raise


def _decode_images(
    source: SplitSource,
    staging: Path,
    content: hashlib._Hash,
    *,
    workers: int | None,
    progress: bool,
) -> None:
    """Decode every image of ``source`` into ``staging/images.npy``, feeding the pixels to
    ``content`` in order; a split with unusable images raises one DataError naming them."""
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
            content.update(np.ascontiguousarray(chunk).tobytes())
            errors.extend(chunk_errors)
            bar.update(len(chunk))
    if errors:
        raise DataError(
            f"{len(errors)} image(s) of the {source.name} split could not be used — "
            f"{preview(errors, limit=3)}"
        )
    images.flush()  # the map itself closes on return, before the manifest stats the file


def _save_ids_and_labels(source: SplitSource, staging: Path) -> str:
    """Write ``ids.npy`` and ``labels.npy``; the checksum of what was written, as read back."""
    np.save(staging / "ids.npy", source.ids)
    np.save(staging / "labels.npy", source.labels)
    return _checksum(np.load(staging / "ids.npy"), np.load(staging / "labels.npy"))


def _write_manifest(source: SplitSource, staging: Path, *, checksum: str, content: str) -> None:
    """Write ``manifest.json`` last: the source's fingerprint and each cache file's size and
    modification time, so a file changed after the build is noticed on opening."""
    files = {}
    for name in FILES:
        stat = (staging / name).stat()
        files[name] = [stat.st_size, stat.st_mtime_ns]
    manifest = {
        "format": CACHE_FORMAT,
        "split": source.name,
        "layout": source.layout,
        "count": len(source),
        "fingerprint": source.fingerprint,
        "files": files,
        "checksum": checksum,
        "content": content,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _disk_full(source: SplitSource, folder: Path) -> StorageError:
    """The error for a cache build that ran out of disk space, with the way out."""
    needed = len(source) * int(np.prod(PATCH_SHAPE))
    return StorageError(
        f"no space left on the device of {folder.parent} while caching the "
        f"{source.name} split ({needed / 2**30:.1f} GiB of images): free space there, "
        "or set PCAM_CACHE_DIR to a folder on a larger disk"
    )


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
