"""``python -m pcam.prepare PATH``: check a data set and build its decode-once cache."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pcam.cli import command_parser
from pcam.errors import run_cli

EPILOG = """\
outputs:
  <cache-dir>/<data set>-<hash>/<split>/
      each split decoded: images.npy, ids.npy, labels.npy, manifest.json (last)
next:
  python -m search.run --data PATH --budget 2h   search it (the cache is reused)
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m pcam.prepare``."""
    parser = command_parser(
        prog="python -m pcam.prepare",
        description="Check a PCam data set and decode every split into the cache.",
        epilog=EPILOG,
    )
    parser.add_argument(
        "path",
        type=Path,
        metavar="PATH",
        help="Kaggle folder, PCam HDF5 folder or 0/ 1/ folders",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where caches go (default: $PCAM_CACHE_DIR, else ~/.cache/pcam-search)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pcam.data import load_split  # after parsing: --help answers without pandas
    from pcam.layouts import detect

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
