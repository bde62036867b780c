"""``python -m search.predict MODEL_DIR PATH``: score an exported model on any PCam data set.

Reads a folder written by ``search.submit`` (``model.keras`` + ``model.json``), predicts every
patch of one split with test-time augmentation, and — given labels, from ``--labels CSV`` or
from a labelled split — prints ROC AUC, accuracy and the confusion matrix.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no start-up chatter

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pcam.augment import TTA_MODES
from pcam.cli import command_parser
from pcam.data import load_split
from pcam.errors import DataError, run_cli
from pcam.layouts import UNKNOWN_LABEL, detect
from pcam.metrics import roc_auc
from search.exported import load_exported, read_labels, whole_split, write_predictions
from search.options import PROGRESS

if TYPE_CHECKING:  # Keras loads when a model does: --help answers without it
    import keras

THRESHOLD = 0.5


@dataclass(frozen=True)
class Scores:
    """How well probabilities match labels: exact ROC AUC, accuracy at 0.5, confusion matrix."""

    roc_auc: float
    accuracy: float
    confusion: np.ndarray  # rows: actual 0, 1; columns: predicted 0, 1

    def describe(self) -> str:
        (tn, fp), (fn, tp) = self.confusion.tolist()
        return "\n".join(
            [
                f"ROC AUC   {self.roc_auc:.4f}",
                f"accuracy  {self.accuracy:.4f} (threshold {THRESHOLD})",
                f"{'':10}{'pred 0':>10}{'pred 1':>10}",
                f"{'actual 0':10}{tn:>10}{fp:>10}",
                f"{'actual 1':10}{fn:>10}{tp:>10}",
            ]
        )


@dataclass(frozen=True)
class Prediction:
    """One split's ids in order, their probabilities, and the scores where labels were known."""

    ids: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray | None
    scores: Scores | None


def score(labels: np.ndarray, probabilities: np.ndarray) -> Scores:
    """ROC AUC, accuracy at ``THRESHOLD`` and the 2×2 confusion matrix."""
    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(probabilities) >= THRESHOLD).astype(int)
    confusion = np.zeros((2, 2), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    return Scores(
        roc_auc=roc_auc(labels, probabilities),
        accuracy=float((labels == predicted).mean()),
        confusion=confusion,
    )


def predict_path(
    model: keras.Model,
    path: str | Path,
    *,
    split: str | None = None,
    labels_csv: str | Path | None = None,
    tta: str = "d8",
    progress: bool = True,
) -> Prediction:
    """Predict every patch of one split of the data set at ``path``; score it given labels.

    ``split`` defaults to ``test`` where the layout has one, else its only split (class folders).
    Labels come from ``labels_csv``, else from the split itself when it is labelled.
    """
    from pcam.tta import predict_tta

    if split is None:
        names = detect(path).split_names
        split = "test" if "test" in names else names[0]
    _, cached = load_split(path, split, progress=progress)
    if not len(cached):
        raise DataError(f"{path}: the {split} split holds no patches; nothing to predict")
    probabilities = predict_tta(model, whole_split(cached), mode=tta)
    labels = None
    if labels_csv is not None:
        labels = read_labels(labels_csv, cached.ids)
    elif (cached.labels != UNKNOWN_LABEL).all():
        labels = cached.labels.astype(np.int8)
    scores = score(labels, probabilities) if labels is not None else None
    return Prediction(ids=cached.ids, probabilities=probabilities, labels=labels, scores=scores)


EPILOG = """\
outputs:
  printed       patches, mean tumour probability; given labels: ROC AUC,
                accuracy and the confusion matrix
  --out CSV     id,label tumour probabilities, in the split's id order
next:
  compare models: run it on another studies/<study>/best with the same --labels
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m search.predict``."""
    parser = command_parser(
        prog="python -m search.predict",
        description="Predict (and score, given labels) any PCam data set with an exported model.",
        epilog=EPILOG,
    )
    add = parser.add_argument
    add(
        "model_dir",
        metavar="MODEL_DIR",
        help="a folder written by search.submit (model.keras + model.json), "
        "e.g. studies/<study>/best",
    )
    add(
        "path",
        metavar="PATH",
        help="a PCam data set: Kaggle layout, PCam HDF5 files, or 0/ 1/ class folders",
    )
    add(
        "--split",
        default=None,
        metavar="SPLIT",
        help="split to predict: train, valid or test (default: test, else the only one)",
    )
    add(
        "--labels",
        default=None,
        metavar="CSV",
        help="id,label CSV with the answers, e.g. test_labels.csv (default: the split's own "
        "labels, if it has them)",
    )
    add(
        "--tta",
        choices=tuple(TTA_MODES),
        default=None,
        help="test-time augmentation (default: what the model was submitted with, else d8)",
    )
    add(
        "--out",
        default=None,
        metavar="CSV",
        help="write id,label probabilities to this CSV (default: print the scores only)",
    )
    PROGRESS.add_to(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model, metadata = load_exported(args.model_dir)
    tta = args.tta or metadata.get("tta", "d8")
    prediction = predict_path(
        model,
        args.path,
        split=args.split,
        labels_csv=args.labels,
        tta=tta,
        progress=args.progress,
    )
    mean = float(prediction.probabilities.mean())
    print(f"{len(prediction.ids)} patches, tta {tta}, mean tumour probability {mean:.3f}")
    if args.out:
        print(f"wrote {write_predictions(args.out, prediction.ids, prediction.probabilities)}")
    if prediction.scores is not None:
        print(prediction.scores.describe())
    elif not args.out:
        print("no labels to score against: pass --labels CSV, or --out CSV to keep predictions")
    return 0


if __name__ == "__main__":
    run_cli(main)
