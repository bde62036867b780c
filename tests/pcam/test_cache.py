"""The decode-once cache: reused when current, rebuilt when the source changes, never half-built."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pcam.cache
from pcam.cache import cache_folder
from pcam.data import load_split
from pcam.errors import StorageError
from pcam.layouts import detect
from tests.helpers import patch, stderr_after_stop, write_kaggle


def test_cache_is_reused_without_decoding(tmp_path, monkeypatch):
    root = write_kaggle(tmp_path / "k")
    _, first = load_split(root, "train", progress=False)
    monkeypatch.setattr(
        pcam.cache, "_build", lambda *a, **k: pytest.fail("rebuilt a current cache")
    )
    started = time.perf_counter()
    _, second = load_split(root, "train", progress=False)
    assert time.perf_counter() - started < 1.0
    assert np.array_equal(first.images, second.images)
    assert list(first.ids) == list(second.ids)


def test_cached_pixels_match_the_files(tmp_path):
    root = write_kaggle(tmp_path / "k")
    _, train = load_split(root, "train", progress=False)
    for row, patch_id in enumerate(train.ids):
        assert np.array_equal(train.images[row], patch(int(patch_id[1:])))


@pytest.mark.parametrize("change", ["added", "removed", "replaced"])
def test_changed_source_rebuilds(tmp_path, change):
    root = write_kaggle(tmp_path / "k")
    _, before = load_split(root, "train", progress=False)
    csv = root / "train_labels.csv"
    if change == "added":
        Image.fromarray(patch(500)).save(root / "train" / "new.tif")
        csv.write_text(csv.read_text() + "new,1\n")
    elif change == "removed":
        (root / "train" / "t011.tif").unlink()
        csv.write_text(csv.read_text().replace("t011,1\n", ""))
    else:
        path = root / "train" / "t002.tif"
        Image.fromarray(patch(777)).save(path)
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    _, after = load_split(root, "train", progress=False)
    assert before.fingerprint != after.fingerprint
    assert before.content != after.content
    expected = {"added": 13, "removed": 11, "replaced": 12}[change]
    assert len(after) == expected
    if change == "replaced":
        assert np.array_equal(after.images[list(after.ids).index("t002")], patch(777))


def test_a_copy_with_new_file_times_has_the_same_content(tmp_path):
    """The fingerprint sees the copy's new times; the content hash sees the same pixels."""
    root = write_kaggle(tmp_path / "k")
    copy = Path(shutil.copytree(root, tmp_path / "copy", copy_function=shutil.copy))
    later = time.time_ns() + 10**9
    for path in copy.rglob("*"):
        os.utime(path, ns=(later, later))
    _, original = load_split(root, "train", progress=False)
    _, copied = load_split(copy, "train", progress=False)
    assert original.fingerprint != copied.fingerprint
    assert original.content == copied.content
    _, reopened = load_split(copy, "train", progress=False)  # from the manifest, not rehashed
    assert reopened.content == copied.content


def test_interrupted_build_leaves_nothing_trusted(tmp_path, monkeypatch):
    root = write_kaggle(tmp_path / "k")
    calls = {"n": 0}
    real_read = pcam.cache.read_patch

    def read_then_interrupt(path):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_read(path)

    monkeypatch.setattr(pcam.cache, "read_patch", read_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        load_split(root, "train", progress=False)
    folder = cache_folder(detect(root), "train")
    assert not folder.exists()
    assert list(folder.parent.iterdir()) == []  # the staging folder went too
    monkeypatch.setattr(pcam.cache, "read_patch", real_read)
    _, train = load_split(root, "train", progress=False)
    assert len(train) == 12


def _processes_running(command: str) -> list[str]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if command.encode() in (proc / "cmdline").read_bytes():
                found.append(proc.name)
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_killed_build_is_not_trusted_and_is_cleaned_up(tmp_path, private_cache):
    """SIGKILL mid-build (no handler runs): the next run ignores the remains and rebuilds."""
    root = write_kaggle(tmp_path / "k", n_train=3000)
    script = (
        "import pcam.cache, pcam.data, time\n"
        "real = pcam.cache.read_patch\n"
        "def slow(p):\n    time.sleep(0.002)\n    return real(p)\n"
        "pcam.cache.read_patch = slow\n"
        f"pcam.data.load_split({str(root)!r}, 'train', progress=False)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    folder = cache_folder(detect(root), "train")
    deadline = time.time() + 60
    while not list(folder.parent.glob(".train.building-*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    child.send_signal(signal.SIGKILL)
    child.wait()
    time.sleep(1)
    assert not _processes_running(script), "decode workers outlived their killed parent"
    assert list(folder.parent.glob(".train.building-*")), "the build never started"
    assert not (folder / "manifest.json").exists()
    _, train = load_split(root, "train", progress=False)
    assert len(train) == 3000
    assert not list(folder.parent.glob(".train.building-*"))


@pytest.mark.slow
def test_a_scheduler_s_sigterm_stops_prepare_as_ctrl_c_does_leaving_nothing_half_built(
    tmp_path, private_cache
):
    """``python -m pcam.prepare`` sent SIGTERM mid-build (a scheduler's stop): its clean-up
    runs as on Ctrl-C, "interrupted" and exit status 143, no building folder or cache left."""
    root = write_kaggle(tmp_path / "k", n_train=3000)
    script = (
        "import sys, time, pcam.cache\n"
        "from pcam.errors import run_cli\n"
        "from pcam.prepare import main\n"
        "real = pcam.cache.read_patch\n"
        "def slow(p):\n    time.sleep(0.002)\n    return real(p)\n"
        "pcam.cache.read_patch = slow\n"
        f"run_cli(lambda: main([{str(root)!r}]))\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], env=os.environ.copy(), stderr=subprocess.PIPE, text=True
    )
    folder = cache_folder(detect(root), "train")
    deadline = time.time() + 60
    while not list(folder.parent.glob(".train.building-*")) and time.time() < deadline:
        time.sleep(0.05)
    assert list(folder.parent.glob(".train.building-*")), "the build never started"
    time.sleep(0.5)
    child.send_signal(signal.SIGTERM)
    err = stderr_after_stop(child, within=60)
    assert child.returncode == 143, err[-3000:]
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    time.sleep(1)
    assert not _processes_running(script), "decode workers outlived their stopped parent"
    assert not list(folder.parent.glob(".train.building-*"))
    assert not (folder / "manifest.json").exists()


@pytest.mark.slow
def test_parallel_build_equals_serial(tmp_path):
    root = write_kaggle(tmp_path / "k", n_train=2100)
    from pcam.layouts import open_split

    source = open_split(detect(root), "train")
    serial = pcam.cache.load_or_build(source, tmp_path / "serial", workers=1, progress=False)
    parallel = pcam.cache.load_or_build(source, tmp_path / "parallel", workers=2, progress=False)
    assert np.array_equal(serial.images, parallel.images)


def _cut_images_short(folder: Path) -> None:
    path = folder / "images.npy"
    os.truncate(path, path.stat().st_size - 96 * 96 * 3)


def _scribble_on_images(folder: Path) -> None:  # same size: only the time says it changed
    with open(folder / "images.npy", "r+b") as images:
        images.seek(-5000, os.SEEK_END)
        images.write(b"\xff" * 5000)


def _flip_labels_keeping_the_time(folder: Path) -> None:  # only the checksum can tell
    path = folder / "labels.npy"
    stat = path.stat()
    np.save(path, 1 - np.load(path))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize(
    "damage, said",
    [
        (_cut_images_short, "has images.npy of"),
        (_scribble_on_images, "has images.npy modified after its build"),
        (_flip_labels_keeping_the_time, "has ids or labels that differ"),
    ],
    ids=["truncated", "edited", "labels-edited-time-kept"],
)
def test_a_cache_changed_after_its_build_is_rebuilt_not_trusted(
    tmp_path, capsys, command_lines, damage, said
):
    root = write_kaggle(tmp_path / "k")
    _, built = load_split(root, "train", progress=False)
    pixels, labels = np.array(built.images), np.array(built.labels)
    folder = built.folder
    del built  # the memory map
    time.sleep(0.05)  # an edit lands on a later clock tick than the build
    damage(folder)
    capsys.readouterr()
    _, reopened = load_split(root, "train", progress=False)
    assert np.array_equal(reopened.images, pixels) and np.array_equal(reopened.labels, labels)
    note = capsys.readouterr().err
    assert f"note: the cache at {folder} {said}" in note and "decoding the split again" in note
    # and the rebuilt cache is trusted again, without a note
    load_split(root, "train", progress=False)
    assert capsys.readouterr().err == ""


def test_a_disk_that_fills_during_the_build_is_one_clear_error_and_leaves_nothing(
    tmp_path, monkeypatch
):
    root = write_kaggle(tmp_path / "k")
    real_save = np.save

    def save_on_a_full_disk(path, array):
        if str(path).endswith("labels.npy"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(path, array)

    monkeypatch.setattr(pcam.cache.np, "save", save_on_a_full_disk)
    with pytest.raises(StorageError, match=r"no space left on the device of .* PCAM_CACHE_DIR"):
        load_split(root, "train", progress=False)
    folder = cache_folder(detect(root), "train")
    assert list(folder.parent.iterdir()) == []  # no cache and no staging folder
    monkeypatch.setattr(pcam.cache.np, "save", real_save)
    _, train = load_split(root, "train", progress=False)
    assert len(train) == 12 and json.loads((folder / "manifest.json").read_text())["count"] == 12
