"""``--workers N``: N worker processes on this machine share one study.

The parent has already built the data cache and created the study (a brand-new SQLite file
must not be created by several processes at once); each worker is ``python -m search.run``
with the same settings and ``--workers 1``, so it is exactly what a user starts by hand on
another machine. The parent shows the study's progress, forwards Ctrl-C and SIGTERM, and
waits for every worker to finish its trial.

Each worker runs in a session of its own, so a Ctrl-C at the terminal reaches the parent
alone, and each worker gets exactly one signal, the parent's: a second one landing while a
worker records its finished trial would leave that trial RUNNING until its heartbeat expires.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time

import optuna

from pcam.errors import Terminated, stop_signals_as_interrupts
from search.config import STARTED_ENV, SearchConfig
from search.console import progress_bar
from search.options import STORAGE_ENV
from search.storage import STORAGE_ERRORS
from search.study import finished_trials

logger = logging.getLogger(__name__)

# How long a stopped worker may take to mark its trial failed and exit before it is killed.
WORKER_STOP_SECONDS = 60


def worker_argv(config: SearchConfig, index: int) -> list[str]:
    """The command line of worker ``index``: this search's settings, one process, quiet."""
    worker = dataclasses.replace(
        config, workers=1, worker_index=index, progress=False, report=False
    )
    argv = [sys.executable, "-m", "search.run"]
    for option in worker.OPTIONS:
        if option.inherit:
            argv += option.argv(getattr(worker, option.name))
    return argv


def stop_workers(workers: list[subprocess.Popen], forwarded: signal.Signals) -> None:
    """Send each running worker ``forwarded`` once and wait for it; one still running after
    ``WORKER_STOP_SECONDS`` (a trial that hangs) is killed, its trial failed by the heartbeat."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(forwarded)
    deadline = time.monotonic() + WORKER_STOP_SECONDS
    for worker in workers:
        try:
            worker.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


class WorkersFailed(Exception):
    """Workers ended with an error before the study held its trials."""


def worker_environment(config: SearchConfig, *, began: float) -> dict[str, str]:
    """The environment of every worker: the storage URL (by environment, not argv, so that a
    password in it stays out of the process list) and when the search began (seconds since
    the epoch), which ``--budget`` and ``--timeout`` count from in every process alike."""
    return {**os.environ, STORAGE_ENV: config.storage_url, STARTED_ENV: repr(began)}


def supervise_workers(config: SearchConfig, study: optuna.Study, *, began: float) -> None:
    """Start the workers, show progress until they all exit; Ctrl-C stops them cleanly.

    A worker that dies is tolerated while the others fill the study (its trial is re-run);
    if the study ends short of ``--trials`` and a worker failed, ``WorkersFailed`` says so.
    ``began`` is when the command started: the workers' budget counts from it.
    """
    environment = worker_environment(config, began=began)
    workers = [
        subprocess.Popen(
            worker_argv(config, index),
            stdout=subprocess.DEVNULL,
            env=environment,
            start_new_session=True,  # the terminal's Ctrl-C is the parent's to forward, once
        )
        for index in range(1, config.workers + 1)
    ]
    logger.info(f"started {len(workers)} workers: pids {[w.pid for w in workers]}")
    bar = progress_bar(study, config, label=f" ({len(workers)} workers)")
    try:
        with bar, stop_signals_as_interrupts():
            while any(worker.poll() is None for worker in workers):
                time.sleep(1.0)
                with contextlib.suppress(*STORAGE_ERRORS):  # the workers ride an outage out
                    bar.n = finished_trials(study)
                bar.refresh()
    except KeyboardInterrupt as stop:
        # The workers get the signal the parent got, so their trials say which it was; more
        # Ctrl-Cs meanwhile would only cut the parent's wait short, so they are ignored.
        forwarded = signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stop_workers(workers, forwarded)
        finally:
            signal.signal(signal.SIGINT, previous)
        raise
    failed = {w.pid: w.returncode for w in workers if w.returncode not in (0, None)}
    if not failed:
        return
    described = ", ".join(f"pid {pid} (exit status {code})" for pid, code in failed.items())
    finished = finished_trials(study)
    if finished < config.trials:
        raise WorkersFailed(
            f"worker {described} ended with an error (see its output above) and study "
            f"{config.study!r} holds {finished} of {config.trials} finished trials; "
            "run the same command to resume it"
        )
    logger.warning(
        f"note: worker {described} ended with an error; the other workers finished the study"
    )
