"""The KerasTuner hypermodel: ``search.space.SPACE`` as KerasTuner hyperparameters.

``PcamHyperModel.build(hp)`` declares every dimension of ``SPACE`` under the same name, range
and scale, maps the values through ``params_from_values`` and builds with
``pcam.train.build_model``; ``fit`` trains through ``pcam.train.fit``, the Optuna engine's own
loop, and reports ``val_auc``, KerasTuner's objective.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import keras_tuner

from pcam.data import Subset
from pcam.model import ModelParams
from pcam.runtime import CPU_DEFAULT, Runtime
from pcam.train import (
    VAL_AUC,
    TrainingDiverged,
    TrainResult,
    ValidationUnscored,
    build_model,
    fit,
)
from search.space import SPACE, Dimension, params_from_values


class PcamHyperModel(keras_tuner.HyperModel):
    """``SPACE`` as KerasTuner hyperparameters; builds and trains through ``pcam.train``.

    The tuner sets ``seed`` before each trial; ``build`` seeds Keras with it (after KerasTuner
    has cleared the session) and ``fit`` shuffles and augments with it. Epochs are the budget,
    never a hyperparameter: every model's schedule is planned for ``max_epochs`` epochs of
    ``train_size`` patches, and Hyperband's rounds train to their ``epochs`` on that schedule.
    """

    def __init__(
        self, max_epochs: int, *, runtime: Runtime = CPU_DEFAULT, train_size: int | None = None
    ) -> None:
        super().__init__(name="pcam_cnn")
        self.max_epochs = max_epochs
        self.runtime = runtime
        self.train_size = train_size
        self.seed = 0
        self.last_fit: TrainResult | None = None  # dropped once its trial is recorded
        self.last_build_seconds = math.nan

    def values(self, hp: keras_tuner.HyperParameters) -> dict[str, Any]:
        """Declare every ``SPACE`` dimension on ``hp``; its values, as ``SPACE`` types them."""
        return {dim.name: self._declare(hp, dim) for dim in SPACE}

    def _declare(self, hp: keras_tuner.HyperParameters, dim: Dimension) -> Any:
        if dim.choices is not None:
            chosen = hp.Choice(dim.name, list(dim.choices))
            return dim.choices[list(dim.choices).index(chosen)]  # KerasTuner stores bools as 0/1
        sampling = "log" if dim.log else "linear"
        if dim.integer:
            return hp.Int(dim.name, int(dim.low), int(dim.high), sampling=sampling)
        value = hp.Float(dim.name, dim.low, dim.high, sampling=sampling)
        return min(max(value, dim.low), dim.high)  # a log scale can round one ulp outside

    def params(self, hp: keras_tuner.HyperParameters) -> ModelParams:
        return params_from_values(self.values(hp), max_epochs=self.max_epochs)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        params = self.params(hp)
        model, self.last_build_seconds = build_model(
            params, self.train_size, seed=self.seed, runtime=self.runtime
        )
        return model

    def fit(
        self,
        hp: keras_tuner.HyperParameters,
        model: keras.Model,
        train_data: Subset,
        val_data: Subset,
        *,
        callbacks: list[keras.callbacks.Callback] | None = None,
        epochs: int | None = None,
        initial_epoch: int = 0,
        verbose: int = 0,
        **unused: Any,
    ) -> keras.callbacks.History:
        """Train from ``initial_epoch`` to ``epochs`` (Hyperband) or to the params' epochs,
        through ``pcam.train.fit`` as the Optuna engine does."""
        try:
            result = fit(
                model,
                self.params(hp),
                train_data,
                val_data,
                seed=self.seed,
                epochs=epochs,
                initial_epoch=initial_epoch,
                runtime=self.runtime,
                build_seconds=self.last_build_seconds,
                callbacks=callbacks,
                verbose=verbose,
            )
        except TrainingDiverged as error:
            raise keras_tuner.errors.FailedTrialError(f"diverged: {error}") from None
        except ValidationUnscored as error:
            raise keras_tuner.errors.FailedTrialError(f"unscored: {error}") from None
        if result.epochs_run and VAL_AUC not in result.history:
            raise keras_tuner.errors.FatalRuntimeError(
                f"{VAL_AUC!r} is missing from the epoch logs ({sorted(result.history)}): "
                "KerasTuner's objective would never be found"
            )
        self.last_fit = result
        # Keras' History of this fit (the callback sets it on the model after every epoch);
        # KerasTuner scores the trial from it.
        return model.history if result.epochs_run else keras.callbacks.History()
