"""The rule that joins every pruner: a trial far below the incumbent stops at the first epoch a
pruner may judge; one inside the noise of the validation set runs on. Through Optuna's own
ask/report/should_prune, without training."""

from __future__ import annotations

import optuna
import pytest

from search.pruning import first_judged_epoch, make_pruner

MAX_EPOCHS = 12
INCUMBENT = [0.76, 0.83, 0.88, 0.90, 0.90, 0.91, 0.91, 0.91, 0.91, 0.91, 0.91, 0.92]


def _study(name: str, *, class_counts: bool = True) -> optuna.Study:
    """A study whose first trial (the incumbent) completed along ``INCUMBENT``."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(name, MAX_EPOCHS))
    if class_counts:
        study.set_user_attr("val_positives", 246)
        study.set_user_attr("val_patches", 600)
    trial = study.ask()
    for epoch, value in enumerate(INCUMBENT):
        trial.report(value, epoch)
    study.tell(trial, max(INCUMBENT))
    return study


def _pruned_at(study: optuna.Study, curve: list[float]) -> int | None:
    """The epoch count after which the trial following ``curve`` is pruned, or None."""
    trial = study.ask()
    for epoch, value in enumerate(curve):
        trial.report(value, epoch)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return epoch + 1
    study.tell(trial, max(curve))
    return None


def test_a_trial_far_below_the_incumbent_stops_at_the_first_judged_epoch():
    # the median rule alone waits for 3 finished trials: here only the new rule can prune
    far_below = [0.70, 0.78, 0.82, 0.83, 0.84, 0.84, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85]
    assert _pruned_at(_study("median"), far_below) == first_judged_epoch(MAX_EPOCHS)


def test_a_trial_inside_the_incumbent_s_noise_runs_on():
    # 0.02 below the incumbent at every epoch: inside its 95% margin on 600 patches
    close = [value - 0.02 for value in INCUMBENT]
    assert _pruned_at(_study("median"), close) is None
    # behind at the first judged epoch by less than the margin, then ahead
    slow_starter = [0.55, 0.70, 0.86, 0.88, 0.90, 0.91, 0.92, 0.92, 0.93, 0.93, 0.93, 0.93]
    assert _pruned_at(_study("median"), slow_starter) is None


def test_the_rule_waits_for_the_first_judged_epoch_and_for_class_counts():
    hopeless = [0.50] * MAX_EPOCHS
    first = first_judged_epoch(MAX_EPOCHS)
    study = _study("median")
    trial = study.ask()
    for epoch in range(first - 1):
        trial.report(hopeless[epoch], epoch)
        assert not trial.should_prune()
    assert _pruned_at(_study("median", class_counts=False), hopeless) is None


@pytest.mark.parametrize("name", ["hyperband", "median", "sha"])
def test_every_pruner_keeps_its_kind_and_gains_the_rule(name):
    pruner = make_pruner(name, MAX_EPOCHS)
    kinds = {
        "hyperband": optuna.pruners.HyperbandPruner,  # the sampler learns per bracket
        "median": optuna.pruners.MedianPruner,
        "sha": optuna.pruners.SuccessiveHalvingPruner,
    }
    assert isinstance(pruner, kinds[name])
    far_below = [0.60] * MAX_EPOCHS
    assert _pruned_at(_study(name), far_below) == first_judged_epoch(MAX_EPOCHS)
    assert _pruned_at(_study("none"), far_below) is None
