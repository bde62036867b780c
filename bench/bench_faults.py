"""Faults under a shared study (issue 14): workers killed at random, the database restarted.

``python bench/bench_faults.py --storage postgresql://user@host/db --restart-command CMD``
(defaults: ``$PCAM_TEST_POSTGRES_URL`` and ``$PCAM_TEST_POSTGRES_RESTART``, which
``.ci/postgres.sh`` exports) runs a search of ``--trials`` short trials as two machines would:
two ``python -m search.run --worker-index I`` processes on one PostgreSQL study. While they
run it kills a worker with SIGKILL ``--kills`` times at random moments (seeded), starting it
again at once as its operator would, and restarts the database server once, half-way. Then
it checks the study: exactly ``--trials`` finished trials, none RUNNING, no number twice, and
every finished trial with its per-epoch values and its attributes. It prints what it did, when,
and what it found; exit status 1 if a check failed. Output also in
``bench/results/bench_faults.json``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import DEFAULT_SAMPLE, REPO, describe_machine, machine_info, write_results

from pcam.errors import run_cli

# What every finished trial of the Optuna engine records (search/objective.py).
TRIAL_ATTRIBUTES = ("worker", "runtime", "params_count", "training_seed")


def worker_argv(args: argparse.Namespace, study: str, index: int) -> list[str]:
    return [
        sys.executable, "-m", "search.run", "--data", str(args.sample), "--limit",
        str(args.limit), "--study", study, "--trials", str(args.trials), "--max-epochs",
        str(args.max_epochs), "--max-trial-minutes", "1", "--heartbeat", "2",
        "--worker-index", str(index),
        "--no-progress", "--no-report",
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=os.environ.get("PCAM_TEST_POSTGRES_URL"))
    parser.add_argument("--restart-command", default=os.environ.get("PCAM_TEST_POSTGRES_RESTART"))
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--max-epochs", type=int, default=2)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.storage or not args.restart_command:
        parser.error(
            "give --storage URL and --restart-command CMD (or source .ci/postgres.sh, which "
            "exports PCAM_TEST_POSTGRES_URL and PCAM_TEST_POSTGRES_RESTART)"
        )
    if not args.sample.exists():
        parser.error(f"{args.sample}: no such data set; pass --sample PATH")

    import optuna
    from optuna.trial import TrialState

    from search.config import redacted

    info = machine_info()
    print(f"machine: {describe_machine(info)}, commit {info['commit']}")
    study = f"faults-{uuid.uuid4().hex[:8]}"
    print(
        f"study {study} on {redacted(args.storage)}: {args.trials} trials, 2 workers, "
        f"{args.kills} SIGKILLs at random moments (seed {args.seed}), one server restart"
    )
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PCAM_STORAGE": args.storage}
    env["PCAM_CACHE_DIR"] = env.get("PCAM_CACHE_DIR", str(work / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    logs = {index: (work / f"worker{index}.log").open("a") for index in (0, 1)}
    started = time.monotonic()
    events: list[dict] = []

    def event(what: str) -> None:
        at = time.monotonic() - started
        events.append({"seconds": round(at, 1), "event": what})
        print(f"{at:7.1f} s  {what}", flush=True)

    def start(index: int) -> subprocess.Popen:
        worker = subprocess.Popen(
            worker_argv(args, study, index),
            cwd=work,
            env=env,
            stdout=logs[index],
            stderr=subprocess.STDOUT,
        )
        event(f"worker {index} started (pid {worker.pid})")
        return worker

    def finished() -> int:
        try:
            trials = optuna.load_study(study_name=study, storage=args.storage).trials
        except Exception:  # not created yet, or the server is down
            return -1
        return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    workers = {0: start(0)}
    while finished() < 0:  # worker 0 creates the study; worker 1 joins it
        time.sleep(1)
    workers[1] = start(1)
    kills_left, restarted = args.kills, False
    exit_codes: dict[int, list[int]] = {0: [], 1: []}
    while any(worker.poll() is None for worker in workers.values()):
        time.sleep(rng.uniform(4, 15))
        done = finished()
        if not restarted and done >= args.trials // 2:
            event(f"restarting the database server ({done} trials finished)")
            subprocess.run(args.restart_command, shell=True, check=True, timeout=120)
            event("database server back")
            restarted = True
        elif kills_left and done < args.trials - 2:
            alive = [i for i, worker in workers.items() if worker.poll() is None]
            if alive:
                index = rng.choice(alive)
                os.kill(workers[index].pid, signal.SIGKILL)
                workers[index].wait()
                exit_codes[index].append(workers[index].returncode)
                event(f"SIGKILL to worker {index} ({done} trials finished)")
                kills_left -= 1
                workers[index] = start(index)
    for index, worker in workers.items():
        exit_codes[index].append(worker.wait())
    event("both workers exited")

    trials = optuna.load_study(study_name=study, storage=args.storage).trials
    finished_trials = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    numbers = [t.number for t in trials]
    incomplete = [
        t.number
        for t in finished_trials
        if not t.intermediate_values or any(name not in t.user_attrs for name in TRIAL_ATTRIBUTES)
    ]
    checks = {
        f"exactly {args.trials} finished trials": len(finished_trials) == args.trials,
        "none RUNNING": all(t.state != TrialState.RUNNING for t in trials),
        "no trial number twice": len(numbers) == len(set(numbers)),
        "every finished trial has its epochs and attributes": not incomplete,
        "each worker's last run exited 0": all(codes[-1] == 0 for codes in exit_codes.values()),
        "the server was restarted": restarted,
    }
    states = {state.name: sum(t.state == state for t in trials) for state in TrialState}
    print(f"found: {len(trials)} trials ({', '.join(f'{k} {v}' for k, v in states.items() if v)})")
    retried = sum("failed_trial" in t.system_attrs for t in trials)
    print(f"  {retried} trial(s) re-run after a killed worker's heartbeat expired")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    if incomplete:
        print(f"  trials without epochs or attributes: {incomplete}")
    print(f"  worker exit statuses (each run): {exit_codes}; logs in {work}")
    wall = time.monotonic() - started
    print(f"wall time {wall / 60:.1f} min")
    results = {
        "machine": info,
        "study": study,
        "storage": redacted(args.storage),
        "args": {k: str(v) for k, v in vars(args).items() if k != "restart_command"},
        "events": events,
        "states": states,
        "retried": retried,
        "checks": checks,
        "exit_codes": exit_codes,
        "wall_seconds": round(wall, 1),
    }
    print(f"wrote {write_results('bench_faults', results)}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    run_cli(main)
