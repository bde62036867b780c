"""Data-pipeline speed and memory, each against its baseline measured in the same run.

``python bench/bench_data.py [--synthetic N] [--sample PATH]`` measures, on the real Kaggle
sample and on a synthetic set of N patches (generated once into the cache folder, then reused):

1. building the decode-once cache (all cores) against a plain one-process PIL loop;
2. opening the built cache (``load_split`` a second time) and ``open_split`` alone;
3. the training feed's images/s against what the seed model consumes on this machine;
4. peak memory while building, in a fresh process, against the decoded data size.

Results print as a table and go to ``bench/results/bench_data.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    DEFAULT_SAMPLE,
    CpuWindow,
    describe_machine,
    format_table,
    machine_info,
    synthetic_set,
    write_results,
)
from PIL import Image

from pcam.augment import Augment
from pcam.cache import CachedSplit, cache_folder, load_or_build
from pcam.data import Subset, load_split
from pcam.errors import DataError, run_cli
from pcam.images import PATCH_SHAPE
from pcam.layouts import detect, open_split

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH = 64
AUGMENT = Augment(d8=True, hed_jitter=0.05)
OPEN_REPEATS = 5
MIB = 2**20


@dataclass(frozen=True)
class Row:
    """One line of the table: a measurement, the data it ran on, its baseline and the ratio."""

    measure: str
    data: str
    value: str
    baseline: str
    ratio: str
    busy_elsewhere: str


class PeakMemory:
    """Peak resident memory of this process, split into anonymous and file-backed, and children.

    RSS counts the cache's memory-mapped output pages too: they are page cache, which the kernel
    can write out and drop. ``RssAnon`` is the memory the process really owns. Peaks come from
    ``VmHWM`` and from sampling ``/proc/self/status``; ``ru_maxrss`` of RUSAGE_SELF is not used
    because a spawned process inherits its parent's peak across exec.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.start = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        self.peak = dict(self.start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @staticmethod
    def _status() -> dict[str, int]:
        values = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) * 1024
        return values

    def _poll(self) -> None:
        while not self._stop.is_set():
            for key, value in self._status().items():
                self.peak[key] = max(self.peak.get(key, 0), value)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.start = self._status()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for key, value in self._status().items():
            self.peak[key] = max(self.peak.get(key, 0), value)

    def report(self) -> dict[str, float]:
        # Forked children (the decoding workers) start with their parent's pages counted.
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        return {
            "rss_at_start_mib": self.start["VmRSS"] / MIB,
            "peak_rss_mib": self.peak["VmHWM"] / MIB,
            "anon_growth_mib": (self.peak["RssAnon"] - self.start["RssAnon"]) / MIB,
            "file_backed_growth_mib": (self.peak["RssFile"] - self.start["RssFile"]) / MIB,
            "largest_child_peak_rss_mib": children / MIB,
        }


def _probe_pil_loop(data: str) -> dict[str, Any]:
    """Baseline, in a fresh process: decode every file with PIL into one preallocated array."""
    source = open_split(detect(data), "train")
    with PeakMemory() as memory:
        started = time.perf_counter()
        images = np.empty((len(source), *PATCH_SHAPE), dtype=np.uint8)
        for row, path in enumerate(source.paths):
            with Image.open(path) as image:
                images[row] = np.asarray(image)
        seconds = time.perf_counter() - started
    return {"images": len(source), "seconds": seconds, **memory.report()}


def _probe_cache_build(data: str, cache_root: str, workers: int | None) -> dict[str, Any]:
    """In a fresh process: build the cache with ``load_or_build`` (None: all cores)."""
    layout = detect(data)
    source = open_split(layout, "train")
    folder = cache_folder(layout, "train", Path(cache_root))
    with PeakMemory() as memory:
        started = time.perf_counter()
        load_or_build(source, folder, workers=workers, progress=False)
        seconds = time.perf_counter() - started
    return {"images": len(source), "seconds": seconds, **memory.report()}


def _in_fresh_process(function: Callable[..., dict[str, Any]], *args: object) -> dict[str, Any]:
    """Run ``function`` in a new interpreter, so its peak memory is its own.

    Adds ``other_cores``: how busy the rest of the machine was meanwhile.
    """
    context = multiprocessing.get_context("spawn")
    with CpuWindow() as window, ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        result = pool.submit(function, *args).result()
    return {**result, "other_cores": window.other_cores}


def _seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _warm_page_cache(paths: tuple[Path, ...]) -> float:
    """Read every file once, so the baseline and the build both start from the page cache."""
    started = time.perf_counter()
    for path in paths:
        path.read_bytes()
    return time.perf_counter() - started


def measure_feed(split: CachedSplit, *, augment: Augment, max_batches: int) -> dict[str, Any]:
    """Images/s of ``PatchFeed`` (batch 64, shuffled) over the whole cached split."""
    from pcam.feed import PatchFeed

    subset = Subset(split.images, split.labels, np.arange(len(split)), split.ids)
    feed = PatchFeed(subset, batch_size=BATCH, shuffle=True, augment=augment, seed=0)
    batches = min(len(feed), max_batches)
    images = 0
    with CpuWindow() as window:
        for index in range(batches):
            pixels, _ = feed[index]
            images += len(pixels)
    return {
        "batches": batches,
        "images": images,
        "seconds": window.wall,
        "per_s": images / window.wall,
        "other_cores": window.other_cores,
    }


def measure_model(
    split: CachedSplit, *, batches: int, warmup: int = 3, rounds: int = 4
) -> dict[str, Any]:
    """Images/s the seed model trains at: ``fit`` on in-memory uint8, and through the feed.

    The two alternate in ``rounds`` (after a warm-up of each), so that a change in the load
    other people put on the machine hits both alike.
    """
    import keras

    from pcam.feed import PatchFeed
    from pcam.model import SEED_BASELINE, build

    keras.utils.set_random_seed(0)
    model = build(SEED_BASELINE)
    count = BATCH * (warmup + batches)
    if count > len(split):
        raise DataError(f"the model needs {count} patches; the split has {len(split)}")
    x = np.array(split.images[:count])
    y = split.labels[:count].astype(np.float32)

    def fit_in_memory(rows: np.ndarray) -> None:
        model.fit(x[rows], y[rows], batch_size=BATCH, epochs=1, verbose=0, shuffle=False)

    def fit_through_feed(rows: np.ndarray) -> None:
        subset = Subset(split.images, split.labels, rows, split.ids[rows])
        feed = PatchFeed(subset, batch_size=BATCH, shuffle=True, augment=AUGMENT, seed=0)
        model.fit(feed, epochs=1, verbose=0)

    warm_rows = np.arange(BATCH * warmup)
    fit_in_memory(warm_rows)  # traces and compiles the train step
    fit_through_feed(warm_rows)  # a feed's batches may trace it again
    in_memory, through_feed = CpuWindow(), CpuWindow()
    for rows in np.array_split(np.arange(BATCH * warmup, count), rounds):
        with in_memory:
            fit_in_memory(rows)
        with through_feed:
            fit_through_feed(rows)
    images = BATCH * batches
    return {
        "batches": batches,
        "images": images,
        "rounds": rounds,
        "jit_compile": bool(model.jit_compile),
        "in_memory_per_s": images / in_memory.wall,
        "in_memory_other_cores": in_memory.other_cores,
        "through_feed_per_s": images / through_feed.wall,
        "through_feed_other_cores": through_feed.other_cores,
    }


def bench_data_set(name: str, path: Path, cache_root: Path, *, feed_batches: int) -> dict:
    """Steps 1, 2, 3 (feed side) and 4 on one data set; returns the raw figures."""
    layout = detect(path)
    source = open_split(layout, "train")
    print(f"[{name}] {len(source)} files: warming the page cache", file=sys.stderr)
    warm_seconds = _warm_page_cache(source.paths)
    print(f"[{name}] plain PIL loop (fresh process)", file=sys.stderr)
    pil = _in_fresh_process(_probe_pil_loop, str(path))
    print(f"[{name}] cache build (fresh process, {os.cpu_count()} workers)", file=sys.stderr)
    build = _in_fresh_process(_probe_cache_build, str(path), str(cache_root), None)
    print(f"[{name}] cache build (fresh process, 1 worker)", file=sys.stderr)
    build_one = _in_fresh_process(_probe_cache_build, str(path), str(cache_root / "one-process"), 1)

    print(f"[{name}] opening the built cache", file=sys.stderr)

    def reopen() -> CachedSplit:
        return load_split(path, "train", cache_root=cache_root, progress=False)[1]

    split = reopen()
    open_times, listing_times = [], []
    with CpuWindow() as window:
        for _ in range(OPEN_REPEATS):  # interleaved, so that a burst of load hits both alike
            open_times.append(_seconds(reopen))
            listing_times.append(_seconds(lambda: open_split(detect(path), "train")))
    open_seconds = statistics.median(open_times)
    listing_seconds = statistics.median(listing_times)

    print(f"[{name}] feed", file=sys.stderr)
    feed = measure_feed(split, augment=AUGMENT, max_batches=feed_batches)
    feed_plain = measure_feed(split, augment=Augment(d8=False), max_batches=feed_batches)
    return {
        "name": name,
        "path": str(path),
        "images": len(source),
        "decoded_mib": len(source) * int(np.prod(PATCH_SHAPE)) / MIB,
        "page_cache_warm_seconds": warm_seconds,
        "pil_loop": pil,
        "cache_build": build,
        "cache_build_one_process": build_one,
        "load_split_seconds": open_seconds,
        "open_split_seconds": listing_seconds,
        "open_other_cores": window.other_cores,
        "feed_augmented": feed,
        "feed_plain": feed_plain,
        "split": split,
    }


def _busy(value: float, baseline: float | None = None) -> str:
    """The 'busy elsewhere' cell: cores other processes used during value (/ baseline)."""
    return f"{value:.1f}" if baseline is None else f"{value:.1f} / {baseline:.1f}"


def table_rows(results: list[dict], model: dict, model_data: str) -> list[Row]:
    """Turn the raw figures into the printed table."""
    rows = []
    workers = os.cpu_count()
    consumes = model["in_memory_per_s"]
    for result in results:
        data = f"{result['name']} ({result['images']:,})"
        pil, build, build_one = (
            result["pil_loop"],
            result["cache_build"],
            result["cache_build_one_process"],
        )
        pil_rate = pil["images"] / pil["seconds"]
        pil_text = f"PIL loop, 1 process: {pil_rate:,.0f} img/s ({pil['seconds']:.1f} s)"
        for label, run in ((f"{workers} workers", build), ("1 process", build_one)):
            rate = run["images"] / run["seconds"]
            rows.append(
                Row(
                    f"1. cache build, {label}",
                    data,
                    f"{rate:,.0f} img/s ({run['seconds']:.1f} s)",
                    pil_text,
                    f"×{rate / pil_rate:.2f}",
                    _busy(run["other_cores"], pil["other_cores"]),
                )
            )
        load_ms = result["load_split_seconds"] * 1000
        rows.append(
            Row(
                "2. cache open: load_split, 2nd call",
                data,
                f"{load_ms:,.0f} ms",
                f"decode every file (PIL loop): {pil['seconds']:.1f} s",
                f"×{pil['seconds'] * 1000 / load_ms:,.0f} faster",
                _busy(result["open_other_cores"], pil["other_cores"]),
            )
        )
        listing_ms = result["open_split_seconds"] * 1000
        rows.append(
            Row(
                "2. of which open_split (list + fingerprint)",
                data,
                f"{listing_ms:,.0f} ms",
                f"load_split: {load_ms:,.0f} ms",
                f"{listing_ms / load_ms:.0%} of it",
                _busy(result["open_other_cores"]),
            )
        )
        for label, feed in (
            ("3. feed, shuffle + d8 + HED 0.05", result["feed_augmented"]),
            ("3. feed, shuffle, no augmentation", result["feed_plain"]),
        ):
            rows.append(
                Row(
                    f"{label} ({feed['batches']} batches of {BATCH}, 1 thread)",
                    data,
                    f"{feed['per_s']:,.0f} img/s",
                    f"seed model trains: {consumes:,.1f} img/s",
                    f"×{feed['per_s'] / consumes:,.0f}",
                    _busy(feed["other_cores"], model["in_memory_other_cores"]),
                )
            )
        decoded = result["decoded_mib"]
        rows.append(
            Row(
                f"4. cache build ({workers} workers): peak RSS, main process",
                data,
                f"{build['peak_rss_mib']:,.0f} MiB (+{build['anon_growth_mib']:,.0f} anonymous, "
                f"+{build['file_backed_growth_mib']:,.0f} mapped output)",
                f"decoded data: {decoded:,.0f} MiB",
                f"anonymous growth {build['anon_growth_mib'] / decoded:.2f}",
                "—",
            )
        )
        rows.append(
            Row(
                f"4. cache build ({workers} workers): peak RSS, one worker",
                data,
                f"{build['largest_child_peak_rss_mib']:,.0f} MiB (incl. pages shared at fork)",
                f"decoded data: {decoded:,.0f} MiB",
                f"{build['largest_child_peak_rss_mib'] / decoded:.2f}",
                "—",
            )
        )
        rows.append(
            Row(
                "4. PIL loop into one array: peak RSS",
                data,
                f"{pil['peak_rss_mib']:,.0f} MiB (+{pil['anon_growth_mib']:,.0f} anonymous)",
                f"decoded data: {decoded:,.0f} MiB",
                f"anonymous growth {pil['anon_growth_mib'] / decoded:.2f}",
                "—",
            )
        )
    xla = "XLA on" if model["jit_compile"] else "XLA off"
    rows.append(
        Row(
            f"3. seed model fit, in-memory uint8 ({model['batches']} batches of {BATCH}, {xla})",
            model_data,
            f"{consumes:,.1f} img/s",
            "—",
            "—",
            _busy(model["in_memory_other_cores"]),
        )
    )
    rows.append(
        Row(
            "3. seed model fit through the augmented feed (same batches, alternating)",
            model_data,
            f"{model['through_feed_per_s']:,.1f} img/s",
            f"in-memory: {consumes:,.1f} img/s",
            f"{model['through_feed_per_s'] / consumes:.0%}",
            _busy(model["through_feed_other_cores"], model["in_memory_other_cores"]),
        )
    )
    return rows


def run(
    *,
    synthetic: int,
    sample: Path | None,
    feed_batches: int,
    model_batches: int,
    json_path: Path | None,
) -> dict[str, Any]:
    """Measure everything on the sample (if given) and the synthetic set; print and record."""
    machine = machine_info()
    data_sets = []
    if sample is not None:
        data_sets.append(("real sample", sample))
    if synthetic:
        data_sets.append(("synthetic", synthetic_set(synthetic)))
    if not data_sets:
        raise DataError("nothing to measure: no --sample and --synthetic 0")
    scratch = Path(tempfile.mkdtemp(prefix="pcam-bench-data-"))
    try:
        results = [
            bench_data_set(name, path, scratch / name.replace(" ", "-"), feed_batches=feed_batches)
            for name, path in data_sets
        ]
        first = results[0]
        print(f"[{first['name']}] seed model", file=sys.stderr)
        model = measure_model(first["split"], batches=model_batches)
        model_data = f"{first['name']} (in memory)"
        for result in results:
            del result["split"]  # release the memory map before its folder goes
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    machine["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    rows = table_rows(results, model, model_data)
    print()
    print(f"Machine: {describe_machine(machine)}; at end {machine['load_average_at_end'][0]}")
    print("Files were read once before timing (warm page cache) for both the build and its")
    print("baseline; each build and baseline ran in a fresh process.")
    print()
    print("'busy elsewhere': cores other processes kept busy during the value / the baseline.")
    print()
    header = ["measurement", "data", "value", "baseline (same run)", "ratio", "busy elsewhere"]
    print(format_table(header, [astuple(row) for row in rows]))
    payload = {
        "machine": machine,
        "settings": {
            "batch": BATCH,
            "augment": asdict(AUGMENT),
            "feed_batches": feed_batches,
            "model_batches": model_batches,
            "build_workers": os.cpu_count(),
            "open_repeats": OPEN_REPEATS,
        },
        "data_sets": results,
        "model": model,
        "table": [asdict(row) for row in rows],
    }
    written = write_results("bench_data", payload, json_path)
    print(f"\nwrote {written}")
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/bench_data.py",
        description="Cache build, cache open, feed speed and build memory, against baselines.",
    )
    parser.add_argument(
        "--synthetic",
        type=int,
        default=50_000,
        metavar="N",
        help="synthetic training patches, generated once and reused (default 50000; 0: skip)",
    )
    parser.add_argument(
        "--sample",
        type=Path,
        default=None,
        help=f"real Kaggle-layout sample (default {DEFAULT_SAMPLE}, skipped if missing)",
    )
    parser.add_argument("--no-sample", action="store_true", help="skip the real sample")
    parser.add_argument(
        "--feed-batches", type=int, default=300, help="cap on feed batches (default 300)"
    )
    parser.add_argument(
        "--model-batches", type=int, default=20, help="timed training batches (default 20)"
    )
    parser.add_argument("--json", type=Path, default=None, help="default bench/results/")
    args = parser.parse_args(argv)
    if args.synthetic != 0 and args.synthetic < 2:
        parser.error("--synthetic must be 0 (skip) or at least 2")
    if args.feed_batches < 1 or args.model_batches < 1:
        parser.error("--feed-batches and --model-batches must be positive")
    if args.no_sample and args.sample is not None:
        parser.error("--sample and --no-sample conflict")
    sample = args.sample
    if sample is None and not args.no_sample:
        if DEFAULT_SAMPLE.is_dir():
            sample = DEFAULT_SAMPLE
        else:
            print(f"note: no real sample at {DEFAULT_SAMPLE}; measuring synthetic data only")
    run(
        synthetic=args.synthetic,
        sample=sample,
        feed_batches=args.feed_batches,
        model_batches=args.model_batches,
        json_path=args.json,
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
