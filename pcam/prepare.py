"""``python -m pcam.prepare PATH``: check a data set and build its decode-once cache."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pcam.data import load_split
from pcam.errors import run_cli
from pcam.layouts import detect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pcam.prepare",
        description="Check a PCam data set and decode every split into the cache.",
    )
    parser.add_argument("path", type=Path, help="Kaggle folder, PCam HDF5 folder or 0/ 1/ folders")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $PCAM_CACHE_DIR")
    args = parser.parse_args(argv)
    layout = detect(args.path)
    print(f"found the {layout.describe()}", file=sys.stderr)
    for split in layout.split_names:
        started = time.perf_counter()
        _, cached = load_split(args.path, split, cache_root=args.cache_dir)
        labelled = cached.labels[cached.labels >= 0]
        balance = f", {labelled.mean():.1%} positive" if len(labelled) else ", unlabelled"
        print(
            f"{split}: {len(cached)} patches{balance}; cache {cached.folder} "
            f"({time.perf_counter() - started:.2f} s)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    run_cli(main)
