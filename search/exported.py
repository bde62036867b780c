"""The exported model folder (``model.keras`` + ``model.json``) and the files made from it.

``search.submission`` writes a folder and a Kaggle ``submission.csv``; ``search.predict`` reads
the folder back. Both write predictions the same way: checked, then published whole."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pcam.cache import CachedSplit
from pcam.data import Subset
from pcam.errors import DataError, preview
from pcam.images import PATCH_SHAPE
from pcam.layouts import read_id_label_csv

if TYPE_CHECKING:  # Keras loads when a model does: --help answers without it
    import keras


MODEL_FILE = "model.keras"
METADATA_FILE = "model.json"


def load_exported(model_dir: str | Path) -> tuple[keras.Model, dict[str, Any]]:
    """The model and metadata that ``search.submit`` exported to ``model_dir``."""
    folder = Path(model_dir).expanduser()
    if folder.is_file() and folder.name in (MODEL_FILE, METADATA_FILE):
        folder = folder.parent
    if not folder.is_dir():
        raise DataError(f"{folder}: no such model folder; pass the folder search.submit wrote")
    metadata_path = folder / METADATA_FILE
    model_path = folder / MODEL_FILE
    if not metadata_path.is_file():
        raise DataError(
            f"{folder}: no {METADATA_FILE}; a model folder holds {MODEL_FILE} and "
            f"{METADATA_FILE} as written by python -m search.submit"
        )
    try:
        metadata = json.loads(metadata_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{metadata_path}: not readable JSON ({error})") from None
    if not model_path.is_file():
        raise DataError(f"{folder}: {METADATA_FILE} is there but {MODEL_FILE} is missing")
    import keras

    try:
        model = keras.saving.load_model(model_path)
    except (OSError, ValueError) as error:
        raise DataError(f"{model_path}: cannot load the model ({error})") from None
    return model, metadata


def whole_split(split: CachedSplit) -> Subset:
    """Every row of a cached split, in its canonical order."""
    return Subset(
        images=split.images,
        labels=split.labels,
        indices=np.arange(len(split)),
        ids=split.ids,
    )


def read_labels(csv_path: str | Path, ids: np.ndarray) -> np.ndarray:
    """The 0/1 label of each of ``ids`` from an ``id,label`` CSV; every id must be there."""
    csv_path = Path(csv_path).expanduser()
    if not csv_path.is_file():
        raise DataError(f"--labels {csv_path}: file missing")
    table = read_id_label_csv(csv_path, labels_required=True)
    by_id = pd.Series(table["label"].to_numpy(), index=table["id"])
    missing = np.asarray(ids)[~pd.Index(ids).isin(by_id.index)]
    if len(missing):
        raise DataError(
            f"{csv_path}: {len(missing)} of the {len(ids)} predicted id(s) have no label: "
            f"{preview(missing)}; pass the labels of this split"
        )
    return by_id.loc[ids].to_numpy()


def stage_predictions(path: Path, ids: np.ndarray, probabilities: np.ndarray) -> Path:
    """Check and write ``id,label`` rows to a hidden sibling of ``path``; return that file.

    ``os.replace`` of the returned file onto ``path`` publishes it whole: a reader never sees
    a half-written submission. Labels are probabilities, never hard 0/1 (the metric is AUC).
    """
    ids = np.asarray(ids, dtype=str)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if len(ids) != len(probabilities):
        raise ValueError(f"{len(ids)} ids but {len(probabilities)} probabilities")
    if not len(ids):
        raise DataError(f"{path}: no rows to write; the split is empty")
    repeated = pd.Series(ids)[pd.Series(ids).duplicated()].unique()
    if len(repeated):
        raise DataError(f"{path}: id(s) would appear more than once: {preview(repeated)}")
    bad = ids[~np.isfinite(probabilities) | (probabilities < 0) | (probabilities > 1)]
    if len(bad):
        raise DataError(
            f"{path}: the model gave {len(bad)} patch(es) no valid probability (NaN or out of "
            f"[0, 1]): {preview(bad)}; nothing was written"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        with staged.open("w") as out:
            out.write("id,label\n")
            out.writelines(f"{i},{p:.10g}\n" for i, p in zip(ids, probabilities, strict=True))
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def write_predictions(path: str | Path, ids: np.ndarray, probabilities: np.ndarray) -> Path:
    """Write an ``id,label`` CSV atomically (temporary file, then ``os.replace``)."""
    path = Path(path)
    os.replace(stage_predictions(path, ids, probabilities), path)
    return path


def export(model: keras.Model, metadata: dict[str, Any], folder: Path) -> Path:
    """Write ``model.keras`` and ``model.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL_FILE)
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=1) + "\n")
    return folder


def member_name(record: dict[str, Any]) -> str:
    """The layer of the exported ensemble that holds this member: ``trial_3``, and
    ``trial_3_draw_1`` for its second draw (``--draws``)."""
    draw = record.get("draw", 0)
    return f"trial_{record['trial']}" + (f"_draw_{draw}" if draw else "")


def combine(models: list[keras.Model], records: list[dict[str, Any]]) -> keras.Model:
    """One model, or one that averages the members' probabilities (a single exportable file)."""
    if len(models) == 1:
        return models[0]
    import keras

    inputs = keras.Input(shape=PATCH_SHAPE, name="patch")
    outputs = []
    for model, record in zip(models, records, strict=True):
        member = keras.models.clone_model(model)  # uncompiled: no optimizer state to export
        member.set_weights(model.get_weights())
        member.name = member_name(record)
        outputs.append(member(inputs))
    mean = keras.layers.Average(name="ensemble_mean", dtype="float32")(outputs)
    return keras.Model(inputs, mean, name=f"pcam_ensemble_{len(models)}")
