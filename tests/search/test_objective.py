"""One trial: the monitored key exists, pruning reads it, bad trials end cleanly."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import keras
import numpy as np
import optuna
import pytest

from pcam.data import load_training_data
from pcam.feed import PatchFeed
from pcam.model import ModelParams
from pcam.runtime import Runtime
from pcam.train import VAL_AUC, TrainingDiverged, train
from search.objective import Objective, TrialFailed, is_out_of_memory
from search.pruning import make_pruner
from search.space import seed_baseline_values

SMALL = ModelParams(blocks=2, filters=(8, 16), dense_units=16, batch_size=8, epochs=2, crop=32)


@pytest.fixture
def data(tiny_synthetic):
    return load_training_data(tiny_synthetic, limit=40, progress=False)


@pytest.mark.slow
def test_monitored_key_is_in_the_history(data):
    """A misnamed metric silently disables pruning: the key every pruner reads must exist."""
    result = train(SMALL, data.train, data.val, seed=0)
    assert VAL_AUC in result.history and len(result.history[VAL_AUC]) == 2
    assert result.val_auc == result.history[VAL_AUC]
    assert 0.0 <= result.best_val_auc <= 1.0
    assert result.best_epoch in (1, 2)
    assert result.history[VAL_AUC][result.best_epoch - 1] == result.best_val_auc


def test_nan_loss_raises(data):
    # An infinite step sends the weights to inf or NaN at the first update on every CPU; a
    # merely huge one (1e9) can leave a finite, dead model where the float kernels differ.
    exploding = ModelParams(**{**SMALL.to_dict(), "optimizer": "sgd", "learning_rate": math.inf})
    with pytest.raises(TrainingDiverged, match="nan"):
        train(exploding, data.train, data.val, seed=0)


def _study_with(values: dict, pruner=None) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner or optuna.pruners.NopPruner())
    study.enqueue_trial(values)
    return study


def _small_values(**overrides) -> dict:
    return (
        seed_baseline_values()
        | {"blocks": 2, "base_filters": 16, "dense_units": 64, "crop": 32}
        | overrides
    )


@pytest.mark.slow
def test_objective_records_user_attrs_and_intermediate_values(data):
    study = _study_with(_small_values())
    study.optimize(Objective(data, max_epochs=2, max_params=10**7, seed=0), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == [0, 1]
    assert trial.value == max(trial.intermediate_values.values())
    for key in (
        "best_epoch",
        "epochs_run",
        "seconds_per_epoch",
        "images_per_second",
        "params_count",
    ):
        assert key in trial.user_attrs
    assert trial.user_attrs["training_seed"] == 0 + trial.number


@pytest.mark.slow
def test_objective_trains_with_its_runtime(data):
    """--precision and --jit-compile reach every trial's model, not only the summary line."""
    runtime = Runtime("auto", "CPU", "mixed_bfloat16", jit_compile=True, val_batch_size=7)
    study = _study_with(_small_values())
    try:
        objective = Objective(data, max_epochs=2, max_params=10**7, seed=0, runtime=runtime)
        study.optimize(objective, n_trials=1)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs
    assert trial.user_attrs["dtype_policy"] == "mixed_bfloat16"
    assert trial.user_attrs["jit_compile"] is True


@pytest.mark.filterwarnings("ignore:Fixed parameter")
@pytest.mark.slow
def test_diverging_trial_fails_with_reason_and_the_study_goes_on(tiny_synthetic):
    data = load_training_data(tiny_synthetic, progress=False)  # 96 patches: 3 steps of 32
    study = _study_with(_small_values(optimizer="sgd", learning_rate=math.inf, batch_size=32))
    study.enqueue_trial(_small_values())
    objective = Objective(data, max_epochs=2, max_params=10**7, seed=0)
    study.optimize(objective, n_trials=2, catch=(TrialFailed,))
    failed, ok = study.trials
    assert failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["fail_reason"].startswith("diverged")
    assert ok.state == optuna.trial.TrialState.COMPLETE


def test_out_of_memory_fails_the_trial_with_its_reason_and_the_study_goes_on(data, monkeypatch):
    """A training batch that cannot be allocated (a real MemoryError, from numpy, in the feed's
    worker thread; TensorFlow hands it on as ResourceExhaustedError) fails that trial, and the
    next trial trains."""
    getitem = PatchFeed.__getitem__
    refused = []

    def first_training_batch_out_of_memory(self, index):
        if self.shuffle and not refused:
            refused.append(index)
            np.empty(2**62, dtype=np.uint8)  # 4 EiB: refused at once, nothing is allocated
        return getitem(self, index)

    monkeypatch.setattr(PatchFeed, "__getitem__", first_training_batch_out_of_memory)
    study = _study_with(_small_values())
    study.enqueue_trial(_small_values())
    objective = Objective(data, max_epochs=2, max_params=10**7, seed=0)
    study.optimize(objective, n_trials=2, catch=(TrialFailed,))
    failed, ok = study.trials
    assert refused and failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["fail_reason"] in {
        "out of memory: MemoryError",  # JAX, PyTorch
        "out of memory: ResourceExhaustedError",  # TensorFlow
    }
    assert failed.intermediate_values == {}
    assert ok.state == optuna.trial.TrialState.COMPLETE
    assert sorted(ok.intermediate_values) == [0, 1]


def test_oversized_model_is_pruned_before_training(data):
    study = _study_with(seed_baseline_values())
    study.optimize(Objective(data, max_epochs=2, max_params=1000, seed=0), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert "over --max-params 1,000" in trial.user_attrs["prune_reason"]
    assert trial.intermediate_values == {}


@pytest.mark.parametrize("name", ["median", "hyperband", "sha"])
def test_pruner_prunes_a_clearly_worse_trial(name):
    """Through Optuna's own ask/report/should_prune, without training."""
    study = optuna.create_study(direction="maximize", pruner=make_pruner(name, max_epochs=9))
    for _ in range(6):
        trial = study.ask()
        for epoch in range(9):
            trial.report(0.9 + epoch * 0.001, step=epoch)
            trial.should_prune()  # rung-based pruners record each trial's rungs here
        study.tell(trial, 0.909)
    pruned_at = None
    for _ in range(3):  # Hyperband assigns trials to brackets; one of a few is checked early
        trial = study.ask()
        for epoch in range(9):
            trial.report(0.5, step=epoch)
            if trial.should_prune():
                pruned_at = epoch
                break
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        if pruned_at is not None:
            break
    assert pruned_at is not None and pruned_at < 8


def test_nop_pruner_never_prunes():
    study = optuna.create_study(direction="maximize", pruner=make_pruner("none", max_epochs=3))
    for value in (0.9, 0.9, 0.1):
        trial = study.ask()
        trial.report(value, step=0)
        assert not trial.should_prune()
        study.tell(trial, value)


FREED_SCRIPT = """
import gc, sys, weakref
import optuna
import pcam.train
from pcam.data import load_training_data
from search.objective import Objective
from search.space import seed_baseline_values

built = []
build = pcam.train.build

def watched_build(*args, **kwargs):
    model = build(*args, **kwargs)
    built.append(weakref.ref(model))
    return model

pcam.train.build = watched_build
optuna.logging.set_verbosity(optuna.logging.ERROR)
data = load_training_data(sys.argv[1], limit=40, progress=False)
objective = Objective(data, max_epochs=1, max_params=10**8, seed=0)
gc.disable()  # only the harness's own collections count
study = optuna.create_study(direction="maximize")
study.enqueue_trial(seed_baseline_values() | {"crop": 32, "base_filters": 16})
study.optimize(objective, n_trials=1)
print(study.trials[0].state.name, sum(ref() is not None for ref in built), len(built))
"""


@pytest.mark.slow
def test_a_trials_model_is_freed_when_the_trial_ends(tiny_synthetic):
    """One collection per trial, after the model is let go: none lives on into the next trial."""
    done = subprocess.run(
        [sys.executable, "-c", FREED_SCRIPT, str(tiny_synthetic)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == ["COMPLETE", "0", "1"]


@pytest.mark.slow
def test_the_seed_baseline_priors_and_warm_starts_run_their_whole_schedule(data):
    """A pruner that prunes every trial at every epoch stops a sampled trial after its first
    epoch, and none of the enqueued reference designs."""
    small = seed_baseline_values() | {
        "blocks": 2, "base_filters": 16, "dense_units": 64, "crop": 32, "batch_size": 32
    }  # fmt: skip
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(2.0))
    roles = ["seed_baseline", "prior", "warm_start", None]
    for role in roles:
        study.enqueue_trial(small, user_attrs={"role": role} if role else {})
    study.optimize(Objective(data, max_epochs=3, max_params=10**7, seed=0), n_trials=len(roles))
    for trial, role in zip(study.trials, roles, strict=True):
        if role is None:
            assert trial.state == optuna.trial.TrialState.PRUNED
            assert len(trial.intermediate_values) == 1
        else:
            assert trial.state == optuna.trial.TrialState.COMPLETE, role
            assert len(trial.intermediate_values) == 3, role


@pytest.mark.filterwarnings("ignore:Fixed parameter")
@pytest.mark.slow
def test_a_nan_validation_auc_fails_the_trial_with_its_reason_and_the_study_goes_on(data):
    """Validation patches of one class (a set handed in directly, past load_training_data's
    check) score NaN: the trial fails with why, and the next trial runs."""
    negative = data.val.y == 0
    negatives = data.val.indices[negative]
    one_class = dataclasses.replace(
        data, val=dataclasses.replace(data.val, indices=negatives, ids=data.val.ids[negative])
    )
    study = _study_with(_small_values(batch_size=32))
    study.enqueue_trial(_small_values(batch_size=32))
    unscored = Objective(one_class, max_epochs=2, max_params=10**7, seed=0)
    study.optimize(unscored, n_trials=1, catch=(TrialFailed,))
    study.optimize(Objective(data, max_epochs=2, max_params=10**7, seed=0), n_trials=1)
    failed, ok = study.trials
    assert failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["fail_reason"] == (
        f"unscored: validation AUC is NaN in epoch 1: the {len(negatives)} validation patches "
        "are not of both classes"
    )
    assert failed.intermediate_values == {}
    assert ok.state == optuna.trial.TrialState.COMPLETE


class ResourceExhaustedError(Exception):
    """Named like TensorFlow's tf.errors.ResourceExhaustedError, which is told by its name."""


def test_out_of_memory_is_told_by_type_and_whole_words():
    out_of_memory = [
        MemoryError(),
        ResourceExhaustedError("failed to allocate"),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("RESOURCE_EXHAUSTED: OOM when allocating tensor with shape[256,96,96,32]"),
    ]
    wrapped = ValueError("fit failed")
    wrapped.__cause__ = RuntimeError("Out of memory while trying to allocate 1.2GiB")
    out_of_memory.append(wrapped)
    other = [
        RuntimeError("no room left in the queue"),
        ValueError("zoom level must be positive"),
        KeyError("bloom filter"),
        RuntimeError("the model ran out of patience"),
    ]
    assert [is_out_of_memory(error) for error in out_of_memory] == [True] * len(out_of_memory)
    assert [is_out_of_memory(error) for error in other] == [False] * len(other)
