"""bench/bench_pruning.py --in-order: a real study's sampled trials replayed, in the order they
ran, through the far-below rule and its stricter every-curve variant (no training)."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_pruning import in_order

SLOW_WINNER = [0.60, 0.70, 0.80, 0.85, 0.88, 0.90, 0.92, 0.93, 0.94, 0.95, 0.95, 0.95]
FAST_STARTER = [0.90] * 12
# behind the fast starter at the first judged epoch (3) by more than the noise, level with
# the slow winner there, and a tie of the best at the end
SLOW_CANDIDATE = [0.55, 0.60, 0.78, 0.80, 0.85, 0.88, 0.90, 0.92, 0.93, 0.94, 0.94, 0.94]


def test_the_stricter_variant_stops_a_slow_tie_that_the_rule_keeps():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="in-order", direction="maximize")
    study.set_user_attr("study_defining", {"max_epochs": 12})
    study.set_user_attr("val_positives", 246)
    study.set_user_attr("val_patches", 600)
    # created one after another: each starts (and completes) after the one before
    for curve, role in ((SLOW_WINNER, "prior"), (FAST_STARTER, "prior"), (SLOW_CANDIDATE, None)):
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE,
                value=max(curve),
                intermediate_values=dict(enumerate(curve)),
                user_attrs={"role": role} if role else {"seconds_per_epoch": 60.0},
            )
        )
    (row,) = in_order(study)
    assert row["trial"] == 2 and row["winner"]  # 0.94 lies inside 0.95's interval
    assert row["rule"] is None  # level with the incumbent's curve at every epoch
    assert row["every_curve"] == 3  # the fast starter's 0.90 sets the bar at epoch 3
