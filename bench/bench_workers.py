"""Parallel workers against the study storage: trials per hour with 1 and 2 workers (issue 6).

``python bench/bench_workers.py [--trials 12] [--workers 1 2] [--overhead-trials 100]
[--postgres URL]`` measures, on tiny models where the storage rather than training is the
limit:

1. Trials per hour of ``python -m search.run --workers W`` for each W, on the local default
   (a SQLite file) and on PostgreSQL. The data is a synthetic set of 60 patches
   (``pcam.synth.generate(n_train=60, n_test=0, seed=0)``, made once per run in a temporary
   folder); each search uses ``--max-epochs 1 --limit 40 --max-params 20000 --heartbeat 5``,
   so most sampled models are pruned for size before training and the rest train one epoch on
   32 patches. Each search runs as a subprocess in a fresh temporary folder (PostgreSQL: a
   fresh database, dropped afterwards). The study is read back: trials per hour is finished
   trials over the span of the trials (first ``datetime_start`` to last
   ``datetime_complete``), which leaves out TensorFlow's start-up; the process wall time,
   start-up included, is in the table too, with the median trial duration.
2. Storage overhead per trial: a bare ``study.optimize`` loop of ``--overhead-trials`` no-op
   trials that do to the storage what a harness trial does (claim a slot, suggest every
   dimension of ``search.space.SPACE``, set 10 user attributes, report one intermediate value
   and ask the pruner), with the harness's sampler (TPE) and pruner (Hyperband), on
   ``search.storage.make_storage(url, heartbeat=60)``. The same loop on Optuna's in-memory
   storage is the baseline: the difference is what the storage costs per trial.

PostgreSQL comes from ``--postgres URL`` or ``$PCAM_TEST_POSTGRES_URL`` (a server where the
user may ``CREATE DATABASE``; ``.ci/postgres.sh`` starts a throwaway one); without either it is
skipped with a note. Output: a table on stdout and ``bench/results/bench_workers.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import optuna
from common import REPO, CpuWindow, describe_machine, format_table, machine_info, write_results
from optuna.trial import TrialState

from pcam.synth import generate
from search.objective import claims_a_slot
from search.pruning import make_pruner
from search.space import SPACE, suggest
from search.storage import make_storage
from search.study import FINISHED, make_sampler

SEARCH_FLAGS = (
    "--max-epochs", "1", "--limit", "40", "--max-params", "20000",
    "--no-progress", "--no-report", "--heartbeat", "5",
)  # fmt: skip
USER_ATTRS = 10


# --- PostgreSQL: a fresh database per measurement ---------------------------------------------


@contextlib.contextmanager
def fresh_database(base_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``base_url``; dropped on exit."""
    import sqlalchemy

    name = f"bench_workers_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    url = sqlalchemy.engine.make_url(base_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as connection:
                connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        except Exception as error:  # a leftover empty database is not worth failing the bench
            print(f"note: could not drop database {name}: {error}", file=sys.stderr)
        admin.dispose()


@contextlib.contextmanager
def storage_url(kind: str, postgres: str | None, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'studies' / 'bench.db'}"  # where the default would put it
    else:
        assert postgres is not None
        with fresh_database(postgres) as url:
            yield url


def check_postgres(url: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as error:
        raise SystemExit(f"PostgreSQL at {url} cannot be reached: {error}") from None
    finally:
        engine.dispose()


# --- 1. trials per hour of the real harness ----------------------------------------------------


def read_study(url: str, study_name: str) -> dict[str, Any]:
    """Trials per hour over the span of the finished trials, and how they ended."""
    storage = optuna.storages.RDBStorage(url)
    try:
        trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
    finally:
        storage.engine.dispose()
    finished = [
        t for t in trials if t.state in FINISHED and t.datetime_start and t.datetime_complete
    ]
    states = {state.name.lower(): 0 for state in TrialState}
    for trial in trials:
        states[trial.state.name.lower()] += 1
    if not finished:
        return {"finished": 0, "states": states}
    span = (
        max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)
    ).total_seconds()
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in finished]
    trained = [t for t in finished if t.intermediate_values]
    return {
        "finished": len(finished),
        "trained": len(trained),
        "pruned_for_size": sum(
            "over --max-params" in t.user_attrs.get("prune_reason", "") for t in finished
        ),
        "states": states,
        "workers_seen": len({t.user_attrs.get("worker") for t in finished}),
        "trial_span_seconds": round(span, 2),
        "trials_per_hour": round(len(finished) / span * 3600, 1) if span > 0 else None,
        "median_trial_seconds": round(statistics.median(durations), 3),
        "median_trained_trial_seconds": (
            round(
                statistics.median(
                    (t.datetime_complete - t.datetime_start).total_seconds() for t in trained
                ),
                3,
            )
            if trained
            else None
        ),
    }


def run_search(
    kind: str, workers: int, *, data: Path, trials: int, postgres: str | None, timeout: float
) -> dict[str, Any]:
    """One ``python -m search.run`` in a fresh folder and storage, timed, its study read back."""
    study = f"bench-{kind}-{workers}w"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with (
        tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp,
        storage_url(kind, postgres, Path(tmp)) as url,
    ):
        argv = [
            sys.executable, "-m", "search.run", "--data", str(data), "--study", study,
            "--storage", url, "--trials", str(trials), "--workers", str(workers), *SEARCH_FLAGS,
        ]  # fmt: skip
        log_path = Path(tmp) / "search.log"
        window = CpuWindow()
        with log_path.open("w") as log, window:
            process = subprocess.Popen(argv, cwd=tmp, env=env, stdout=log, stderr=log)
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.terminate()  # SIGTERM: the parent stops its workers, trials end FAIL
                try:
                    returncode = process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    returncode = process.wait()
                print(f"note: {kind} with {workers} worker(s) ran past {timeout:.0f} s; stopped")
        result: dict[str, Any] = {
            "storage": kind,
            "workers": workers,
            "trials_asked": trials,
            "returncode": returncode,
            "process_wall_seconds": round(window.wall, 2),
            "busy_elsewhere_cores": round(window.other_cores, 2),
        }
        if returncode != 0:
            tail = log_path.read_text()[-2000:]
            print(f"note: {kind} with {workers} worker(s) exited {returncode}:\n{tail}")
            result["log_tail"] = tail
        try:
            result.update(read_study(url, study))
        except Exception as error:  # a search that failed before creating its study
            result["error"] = f"{type(error).__name__}: {error}"
        return result


# --- 2. storage overhead per trial --------------------------------------------------------------


def no_op_objective(target: int):
    """What a harness trial does to the storage, without the training."""

    def objective(trial: optuna.Trial) -> float:
        claims_a_slot(trial, target)
        suggest(trial, max_epochs=1)
        for index in range(USER_ATTRS):
            trial.set_user_attr(f"attr_{index}", index * 1.5)
        trial.report(0.5, step=0)
        trial.should_prune()
        return 0.5

    return objective


def time_no_op_loop(kind: str, *, trials: int, postgres: str | None) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        storage: optuna.storages.BaseStorage | None = None
        if kind != "in-memory":
            url = stack.enter_context(storage_url(kind, postgres, Path(tmp)))
            storage = make_storage(url, heartbeat=60)
        study = optuna.create_study(
            study_name="overhead",
            storage=storage,
            direction="maximize",
            sampler=make_sampler("tpe", 0),
            pruner=make_pruner("hyperband", 1),
        )
        window = CpuWindow()
        with window:
            study.optimize(no_op_objective(trials), n_trials=trials)
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        if isinstance(storage, optuna.storages.RDBStorage):
            storage.engine.dispose()
    return {
        "storage": kind,
        "trials": trials,
        "finished": finished,
        "seconds": round(window.wall, 3),
        "ms_per_trial": round(window.wall / trials * 1000, 2),
        "busy_elsewhere_cores": round(window.other_cores, 2),
    }


# --- the run ------------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = "") -> str:
    return "–" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="finished trials per search")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--overhead-trials", type=int, default=100)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("PCAM_TEST_POSTGRES_URL"),
        help="PostgreSQL server URL (default $PCAM_TEST_POSTGRES_URL); a database is made per run",
    )
    parser.add_argument("--timeout", type=float, default=180, help="seconds per search, at most")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="default bench/results/")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    info = machine_info()
    print(f"machine: {describe_machine(info)}, commit {info['commit']}")
    kinds = ["sqlite"]
    if args.postgres:
        check_postgres(args.postgres)
        kinds.append("postgresql")
    else:
        print("note: PostgreSQL skipped: set PCAM_TEST_POSTGRES_URL or pass --postgres URL")
    results: dict[str, Any] = {
        "machine": info,
        "settings": {
            "trials": args.trials,
            "workers": args.workers,
            "search_flags": list(SEARCH_FLAGS),
            "synthetic": {"n_train": 60, "n_test": 0, "seed": 0},
            "overhead_trials": args.overhead_trials,
        },
        "storages": kinds,
    }

    if not args.skip_search:
        with tempfile.TemporaryDirectory(prefix="bench-workers-data-") as tmp:
            data = generate(
                Path(tmp) / "synthetic-60", n_train=60, n_test=0, seed=0, workers=1, progress=False
            )
            runs = []
            for kind in kinds:
                for workers in args.workers:
                    print(
                        f"search: {kind}, {workers} worker(s), {args.trials} trials ...",
                        file=sys.stderr,
                    )
                    runs.append(
                        run_search(
                            kind,
                            workers,
                            data=data,
                            trials=args.trials,
                            postgres=args.postgres,
                            timeout=args.timeout,
                        )
                    )
        results["search"] = runs
        print(
            f"\n1. search.run on tiny models ({' '.join(SEARCH_FLAGS[:6])}), "
            f"{args.trials} trials per search:\n"
        )
        rows = [
            [
                run["storage"],
                str(run["workers"]),
                f"{run.get('finished', 0)} ({_fmt(run.get('trained'))} trained, "
                f"{run.get('states', {}).get('fail', 0)} failed)",
                _fmt(run.get("trials_per_hour"), ",.0f"),
                _fmt(run.get("median_trial_seconds"), ".2f"),
                _fmt(run.get("trial_span_seconds"), ".1f"),
                f"{run['process_wall_seconds']:.1f}",
                f"{run['busy_elsewhere_cores']:.2f}",
            ]
            for run in runs
        ]
        header = [
            "storage", "workers", "finished trials", "trials/hour", "median trial s",
            "trial span s", "process wall s", "busy elsewhere (cores)",
        ]  # fmt: skip
        print(format_table(header, rows))

    if not args.skip_overhead:
        loops = []
        for kind in ["in-memory", *kinds]:
            print(f"overhead: {kind}, {args.overhead_trials} no-op trials ...", file=sys.stderr)
            loops.append(time_no_op_loop(kind, trials=args.overhead_trials, postgres=args.postgres))
        baseline = loops[0]["ms_per_trial"]
        for loop in loops:
            loop["storage_ms_per_trial"] = round(loop["ms_per_trial"] - baseline, 2)
        results["overhead"] = loops
        print(
            f"\n2. storage overhead: {args.overhead_trials} no-op trials in one study.optimize "
            f"(slot check, {len(SPACE)} suggestions, {USER_ATTRS} user attrs, "
            "1 report + should_prune; TPE, Hyperband):\n"
        )
        rows = [
            [
                loop["storage"],
                f"{loop['ms_per_trial']:.1f}",
                "(baseline)" if loop is loops[0] else f"{loop['storage_ms_per_trial']:+.1f}",
                f"{loop['seconds']:.1f}",
                f"{loop['busy_elsewhere_cores']:.2f}",
            ]
            for loop in loops
        ]
        header = ["storage", "ms/trial", "storage ms/trial", "total s", "busy elsewhere (cores)"]
        print(format_table(header, rows))

    results["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    print(f"\nload average at end: {results['load_average_at_end'][0]}")
    print(f"wrote {write_results('bench_workers', results, args.json)}")


if __name__ == "__main__":
    main()
