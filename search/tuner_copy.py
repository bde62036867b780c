"""The copy of finished KerasTuner trials into the Optuna study the config names.

Each trial gets the params with the distributions of ``search.space.suggest``, the validation
AUC of every epoch, the best epoch's AUC as its value and the user attributes of
``search.record.TrialRecord``, so ``search.report``, optuna-dashboard and ``search.submit`` read
a KerasTuner study as they read an Optuna one. ``keras_tuner_trial_id`` keeps each KerasTuner
trial from being copied twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import keras_tuner
import optuna
from keras_tuner.engine.trial import TrialStatus
from optuna.trial import FrozenTrial, TrialState

from search.record import RECORD_ATTRS
from search.space import suggest
from search.tuner_model import PcamHyperModel

ENGINE = "keras-tuner"  # the "engine" user attribute of every copied trial


class OptunaCopy:
    """Copies finished KerasTuner trials into an Optuna study, each one once."""

    def __init__(self, study: optuna.Study, *, max_epochs: int) -> None:
        self.study = study
        self.max_epochs = max_epochs
        self.copied = {
            str(t.user_attrs["keras_tuner_trial_id"])
            for t in study.get_trials(deepcopy=False)
            if "keras_tuner_trial_id" in t.user_attrs
        }

    def add(self, trial: keras_tuner.engine.trial.Trial, record: dict[str, Any]) -> FrozenTrial:
        values = record.get("values")
        if values is None:  # no record (should not happen): the values KerasTuner kept
            values = PcamHyperModel(self.max_epochs).values(trial.hyperparameters.copy())
        fixed = optuna.trial.FixedTrial(values)
        suggest(fixed, max_epochs=self.max_epochs)  # the Optuna engine's own distributions
        state, value = _optuna_state(trial, record)
        frozen = optuna.trial.create_trial(
            state=state,
            value=value,
            params=fixed.params,
            distributions=fixed.distributions,
            user_attrs=_user_attrs(trial, record),
            intermediate_values={
                int(step): float(auc) for step, auc in record.get("val_auc", {}).items()
            },
        )
        if "started" in record:
            frozen.datetime_start = datetime.fromisoformat(record["started"])
            frozen.datetime_complete = datetime.fromisoformat(record["finished"])
        self.study.add_trial(frozen)
        self.copied.add(str(trial.trial_id))
        return self.study.get_trials(deepcopy=False)[-1]


def _optuna_state(
    trial: keras_tuner.engine.trial.Trial, record: dict[str, Any]
) -> tuple[TrialState, float | None]:
    if trial.status == TrialStatus.COMPLETED and trial.score is not None:
        return TrialState.COMPLETE, float(trial.score)
    if "prune_reason" in record:  # over --max-params: pruned, as the Optuna engine does
        return TrialState.PRUNED, None
    return TrialState.FAIL, None


def _user_attrs(trial: keras_tuner.engine.trial.Trial, record: dict[str, Any]) -> dict[str, Any]:
    kept = (
        *RECORD_ATTRS,
        "role",
        "prune_reason",
        "fail_reason",
        "keras_tuner_parent_trial_id",
        "initial_epoch",
    )
    attrs = {key: record[key] for key in kept if record.get(key) is not None}
    if trial.status != TrialStatus.COMPLETED and "prune_reason" not in attrs:
        attrs.setdefault("fail_reason", _last_line(trial.message) or "failed in KerasTuner")
    return attrs | {"engine": ENGINE, "keras_tuner_trial_id": str(trial.trial_id)}


def _last_line(message: str | None) -> str:
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
