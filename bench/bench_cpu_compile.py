"""Compiled training steps (XLA) on a CPU with TensorFlow: what one epoch costs each way.

``pcam.runtime`` leaves compiled steps off for TensorFlow on a CPU (``--jit-compile auto``).
This measures that choice on real patches: the seed design and the hand recipe with stain
jitter (the first prior) each train ``--epochs`` epochs on ``--limit`` patches of the real
sample, steps compiled and not, one after the other in alternating order for ``--rounds``
rounds, same seed and data. Per run: the first epoch (build and compilation included), the
later epochs (validation included, as a search's epoch) and the validation AUC after each
epoch, so a speed-up that changed what the model learns would show.

    python bench/bench_cpu_compile.py            # about 15 minutes on 2 cores

Writes bench/results/bench_cpu_compile.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

from common import DEFAULT_SAMPLE, describe_machine, format_table, machine_info, write_results


def one_run(params, data, *, jit: str, epochs: int) -> dict[str, Any]:
    from pcam.runtime import resolve
    from pcam.train import release_memory, train

    runtime = resolve(jit_compile=jit)
    started = time.perf_counter()
    result = train(params, data.train, data.val, seed=0, epochs=epochs, runtime=runtime)
    wall = time.perf_counter() - started
    later = (result.seconds_per_epoch * result.epochs_run - result.first_epoch_seconds) / (
        result.epochs_run - 1
    )
    record = {
        "jit_compile": jit,
        "compiled": bool(result.model.jit_compile),
        "build_seconds": round(result.build_seconds, 2),
        "first_epoch_seconds": round(result.first_epoch_seconds, 2),
        "later_epoch_seconds": round(later, 2),
        "wall_seconds": round(wall, 1),
        "val_auc": [round(v, 4) for v in result.val_auc],
    }
    del result
    release_memory()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    parser.add_argument("--limit", type=int, default=1000, help="training + validation patches")
    parser.add_argument("--epochs", type=int, default=3, help="at least 2")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs: at least 2, so that an epoch after the first is timed")
    if not (args.sample / "train_labels.csv").is_file():
        parser.error(f"--sample {args.sample}: no train_labels.csv; pass the real PCam sample")

    from pcam.data import load_training_data
    from pcam.model import SEED_BASELINE
    from search.priors import PRIORS

    prior = {name: params for name, params, _ in PRIORS}

    info = machine_info()
    print(describe_machine(info), flush=True)
    data = load_training_data(args.sample, seed=0, limit=args.limit, progress=False)
    designs = {
        "seed design": SEED_BASELINE,
        "hand recipe + stain jitter": dataclasses.replace(prior["hand_recipe"], epochs=12),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in designs}
    for round_ in range(args.rounds):
        for name, params in designs.items():
            order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
            for jit in order:
                run = one_run(params, data, jit=jit, epochs=args.epochs)
                runs[name].append(run)
                print(f"round {round_ + 1}, {name}, compiled {jit}: {json.dumps(run)}", flush=True)

    rows = []
    for name, records in runs.items():
        by = {jit: [r for r in records if r["jit_compile"] == jit] for jit in ("off", "on")}
        later = {jit: statistics.median(r["later_epoch_seconds"] for r in by[jit]) for jit in by}
        first = {jit: statistics.median(r["first_epoch_seconds"] for r in by[jit]) for jit in by}
        final = {jit: statistics.median(r["val_auc"][-1] for r in by[jit]) for jit in by}
        rows.append([
            name,
            f"{later['off']:.1f} s", f"{later['on']:.1f} s", f"{later['off'] / later['on']:.2f}×",
            f"{first['off']:.1f} s", f"{first['on']:.1f} s",
            f"{final['off']:.4f} / {final['on']:.4f}",
        ])  # fmt: skip
    header = (
        "design",
        "later epoch, compiled off (median)",
        "compiled on",
        "speed-up",
        "first epoch, off",
        "first epoch, on",
        f"validation AUC after epoch {args.epochs}, off / on",
    )
    print(
        f"{len(data.train)} training / {len(data.val)} validation patches of {args.sample}, "
        f"{args.epochs} epochs a run, {args.rounds} rounds (order alternating)"
    )
    print(format_table(header, rows))
    write_results("bench_cpu_compile", {"machine": info, "args": vars(args), "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
