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

The parts: ``search.tuner_model`` holds the hypermodel, ``search.tuner_oracles`` the oracles
(the seed baseline first), ``search.tuner_copy`` the copy into Optuna; this module holds the
tuners, the checks of the study and of the KerasTuner project, and the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import keras_tuner
import optuna
from keras_tuner.engine.trial import TrialStatus

from pcam.data import TrainingData
from pcam.errors import ConfigError, SetupError
from pcam.runtime import resolve
from pcam.train import release_memory, settle_before_trials
from search.config import SearchConfig
from search.console import describe_trial
from search.objective import is_out_of_memory
from search.priors import SEED_BASELINE_ROLE
from search.record import TrialRecord
from search.space import params_from_values
from search.study import data_changed, finished_trials, open_mirror_study
from search.tuner_copy import ENGINE, OptunaCopy
from search.tuner_model import PcamHyperModel
from search.tuner_oracles import make_oracle

logger = logging.getLogger(__name__)

PROJECT = "keras-tuner"  # the project folder inside studies/<study>/
RECORD_FILE = "pcam_trial.json"  # what one trial measured, beside KerasTuner's trial.json
SETTINGS_FILE = "pcam_settings.json"  # what the project was made with, checked on reload

StopWhen = Callable[[optuna.Study], bool]


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

    @classmethod
    def start(
        cls, config: SearchConfig, study: optuna.Study, *, stop_when: StopWhen | None
    ) -> _Run:
        """The run of ``config`` into ``study``; ``--timeout`` counts from now."""
        return cls(
            copy=OptunaCopy(study, max_epochs=config.max_epochs),
            target_trials=config.trials,
            base_seed=config.seed,
            max_params=config.max_params,
            deadline=None if config.timeout is None else time.monotonic() + config.timeout,
            stop_when=stop_when,
        )


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
    run = _Run.start(config, study, stop_when=stop_when)
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
