"""The KerasTuner oracles of ``--tuner``: Hyperband, Bayesian optimisation, random search.

Each one proposes the seed baseline as its first trial and stops when asked
(``stop_requested``), so the run can end a search on ``--timeout`` or ``stop_when``.
"""

from __future__ import annotations

from typing import Any

import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from pcam.errors import ConfigError
from pcam.train import VAL_AUC
from search.space import seed_baseline_values

OBJECTIVE = keras_tuner.Objective(VAL_AUC, "max")
HYPERBAND_FACTOR = 3  # as search.study's HyperbandPruner
BAYESIAN_RANDOM_TRIALS = 10  # random trials before the Gaussian process, as TPE's startup


class _SeedBaselineFirst:
    """Oracle mixin: the first trial is the seed baseline; ``stop_requested`` ends the search."""

    seed_values: dict[str, Any]
    stop_requested: bool = False

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        if self.stop_requested:
            return {"status": TrialStatus.STOPPED, "values": None}
        if not self.trials:
            return {"status": TrialStatus.RUNNING, "values": dict(self.seed_values)}
        return super().populate_space(trial_id)


class _RandomOracle(_SeedBaselineFirst, keras_tuner.oracles.RandomSearchOracle):
    pass


class _BayesianOracle(_SeedBaselineFirst, keras_tuner.oracles.BayesianOptimizationOracle):
    pass


class _HyperbandOracle(_SeedBaselineFirst, keras_tuner.oracles.HyperbandOracle):
    """The seed baseline runs outside the brackets, for all of ``max_epochs``."""


def make_oracle(tuner: str, *, max_epochs: int, seed: int, trials: int) -> keras_tuner.Oracle:
    """The oracle of ``--tuner``; KerasTuner treats seed 0 as unseeded, so it gets seed + 1."""
    common = {
        "objective": OBJECTIVE,
        "seed": seed + 1,
        # As in the Optuna engine, a failed trial (diverged, out of memory) neither uses up
        # --trials nor stops the search, and an unexpected error stops it at once (run_trial).
        "max_consecutive_failed_trials": 10**9,
    }
    seed_values = seed_baseline_values()
    if tuner == "hyperband":
        oracle = _HyperbandOracle(
            max_epochs=max_epochs, factor=HYPERBAND_FACTOR, hyperband_iterations=None, **common
        )
        seed_values |= {"tuner/epochs": max_epochs, "tuner/initial_epoch": 0}
    elif tuner == "bayesian":
        oracle = _BayesianOracle(
            max_trials=trials, num_initial_points=BAYESIAN_RANDOM_TRIALS, **common
        )
    elif tuner == "random":
        oracle = _RandomOracle(max_trials=trials, **common)
    else:
        raise ConfigError(f"--tuner {tuner}: choose hyperband, bayesian or random")
    oracle.seed_values = seed_values
    return oracle
