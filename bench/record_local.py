"""Queues perturbations of the best prior into the curve-recording study: draws near what works.

Random draws over the space's 19 dimensions are too sparse for ``bench_replay.py``'s
nearest-neighbour surrogate to answer a local phase: a perturbation of the incumbent (one to
three of its values moved) lands on an unrelated recorded curve. This enqueues ``COUNT`` such
perturbations of the study's best whole prior, drawn by the replay's own rule
(``bench_replay.perturb``, seeded), with the role ``local``; ``bench/record_curves.sh`` then
trains them first, whole, like every recorded trial, and ``bench_replay.py --export`` keeps
them as sampled trials marked local. What they score is also the evidence issue 26 asks for
when the priors win: whether the best prior is the best of its own neighbourhood.

    python bench/record_local.py 10 && bench/record_curves.sh &
"""

from __future__ import annotations

import argparse

import numpy as np
import optuna
from bench_replay import LOCAL_ROLE, perturb
from optuna.trial import TrialState

from search.priors import PRIOR_ROLE
from search.storage import sqlite_file

STORAGE = "sqlite:///bench/results/curves/curves.db"
STUDY = "curves-4ca3ebab2526"


def enqueue_local(study: optuna.Study, count: int, *, seed: int) -> list[dict]:
    """``count`` perturbations of ``study``'s best complete prior, enqueued; a later call draws
    new ones (its generator also counts the local trials the study already has)."""
    priors = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("role") == PRIOR_ROLE
    ]
    if not priors:
        raise SystemExit(f"study {study.study_name!r}: no complete prior to perturb yet")
    best = max(priors, key=lambda t: t.value)
    done = sum(t.user_attrs.get("role") == LOCAL_ROLE for t in study.trials)
    rng = np.random.default_rng([seed, done])
    origin = f"{study.study_name}#{best.number}"
    queued = [perturb(best.params, rng) for _ in range(count)]
    for values in queued:
        study.enqueue_trial(values, user_attrs={"role": LOCAL_ROLE, "perturbs": origin})
    return queued


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, help="perturbations to enqueue")
    parser.add_argument("--storage", default=STORAGE)
    parser.add_argument("--study", default=STUDY)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"count {args.count}: enqueue at least one")
    database = sqlite_file(args.storage)
    if database is not None and not database.is_file():
        raise SystemExit(
            f"--storage {args.storage}: no such database; record with bench/record_curves.sh"
        )
    try:
        study = optuna.load_study(study_name=args.study, storage=args.storage)
    except KeyError:
        raise SystemExit(
            f"--study {args.study}: not in {args.storage}; record it first with "
            "bench/record_curves.sh"
        ) from None
    for values in enqueue_local(study, args.count, seed=args.seed):
        print(values)
    print(f"{args.count} perturbation(s) queued in {args.study}; bench/record_curves.sh runs them")


if __name__ == "__main__":
    main()
