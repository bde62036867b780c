"""Retrain the chosen trials of a study, export the model and write a Kaggle submission (the
library behind ``python -m search.submit``).

By default the submission averages the top complete trials that the validation set cannot
tell apart from the best (at most ``AUTO_ENSEMBLE``: those whose validation AUC lies inside
the best one's 95% interval): on 600 validation patches the best trial is partly the luckiest,
and averaging its statistical ties is robust to that. ``--trial N`` or ``--ensemble K`` choose
by hand. Each member is rebuilt from its recorded values through the same
``params_from_values`` the search used and retrained with a seed on training + validation data
(``--all``: on every labelled patch of the data set, whatever ``--limit`` the search used) on
the learning-rate schedule its trial ran — planned for the study's epoch budget, over as many
steps as the larger set takes — and stopped at the epoch where its validation AUC peaked. No
held-out data is left to pick weights by, so stopping where the trial peaked is the one choice
that reproduces what was measured. ``--draws N`` retrains each member N times, with seeds
``DRAW_SEED_STEP`` apart, and averages them all: two training seeds of one design differed by
0.009 AUC on unseen slides (bench/README.md), and a mean of draws varies less than one. The
model is exported to ``<out>/best/model.keras`` with ``model.json`` beside it, and the exported
file predicts the test split with test-time augmentation into ``<out>/submission.csv``. Both
are written aside and moved into place only when complete: a failed run leaves the previous
pair untouched and keeps the members it finished retraining (``search.refits``) for the same
command run again.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from pcam.augment import TTA_MODES
from pcam.cache import CachedSplit
from pcam.data import Subset, TrainingData, load_split, load_training_data
from pcam.errors import DISK_FULL, ConfigError, DataError, StorageError
from pcam.metrics import roc_auc
from pcam.publish import replace_folder
from pcam.runtime import Runtime, resolve
from search.config import STUDIES_DIR, default_storage_url
from search.dashboard import upload_outputs
from search.exported import (
    METADATA_FILE,
    MODEL_FILE,
    combine,
    export,
    load_exported,
    stage_predictions,
    whole_split,
)
from search.members import choose_trials, training_seed
from search.provenance import git_commit, package_versions
from search.refits import drop_refits, keep_refit, kept_refit, refit_key
from search.space import params_from_values
from search.study import data_changed, load_existing_study

logger = logging.getLogger(__name__)

if TYPE_CHECKING:  # Keras loads when a model is trained: --help answers without it
    import keras

FIT_ON = ("train+val", "train")
METADATA_FORMAT = 1
SUBMISSION_FILE = "submission.csv"
STUDY_RECORD = ("config", "study_defining", "data_source", "data_fingerprint")
DRAW_SEED_STEP = 10_000  # draw k of a member trains with its seed + k × this: no seed repeats


@dataclass(frozen=True)
class SubmitConfig:
    """Everything ``python -m search.submit`` was asked to do."""

    study: str = "pcam"
    storage: str | None = None
    data: str | None = None
    trial: int | None = None
    ensemble: int | None = None  # None: the statistical ties of the best, up to AUTO_ENSEMBLE
    tta: str = "d8"
    fit_on: str = "train+val"
    all_data: bool = False
    seed: int | None = None  # None: each member's own seed from the search
    draws: int = 1  # trainings of each member, averaged
    out: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        checks = [
            (bool(self.study.strip()), "--study must not be empty"),
            (
                self.ensemble is None or self.ensemble >= 1,
                f"--ensemble {self.ensemble}: must be at least 1",
            ),
            (self.draws >= 1, f"--draws {self.draws}: must be at least 1"),
            (
                self.trial is None or self.ensemble in (None, 1),
                f"--trial {self.trial} and --ensemble {self.ensemble} conflict: an ensemble "
                "takes the top trials; drop one of the two",
            ),
            (self.tta in TTA_MODES, f"--tta {self.tta}: choose from {', '.join(TTA_MODES)}"),
            (self.fit_on in FIT_ON, f"--fit-on {self.fit_on}: choose from {', '.join(FIT_ON)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def storage_url(self) -> str:
        """``--storage``, or the SQLite file ``search.run`` uses: ``studies/<study>.db``."""
        return self.storage or default_storage_url(self.study)

    @property
    def output_dir(self) -> Path:
        """``--out``, or ``studies/<study>``: the model goes to ``best/`` in it."""
        return Path(self.out) if self.out else STUDIES_DIR / self.study


@dataclass(frozen=True)
class SubmitOutcome:
    model_dir: Path
    submission: Path
    metadata: dict[str, Any]
    ids: np.ndarray
    probabilities: np.ndarray


def open_existing_study(config: SubmitConfig) -> optuna.Study:
    """Load a study that ``search.run`` made; never create one (or an empty SQLite file)."""
    study = load_existing_study(config.study, config.storage_url)
    missing = [key for key in STUDY_RECORD if key not in study.user_attrs]
    if missing:
        raise ConfigError(
            f"study {config.study!r} has no record of {', '.join(missing)}: it was not made by "
            "python -m search.run, so its data and split cannot be rebuilt"
        )
    return study


def load_study_data(
    study: optuna.Study, *, data: str | None = None, all_data: bool = False, progress: bool = True
) -> TrainingData:
    """The study's data set, split as in the search (``all_data``: without its ``--limit``);
    refused if its content has changed (new file times alone do not count)."""
    attrs = study.user_attrs
    settings = attrs["config"]
    path = data or attrs["data_source"]
    training = load_training_data(
        path,
        seed=attrs.get("split_seed", settings["seed"]),
        val_fraction=settings["val_fraction"],
        limit=None if all_data else settings["limit"],
        groups=settings.get("groups"),
        val_data=settings.get("val_data"),
        progress=progress,
    )
    if changed := data_changed(attrs, training):
        raise DataError(
            f"{path}: not the data study {study.study_name!r} was searched on ({changed}); "
            "pass --data the study's data set, unchanged"
        )
    return training


def fit_subset(data: TrainingData, *, fit_on: str) -> tuple[Subset, str]:
    """What the final model trains on, and its name: training + validation where they share
    one image array (Kaggle, class folders); training only where validation lives in other
    files (PCam HDF5's own split, --val-data)."""
    if fit_on == "train":
        return data.train, "train"
    if data.train.images is not data.val.images:
        logger.warning(
            f"note: validation was {data.validation_note}, kept apart from the training "
            "files; the final model trains on the training split only"
        )
        return data.train, "train"
    return (
        Subset(
            images=data.train.images,
            labels=data.train.labels,
            indices=np.concatenate([data.train.indices, data.val.indices]),
            ids=np.concatenate([data.train.ids, data.val.ids]),
        ),
        "train+val",
    )


def retrain(
    trial: FrozenTrial,
    fit_data: Subset,
    *,
    max_epochs: int,
    seed: int,
    runtime: Runtime | None = None,
    progress: bool = True,
) -> tuple[keras.Model, dict[str, Any]]:
    """Train ``trial``'s exact params, blind, for its best epoch count; the model and its record.
    Without ``runtime``, on ``pcam.runtime.CPU_DEFAULT``."""
    from pcam.runtime import CPU_DEFAULT
    from pcam.train import TrainingDiverged, train

    try:
        params = params_from_values(trial.params, max_epochs=max_epochs)
    except (KeyError, ValueError, TypeError) as error:
        raise ConfigError(
            f"trial {trial.number}'s values do not fit today's search space ({error})"
        ) from None
    epochs = int(trial.user_attrs.get("best_epoch", params.epochs))
    logger.info(
        f"retraining trial {trial.number} (validation AUC {trial.value:.4f}) on "
        f"{len(fit_data)} patches, seed {seed}: {params.schedule} schedule planned for "
        f"{params.epochs} epoch(s), stopped after epoch {epochs} (its best)"
    )
    try:
        result = train(
            params,
            fit_data,
            None,
            seed=seed,
            epochs=epochs,
            runtime=runtime or CPU_DEFAULT,
            verbose=2 if progress else 0,
        )
    except TrainingDiverged as error:
        raise ConfigError(
            f"retraining trial {trial.number} diverged ({error}); pick another with --trial"
        ) from None
    record = {
        "trial": trial.number,
        "val_auc": trial.value,
        "params": params.to_dict(),
        "epochs_trained": epochs,
        "schedule_epochs": params.epochs,
        "seed": seed,
        "train_seconds": round(result.train_seconds, 2),
    }
    return result.model, record


def export_record(
    study: optuna.Study,
    records: list[dict[str, Any]],
    *,
    data: TrainingData,
    tta: str,
    trained_on: str,
    train_patches: int,
    test_patches: int,
) -> dict[str, Any]:
    """``model.json``: the best member's trial and params, every member, data and provenance."""
    best = records[0]
    return {
        "format": METADATA_FORMAT,
        "study": study.study_name,
        "trial": best["trial"],
        "val_auc": best["val_auc"],
        "params": best["params"],
        "epochs_trained": best["epochs_trained"],
        "ensemble": len(records),
        "members": records,
        "tta": tta,
        "trained_on": trained_on,
        "train_patches": train_patches,
        "test_patches": test_patches,
        "data_source": str(data.layout.root),
        "data_layout": data.layout.kind,
        "data_fingerprint": data.fingerprint,
        "data_content": data.content,
        "split_seed": data.split_seed,
        "val_fraction": data.val_fraction,
        "limit": data.limit,
        "package_versions": package_versions(),
        "git_commit": git_commit(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class _Plan:
    """What a submission is made of, every input checked: the study, its chosen trials, the
    data they retrain on and the test split they predict."""

    study: optuna.Study
    chosen: list[FrozenTrial]
    data: TrainingData
    test_split: CachedSplit
    fit_data: Subset
    trained_on: str


def submit(config: SubmitConfig) -> SubmitOutcome:
    """Retrain, export and predict; see the module docstring. Checks every input first."""
    plan = _plan(config)
    # Keras loads only now: a bad input is refused in a second, not after the backend's import.
    from pcam.train import release_memory

    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".best.partial-{uuid.uuid4().hex[:8]}"
    submission = out / SUBMISSION_FILE
    staged_csv: Path | None = None
    try:
        model, records = _train_members(
            plan, out, seed=config.seed, draws=config.draws, progress=config.progress
        )
        metadata = _metadata(plan, records, config)
        if plan.trained_on == "train":
            from pcam.tta import predict_tta

            val_probabilities = predict_tta(model, plan.data.val, mode=config.tta)
            metadata["retrained_val_auc"] = roc_auc(plan.data.val.y, val_probabilities)
        export(model, metadata, staging)
        del model
        release_memory()
        staged_csv, probabilities = _stage_submission(plan, staging, submission, tta=config.tta)
        replace_folder(staging, out / "best")
        os.replace(staged_csv, submission)
        drop_refits(out)
        files = [out / "best" / MODEL_FILE, out / "best" / METADATA_FILE, submission]
        upload_outputs(plan.study, files)
    except OSError as error:
        if error.errno not in DISK_FULL:
            raise
        raise StorageError(
            f"no space left on the device of {out} while writing the model or the submission; "
            f"whatever {out} held before is untouched: free space there (or give --out another "
            "disk) and run the same command again"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if staged_csv is not None:
            staged_csv.unlink(missing_ok=True)
    return SubmitOutcome(
        model_dir=out / "best",
        submission=submission,
        metadata=metadata,
        ids=plan.test_split.ids,
        probabilities=probabilities,
    )


def _plan(config: SubmitConfig) -> _Plan:
    """The study, its members and the data, each refused with one line if unusable."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_existing_study(config)
    chosen = choose_trials(study, trial=config.trial, ensemble=config.ensemble)
    data = load_study_data(
        study, data=config.data, all_data=config.all_data, progress=config.progress
    )
    _, test_split = load_split(data.layout.root, "test", progress=config.progress)
    if not len(test_split):
        raise DataError(f"{data.layout.root}: the test split is empty; nothing to submit")
    fit_data, trained_on = fit_subset(data, fit_on=config.fit_on)
    logger.info(
        f"members: {', '.join(f'trial {t.number} ({t.value:.4f})' for t in chosen)}"
        + (" — the best and its statistical ties" if config.ensemble is None else "")
        + (f"; {config.draws} training draws of each, averaged" if config.draws > 1 else "")
    )
    return _Plan(study, chosen, data, test_split, fit_data, trained_on)


def _train_members(
    plan: _Plan, out: Path, *, seed: int | None, draws: int, progress: bool
) -> tuple[keras.Model, list[dict[str, Any]]]:
    """Each chosen trial retrained on the fit data ``draws`` times, and the model that averages
    them: with the seed it trained with in the search, or ``seed`` plus its place among the
    chosen, and ``DRAW_SEED_STEP`` more for each further draw. A member an earlier run left in
    ``out`` (``search.refits``) is taken, not trained again."""
    settings = plan.study.user_attrs["config"]
    max_epochs = plan.study.user_attrs["study_defining"]["max_epochs"]
    runtime = resolve()
    logger.info(runtime.describe())
    models, records = [], []
    members = [
        (trial, place, draw) for place, trial in enumerate(plan.chosen) for draw in range(draws)
    ]
    for trial, place, draw in members:
        own = training_seed(trial, settings) if seed is None else seed + place
        member_seed = own + DRAW_SEED_STEP * draw
        key = refit_key(
            plan.study.study_name,
            trial,
            fit_data=plan.fit_data,
            content=plan.data.content,
            max_epochs=max_epochs,
            seed=member_seed,
            precision=runtime.precision,
        )
        if kept := kept_refit(out, key):
            model, record = kept
        else:
            model, record = retrain(
                trial,
                plan.fit_data,
                max_epochs=max_epochs,
                seed=member_seed,
                runtime=runtime,
                progress=progress,
            )
            keep_refit(out, key, model, record)
        models.append(model)
        records.append({**record, "draw": draw})
    return combine(models, records), records


def _metadata(plan: _Plan, records: list[dict[str, Any]], config: SubmitConfig) -> dict[str, Any]:
    """The exported model's ``model.json``."""
    metadata = export_record(
        plan.study,
        records,
        data=plan.data,
        tta=config.tta,
        trained_on=plan.trained_on,
        train_patches=len(plan.fit_data),
        test_patches=len(plan.test_split),
    )
    metadata["all_data"] = config.all_data  # every labelled patch, not the search's --limit
    metadata["draws"] = config.draws  # trainings of each trial: "ensemble" counts them all
    return metadata


def _stage_submission(
    plan: _Plan, staging: Path, submission: Path, *, tta: str
) -> tuple[Path, np.ndarray]:
    """The test split's probabilities from the exported file itself, exactly as
    search.predict sees it, written beside ``submission`` (not over it yet)."""
    from pcam.tta import predict_tta

    exported, _ = load_exported(staging)
    logger.info(f"predicting {len(plan.test_split)} test patches (tta {tta})")
    probabilities = predict_tta(exported, whole_split(plan.test_split), mode=tta)
    return stage_predictions(submission, plan.test_split.ids, probabilities), probabilities
