"""``--engine keras-tuner``: the same space, data and training, searched by KerasTuner.

KerasTuner's oracles (Hyperband, Bayesian optimisation, random search) pick the values;
``PcamHyperModel.build(hp)`` declares every dimension of ``search.space.SPACE`` as a KerasTuner
hyperparameter of the same name, range and scale, maps the values through
``params_from_values`` and builds with ``pcam.train.build_model``; ``fit`` trains through
``pcam.train.fit``, the Optuna engine's own loop: the same feed, the same exact validation AUC
(``val_auc``, KerasTuner's objective), the same failures.

Every finished KerasTuner trial is copied into the Optuna study the config names: params with
the distributions of ``search.space.suggest``, the validation AUC of every epoch, the best
epoch's AUC as its value, and the user attributes of ``search.record.TrialRecord``; the study
carries the provenance of ``search.study``. So ``search.report``, optuna-dashboard and
``search.submit`` read a KerasTuner study as they read an Optuna one. Trial 0 of every study
is the seed baseline, trained for ``--max-epochs``.

KerasTuner keeps its own state in ``studies/<study>/keras-tuner/`` and reloads it: running the
same command again resumes the search (random and Bayesian add trials up to ``--trials``;
Hyperband goes on from its bracket state), re-runs a trial that was interrupted under the same
KerasTuner id, and copies each KerasTuner trial into Optuna once (``keras_tuner_trial_id``).
Hyperband keeps each trial's best weights there (a promoted trial goes on from its parent's);
random search and Bayesian optimisation keep none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import optuna
from keras_tuner.engine.trial import TrialStatus
from optuna.trial import FrozenTrial, TrialState

from pcam.data import Subset, TrainingData
from pcam.errors import ConfigError, SetupError
from pcam.model import ModelParams
from pcam.runtime import CPU_DEFAULT, Runtime, resolve
from pcam.train import (
    VAL_AUC,
    TrainingDiverged,
    TrainResult,
    ValidationUnscored,
    build_model,
    fit,
    release_memory,
    settle_before_trials,
)
from search.config import SearchConfig
from search.console import describe_trial
from search.objective import is_out_of_memory
from search.priors import SEED_BASELINE_ROLE
from search.record import RECORD_ATTRS, TrialRecord
from search.space import SPACE, Dimension, params_from_values, seed_baseline_values, suggest
from search.study import data_changed, finished_trials, open_mirror_study

logger = logging.getLogger(__name__)

ENGINE = "keras-tuner"
OBJECTIVE = keras_tuner.Objective(VAL_AUC, "max")
PROJECT = "keras-tuner"  # the project folder inside studies/<study>/
RECORD_FILE = "pcam_trial.json"  # what one trial measured, beside KerasTuner's trial.json
SETTINGS_FILE = "pcam_settings.json"  # what the project was made with, checked on reload
HYPERBAND_FACTOR = 3  # as search.study's HyperbandPruner
BAYESIAN_RANDOM_TRIALS = 10  # random trials before the Gaussian process, as TPE's startup

StopWhen = Callable[[optuna.Study], bool]


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


@dataclass
class _Run:
    """What one ``run_keras_tuner`` call needs from trial to trial."""

    copy: OptunaCopy
    target_trials: int
    base_seed: int
    max_params: int
    deadline: float | None = None
    stop_when: StopWhen | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


class _EngineTuner:
    """Tuner mixin: seeds, the size limit, a record per trial and its copy into Optuna."""

    def __init__(self, oracle: keras_tuner.Oracle, *, run: _Run, **kwargs: Any) -> None:
        self.engine_run = run
        # keras_tuner.Tuner's, not Hyperband's __init__ (that one would make its own oracle).
        keras_tuner.Tuner.__init__(self, oracle=oracle, **kwargs)

    def record_of(self, trial_id: str) -> dict[str, Any]:
        if trial_id not in self.engine_run.records:
            path = Path(self.get_trial_dir(trial_id)) / RECORD_FILE
            self.engine_run.records[trial_id] = (
                json.loads(path.read_text()) if path.is_file() else {}
            )
        return self.engine_run.records[trial_id]

    def pre_create_trial(self) -> None:
        oracle = self.oracle
        failed = sum(
            oracle.trials[trial_id].status == TrialStatus.FAILED
            and "prune_reason" not in self.record_of(trial_id)
            for trial_id in oracle.end_order
        )
        oracle.max_trials = self.engine_run.target_trials + failed
        timed_out = (
            self.engine_run.deadline is not None and time.monotonic() >= self.engine_run.deadline
        )
        stop = self.engine_run.stop_when is not None and self.engine_run.stop_when(
            self.engine_run.copy.study
        )
        oracle.stop_requested = timed_out or stop

    def run_trial(self, trial: keras_tuner.engine.trial.Trial, *args: Any, **kwargs: Any):
        hp = trial.hyperparameters
        hypermodel: PcamHyperModel = self.hypermodel
        values = hypermodel.values(hp)
        params = params_from_values(values, max_epochs=hypermodel.max_epochs)
        if "tuner/epochs" in hp.values:  # Hyperband: the epochs this round trains to
            values["epochs"] = int(hp.values["tuner/epochs"])
        parent = hp.values.get("tuner/trial_id")
        # A promoted Hyperband trial starts from its parent's best epoch, not its last.
        from_epoch = int(self.record_of(parent).get("best_epoch", 0)) if parent else 0
        record: dict[str, Any] = {
            "keras_tuner_trial_id": str(trial.trial_id),
            "started": datetime.now().isoformat(),
            "values": values,
            "role": SEED_BASELINE_ROLE if self.oracle.start_order[:1] == [trial.trial_id] else None,
            "keras_tuner_parent_trial_id": parent,
            "initial_epoch": hp.values.get("tuner/initial_epoch") if parent else None,
        }
        measured = TrialRecord.start(
            params,
            runtime=hypermodel.runtime,
            training_seed=self.engine_run.base_seed + int(trial.trial_id),
        )
        record |= measured.user_attrs()
        hypermodel.seed = measured.training_seed
        hypermodel.last_fit = None
        try:
            if record["params_count"] > self.engine_run.max_params:
                record["prune_reason"] = (
                    f"model has {record['params_count']:,} weights, over --max-params "
                    f"{self.engine_run.max_params:,}"
                )
                raise keras_tuner.errors.FailedTrialError(record["prune_reason"])
            results = super().run_trial(trial, *args, **kwargs)
        except keras_tuner.errors.FailedTrialError as error:
            record.setdefault("fail_reason", str(error))
            raise
        except keras_tuner.errors.FatalError:
            raise
        except Exception as error:
            if not is_out_of_memory(error):  # a bug, not a bad trial: stop, as Optuna does
                raise keras_tuner.errors.FatalRuntimeError(
                    f"trial {trial.trial_id}: {type(error).__name__}: {error}"
                ) from error
            record["fail_reason"] = f"out of memory: {type(error).__name__}"
            raise keras_tuner.errors.FailedTrialError(record["fail_reason"]) from None
        finally:
            self._finish(trial.trial_id, record, measured, from_epoch)
        return results

    def _finish(
        self, trial_id: str, record: dict[str, Any], measured: TrialRecord, from_epoch: int
    ) -> None:
        fit = self.hypermodel.last_fit
        self.hypermodel.last_fit = None  # the model goes with the trial
        if fit is not None:
            record["val_auc"] = {from_epoch + i: auc for i, auc in enumerate(fit.val_auc)}
            measured.measure(fit, first_epoch=from_epoch)
            record |= measured.user_attrs()
        record["finished"] = datetime.now().isoformat()
        path = Path(self.get_trial_dir(trial_id)) / RECORD_FILE
        path.write_text(json.dumps(record, indent=1) + "\n")
        self.engine_run.records[trial_id] = record

    def on_trial_end(self, trial: keras_tuner.engine.trial.Trial) -> None:
        super().on_trial_end(trial)  # KerasTuner scores the trial and saves its state first
        self.copy_finished()

    def copy_finished(self) -> None:
        """Copy every ended KerasTuner trial that the Optuna study does not hold yet."""
        for trial_id in self.oracle.end_order:
            if str(trial_id) in self.engine_run.copy.copied:
                continue
            frozen = self.engine_run.copy.add(
                self.oracle.trials[trial_id], self.record_of(trial_id)
            )
            logger.info(describe_trial(frozen) + f"  [KerasTuner trial {trial_id}]")


class _WithoutCheckpoints(keras_tuner.Tuner):
    """Build and fit, without the weight checkpoint KerasTuner writes at every better epoch.

    Random search and Bayesian optimisation never read those checkpoints (they serve
    ``get_best_models``; ``search.submit`` retrains instead), and one of the seed model is
    tens of MB.
    """

    def run_trial(self, trial: keras_tuner.engine.trial.Trial, *args: Any, **kwargs: Any):
        hp = trial.hyperparameters
        release_memory()  # the previous trial's model and graph, as KerasTuner does
        model = self.hypermodel.build(hp)
        return self.hypermodel.fit(hp, model, *args, **kwargs)


class _Tuner(_EngineTuner, _WithoutCheckpoints):
    """Random search and Bayesian optimisation: the oracle picks, the tuner builds and fits."""


class _HyperbandTuner(_EngineTuner, keras_tuner.Hyperband):
    """KerasTuner's Hyperband: trains from ``initial_epoch`` on its parent's best weights."""


def open_tuner_study(config: SearchConfig, data: TrainingData) -> tuple[optuna.Study, bool]:
    """Create or resume the Optuna study that mirrors the search; True when resumed."""
    return open_mirror_study(config, data, check=lambda study: _check_engine(study, config))


def _check_engine(study: optuna.Study, config: SearchConfig) -> None:
    others = [t.number for t in study.trials if t.user_attrs.get("engine") != ENGINE]
    if others:
        raise ConfigError(
            f"study {config.study!r} holds {len(others)} trial(s) of the Optuna engine; a "
            "KerasTuner search needs a study of its own: pick a new --study"
        )
    project = project_dir(config)
    if study.trials and not (project / "oracle.json").is_file():
        raise ConfigError(
            f"study {config.study!r} holds {len(study.trials)} KerasTuner trial(s) but their "
            f"KerasTuner project {project} is missing; restore it, or pick a new --study"
        )


def project_dir(config: SearchConfig) -> Path:
    """``studies/<study>/keras-tuner``: KerasTuner's oracle, trials and checkpoints."""
    return config.output_dir / PROJECT


DATA_KEYS = ("data_fingerprint", "data_content", "validation", "validation_note")


def _check_project(config: SearchConfig, data: TrainingData) -> None:
    """Refuse to reload a KerasTuner project made with other settings; record them if new."""
    settings = {
        "tuner": config.tuner,
        "study_defining": config.study_defining(),
        "data_fingerprint": data.fingerprint,
        "data_content": data.content,
        "validation": data.validation,
        "validation_note": data.validation_note,
    }
    path = project_dir(config) / SETTINGS_FILE
    if path.is_file():
        then = json.loads(path.read_text())
        now = json.loads(json.dumps(settings))
        # Made before the space was recorded: it searched the default space, as the study
        # check (search.study) assumes too.
        then.get("study_defining", {}).setdefault(
            "search_space", now["study_defining"]["search_space"]
        )
        # The data set is judged as a study judges it (a copy with new file times is it).
        data_then = {key: then.pop(key) for key in DATA_KEYS if key in then}
        changed = data_changed(data_then, data)
        if changed or then != {k: v for k, v in now.items() if k not in DATA_KEYS}:
            raise ConfigError(
                f"{path.parent} was made with other settings ({changed or then}; now "
                f"{settings}); delete that folder to start over, or pick a new --study"
            )
        return
    if (project_dir(config) / "oracle.json").is_file():
        raise ConfigError(f"{path.parent} holds a KerasTuner project not made by search.run")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1) + "\n")


def run_keras_tuner(
    config: SearchConfig,
    data: TrainingData,
    *,
    study: optuna.Study | None = None,
    stop_when: StopWhen | None = None,
) -> optuna.Study:
    """Search with KerasTuner's ``config.tuner`` until the study holds ``config.trials``.

    Finished means complete, or pruned for ``--max-params``; failed trials do not count, as in
    the Optuna engine. ``--timeout`` and ``stop_when(study)`` are checked before each new
    trial. ``study`` is the one ``open_tuner_study`` returned, when the caller opened it.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if config.tuner == "bayesian":
        _require_bayesian_packages()
    if study is None:
        study, _ = open_tuner_study(config, data)
    runtime = resolve(
        precision=config.precision,
        jit_compile=config.jit_compile,
        val_batch_size=config.val_batch_size,
    )
    logger.info(f"KerasTuner {config.tuner}: {runtime.describe()}; project {project_dir(config)}")
    _check_project(config, data)
    run = _Run(
        copy=OptunaCopy(study, max_epochs=config.max_epochs),
        target_trials=config.trials,
        base_seed=config.seed,
        max_params=config.max_params,
        deadline=None if config.timeout is None else time.monotonic() + config.timeout,
        stop_when=stop_when,
    )
    hypermodel = PcamHyperModel(config.max_epochs, runtime=runtime, train_size=len(data.train))
    oracle = make_oracle(
        config.tuner, max_epochs=config.max_epochs, seed=config.seed, trials=config.trials
    )
    tuner_class = _HyperbandTuner if config.tuner == "hyperband" else _Tuner
    settle_before_trials()
    # KerasTuner prints to stdout; stdout is kept for the closing summary.
    with contextlib.redirect_stdout(sys.stderr):
        tuner = tuner_class(
            oracle,
            run=run,
            hypermodel=hypermodel,
            directory=str(config.output_dir),
            project_name=PROJECT,
            overwrite=False,
        )
        tuner.copy_finished()  # a trial that ended just before an interruption
        if finished_trials(study) >= config.trials:
            logger.info(
                f"study {config.study!r} already has {finished_trials(study)} finished trials; "
                "raise --trials to add"
            )
            return study
        with warnings.catch_warnings():
            # A promoted Hyperband trial loads its parent's weights into a model whose
            # optimizer starts afresh, as KerasTuner intends; Keras warns about it each time.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            tuner.search(data.train, data.val, verbose=0)
    return study


def _require_bayesian_packages() -> None:
    try:
        import scipy  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise SetupError(
            "--tuner bayesian needs scikit-learn and scipy: pip install scikit-learn"
        ) from None
