"""Memory over a long search (issue 14): recycled worker processes against one process and a
plain ``model.fit`` loop.

``python bench/bench_memory.py [--trials 300] [--checkpoints 10 100 300] [--backends ...]``
runs, per backend, the same short trials of the seed design (one epoch on ``--limit`` real
patches of ``--sample``, no pruning) three ways, each from a fresh process:

- recycled: ``python -m search.run`` as users run it, each process replaced by a fresh one
  after ``--recycle-after`` trials (the default, 20);
- one process: the same search with ``--recycle-after 0``, every trial in one process;
- plain loop (the baseline): build, ``model.fit`` for one epoch, ``clear_session()`` and
  ``gc.collect()``, in one process, on the same patches.

A search's resident memory is that of all its processes (the search and any children,
summed from ``/proc`` every half second); a search's trials are counted in its SQLite study.
Each checkpoint N reports the peak over the ``--recycle-after`` trials up to N, one whole
life of a recycled process, so every checkpoint sees the same phase of the recycling (a
process just replaced does not flatter the recycled arm, nor one about to be the others).
Target: the peak up to the last checkpoint within 10% of the peak up to the first, on every
backend. ``--arms`` picks which of the three run; ``--plain-fits N`` stops the plain loop after N
fits (on TensorFlow it grows by 50–65 MiB a fit: 300 would need 18–22 GiB), and its growth is then
read up to the last checkpoint it reached. Linux only (``/proc``). Output: a table on stdout and
``bench/results/bench_memory.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_SAMPLE, REPO, describe_machine, format_table, machine_info, write_results

from pcam.errors import run_cli

ARMS = ("plain", "one-process", "recycled")
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
POLL_SECONDS = 0.5

PLAIN_LOOP = """
import gc, json, os, sys
import keras
from pcam.data import load_training_data
from pcam.model import SEED_BASELINE, build

sample, limit, fits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = load_training_data(sample, limit=limit, progress=False)
x, y = data.train.images[data.train.indices], data.train.y  # the --limit patches
page = os.sysconf("SC_PAGE_SIZE")
for _ in range(fits):
    model = build(SEED_BASELINE)
    model.fit(x, y, batch_size=SEED_BASELINE.batch_size, epochs=1, verbose=0)
    del model
    keras.backend.clear_session()
    gc.collect()
    with open("/proc/self/statm") as statm:
        print(int(statm.read().split()[1]) * page / 2**20, flush=True)
"""


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MiB (0 for a finished one)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page / 2**20
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        pending += [int(child) for child in children]
    return total


def finished_trials(database: Path) -> int:
    """Complete and pruned trials in the study's SQLite file (0 before it exists)."""
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            (count,) = connection.execute(
                "SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')"
            ).fetchone()
        return count
    except sqlite3.OperationalError:  # the schema is still being created
        return 0


def seed_design_space(folder: Path) -> Path:
    """A ``--space`` file that fixes every searched value to the seed design's."""
    from search.space import seed_baseline_values

    def toml(value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return json.dumps(value)

    path = folder / "seed-only.toml"
    path.write_text("".join(f"{k} = {toml(v)}\n" for k, v in seed_baseline_values().items()))
    return path


def peaks_at(
    samples: list[tuple[int, float]], checkpoints: list[int], window: int
) -> dict[int, float]:
    """The peak resident memory over trials N−window+1…N for each checkpoint N: the samples
    taken while the study held N−window…N−1 finished trials (trial N was running then)."""
    return {
        n: max((rss for done, rss in samples if n - window <= done < n), default=float("nan"))
        for n in checkpoints
    }


def measure_search(
    sample: Path, backend: str, *, limit: int, trials: int, recycle_after: int, work: Path
) -> dict:
    """One ``search.run`` of ``trials`` seed-design trials, its memory sampled throughout."""
    folder = Path(tempfile.mkdtemp(prefix=f"{backend}-recycle{recycle_after}-", dir=work))
    database = folder / "memory.db"
    argv = [
        sys.executable, "-m", "search.run", "--data", str(sample), "--limit", str(limit),
        "--study", "memory", "--storage", f"sqlite:///{database}", "--trials", str(trials),
        "--max-epochs", "1", "--pruner", "none", "--no-priors", "--no-progress", "--no-report",
        "--space", str(seed_design_space(folder)), "--recycle-after", str(recycle_after),
    ]  # fmt: skip
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    log = folder / "search.log"
    started = time.monotonic()
    samples: list[tuple[int, float]] = []
    with log.open("w") as output:
        search = subprocess.Popen(argv, cwd=folder, env=env, stdout=output, stderr=output)
        while search.poll() is None:
            samples.append((finished_trials(database), tree_rss_mib(search.pid)))
            time.sleep(POLL_SECONDS)
    if search.returncode != 0:
        raise RuntimeError(f"{backend} search failed; see {log}:\n{log.read_text()[-3000:]}")
    return {"samples": samples, "wall_seconds": round(time.monotonic() - started, 1)}


def measure_plain_loop(sample: Path, backend: str, *, limit: int, fits: int) -> dict:
    """The baseline: ``fits`` plain build-fit-clear rounds in one process."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_LOOP, str(sample), str(limit), str(fits)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{backend} plain loop failed:\n{done.stderr[-3000:]}")
    rss = [float(line) for line in done.stdout.split()]
    # Read after fit k + 1, with k fits done before it: the same window as a search's sample
    # taken while its study held k finished trials.
    return {
        "samples": list(enumerate(rss)),
        "wall_seconds": round(time.monotonic() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[20, 100, 300])
    parser.add_argument("--limit", type=int, default=100, help="patches per trial (default 100)")
    parser.add_argument("--recycle-after", type=int, default=20)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=ARMS,
        default=list(ARMS),
        help="which of the three to run (default: all)",
    )
    parser.add_argument(
        "--plain-fits",
        type=int,
        default=None,
        help="fits of the plain loop (default: --trials); on TensorFlow it grows by 50-65 MiB "
        "a fit, so 300 would need ~18-22 GiB: cap it on a small machine",
    )
    args = parser.parse_args()
    if not args.sample.exists():
        parser.error(f"{args.sample}: no such data set; pass --sample PATH")
    window = args.recycle_after
    if window < 1 or any(n % window or n > args.trials for n in args.checkpoints):
        parser.error("--checkpoints must be multiples of --recycle-after (≥ 1), up to --trials")
    if not Path("/proc/self/statm").exists():
        parser.error("this benchmark reads /proc: Linux only")

    info = machine_info()
    print(f"machine: {describe_machine(info)}, commit {info['commit']}")
    checkpoints = sorted(args.checkpoints)
    results: dict = {"machine": info, "args": vars(args) | {"sample": str(args.sample)}}
    rows = []
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    os.environ.setdefault("PCAM_CACHE_DIR", str(work / "cache"))  # decoded once, shared
    for backend in args.backends:
        if importlib.util.find_spec(BACKEND_PACKAGES.get(backend, backend)) is None:
            print(f"note: {backend} is not installed; skipped")
            continue
        common = {"limit": args.limit}
        plain_fits = args.plain_fits or args.trials
        arms = [
            ("plain", "plain model.fit loop", measure_plain_loop, {"fits": plain_fits}),
            (
                "one-process",
                "search, one process",
                measure_search,
                {"trials": args.trials, "recycle_after": 0},
            ),
            (
                "recycled",
                f"search, --recycle-after {args.recycle_after}",
                measure_search,
                {"trials": args.trials, "recycle_after": args.recycle_after},
            ),
        ]
        arms = [arm[1:] for arm in arms if arm[0] in args.arms]
        results[backend] = {}
        for arm, measure, settings in arms:
            extra = {"work": work} if measure is measure_search else {}
            measured = measure(args.sample, backend, **common, **settings, **extra)
            peaks = peaks_at(measured["samples"], checkpoints, window)
            reached = [n for n in checkpoints if math.isfinite(peaks[n])]
            last_n = reached[-1]  # a capped plain loop stops short of the last checkpoint
            first, last = peaks[checkpoints[0]], peaks[last_n]
            growth = (last - first) / first
            results[backend][arm] = measured | {"peaks_mib": peaks, "growth": growth}
            rows.append(
                [
                    backend,
                    arm,
                    *(f"{peaks[n]:,.0f}" if math.isfinite(peaks[n]) else "—" for n in checkpoints),
                    f"{growth:+.1%}" + ("" if last_n == checkpoints[-1] else f" (to {last_n})"),
                    "yes" if growth <= 0.10 else "no",
                    f"{measured['wall_seconds'] / 60:.1f}",
                ]
            )
            print(f"{backend} / {arm}: {rows[-1][2:]}", flush=True)
    print(
        format_table(
            [
                "backend",
                "arm",
                *(f"peak MiB, trials {n - window + 1}–{n}" for n in checkpoints),
                "growth",
                "≤ 10%",
                "minutes",
            ],
            rows,
        )
    )
    print(f"wrote {write_results('bench_memory', results)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
