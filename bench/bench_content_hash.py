"""What the cache's content hash costs: a cache build with it against the same build without.

``python bench/bench_content_hash.py [--patches 20000] [--rounds 5]`` generates a synthetic
Kaggle-layout set (once, in the cache folder), then builds its decode-once cache ``--rounds``
times each way on all cores, alternating which goes first: as ``pcam.cache`` does it (a
SHA-256 of the decoded pixels, ids and labels, taken while building, so that a study can
recognise a copy of its data set whose files have new times), and with that hash replaced by
a no-op, the build as it was before. Prints the median images/s of each, the range, and the
difference, with the machine; the JSON goes to ``bench/results/bench_content_hash.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import CpuWindow, describe_machine, machine_info, synthetic_set, write_results

import pcam.cache
from pcam.errors import run_cli
from pcam.layouts import detect, open_split


class _NoHash:
    """Stands in for ``hashlib.sha256()``: the build without the content hash."""

    def update(self, _data: bytes) -> None:
        pass

    def hexdigest(self) -> str:
        return "none"


def build_seconds(source: Any, folder: Path, *, hashed: bool) -> float:
    """One cache build of ``source`` into ``folder`` (removed after), in seconds."""
    real = hashlib.sha256
    if not hashed:
        pcam.cache.hashlib.sha256 = lambda *_: _NoHash()  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        pcam.cache._build(source, folder, workers=None, progress=False)
        return time.perf_counter() - started
    finally:
        pcam.cache.hashlib.sha256 = real  # type: ignore[assignment]
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patches", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    source = open_split(detect(synthetic_set(args.patches)), "train")
    info = machine_info(with_keras=False)
    seconds: dict[str, list[float]] = {"with the content hash": [], "without (the old build)": []}
    with tempfile.TemporaryDirectory() as scratch, CpuWindow() as window:
        for round_ in range(args.rounds):
            order = list(seconds) if round_ % 2 == 0 else list(reversed(seconds))
            for name in order:
                folder = Path(scratch) / f"build-{round_}"
                hashed = name.startswith("with ")
                seconds[name].append(build_seconds(source, folder, hashed=hashed))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    hashed, plain = medians.values()
    print(f"cache build of {len(source):,} synthetic patches, {args.rounds} rounds each way")
    for name, values in seconds.items():
        print(
            f"  {name}: {len(source) / medians[name]:,.0f} img/s "
            f"(median {medians[name]:.2f} s; {min(values):.2f}–{max(values):.2f} s)"
        )
    print(f"  the hash costs {hashed / plain - 1:+.1%} of the build's time")
    print(f"machine: {describe_machine(info)}; other work {window.other_cores:.2f} cores")
    write_results(
        "bench_content_hash",
        {
            "machine": info,
            "patches": len(source),
            "seconds": seconds,
            "images_per_second": {name: len(source) / m for name, m in medians.items()},
            "relative_cost": hashed / plain - 1,
            "busy_elsewhere_cores": round(window.other_cores, 2),
        },
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
