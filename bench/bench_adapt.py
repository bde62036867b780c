"""Test-time adaptation to other slides, measured on an exported model: does it raise the AUC?

``python bench/bench_adapt.py MODEL_DIR`` scores an exported model (``search.submit``'s
``best/``, e.g. the one a ``bench_quality.py`` search arm left) on ``../shared/pcam-unseen-slides``
and, when ``--locked`` names a ``bench_quality.py`` split folder, on its locked same-slide
patches, three ways, each with 8-view TTA:

- plain: the model as exported (what ``search.predict`` and the submission do);
- AdaBN (Li et al. 2016): every batch-norm layer's moving mean and variance re-estimated on
  the scored patches themselves, layer by layer in order, from their images alone (no label):
  the standard answer to a stain or scanner shift between training and test slides;
- stain TTA: the 8 views of each patch and of three copies of it with HED stain jitter
  (``pcam.augment.hed_jitter``, the strength the model trained with, at least 0.05), averaged.

Each is paired against the plain model over the same patches (1,000 resamples within each
class). AdaBN adapts to the set it scores, as a submission would adapt to Kaggle's test set:
nothing is chosen on the labels.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    DEFAULT_UNSEEN,
    RESULTS,
    describe_machine,
    format_table,
    machine_info,
    write_results,
)

from pcam.errors import run_cli

ADAPT = RESULTS / "adapt"
STAIN_COPIES = 3
ADAPT_BATCH = 256


def adapt_batch_norm(model, images: np.ndarray) -> int:
    """Set each batch-norm layer's moving statistics to those of its inputs over ``images``,
    in the order the layers compute (each sees the layers before it adapted); the count. The
    members of an ensemble (``search.exported.combine``: models the input feeds directly)
    are adapted one after the other."""
    import keras

    members = [layer for layer in model.layers if isinstance(layer, keras.Model)] or [model]
    adapted = 0
    for member in members:
        for layer in member.layers:
            if not isinstance(layer, keras.layers.BatchNormalization):
                continue
            probe = keras.Model(member.input, layer.input)
            sums = np.zeros((2, layer.input.shape[-1]))  # of the values and their squares
            count = 0
            for start in range(0, len(images), ADAPT_BATCH):
                out = np.asarray(probe.predict_on_batch(images[start : start + ADAPT_BATCH]))
                out = out.reshape(-1, out.shape[-1]).astype(np.float64)
                sums += out.sum(axis=0), (out**2).sum(axis=0)
                count += len(out)
            mean, mean_square = sums / count
            layer.moving_mean.assign(mean.astype("float32"))
            layer.moving_variance.assign((mean_square - mean**2).astype("float32"))
            adapted += 1
    return adapted


def stain_tta(model, subset, *, strength: float, seed: int = 0) -> np.ndarray:
    """The mean of the d8 predictions of the patches and of ``STAIN_COPIES`` stain-jittered
    copies of them."""
    from pcam.augment import hed_jitter
    from pcam.data import Subset
    from pcam.tta import predict_tta

    images = subset.images[subset.indices]
    rng = np.random.default_rng(seed)
    views = [predict_tta(model, subset, mode="d8")]
    for _ in range(STAIN_COPIES):
        jittered = Subset(
            images=hed_jitter(images, strength=strength, rng=rng),
            labels=subset.labels[subset.indices],
            indices=np.arange(len(images)),
            ids=subset.ids[subset.indices],
        )
        views.append(predict_tta(model, jittered, mode="d8"))
    return np.mean(views, axis=0)


def score(model_dir: Path, name: str, subset, labels: np.ndarray) -> dict[str, Any]:
    """The three ways on one set of patches, each paired against the plain model."""
    from pcam.metrics import bootstrap_auc_interval, paired_auc_difference, roc_auc
    from pcam.tta import predict_tta
    from search.exported import load_exported

    model, record = load_exported(model_dir)
    strength = max(0.05, float(record["params"].get("hed_jitter", 0.0)))
    started = time.perf_counter()
    plain = predict_tta(model, subset, mode="d8")
    ways = {"plain": (plain, time.perf_counter() - started)}
    started = time.perf_counter()
    jittered = stain_tta(model, subset, strength=strength)
    ways["stain TTA"] = (jittered, time.perf_counter() - started)
    started = time.perf_counter()
    layers = adapt_batch_norm(model, subset.images[subset.indices])
    ways["AdaBN"] = (predict_tta(model, subset, mode="d8"), time.perf_counter() - started)
    scores = {}
    for way, (probabilities, seconds) in ways.items():
        low, high = bootstrap_auc_interval(labels, probabilities)
        difference = paired_auc_difference(labels, probabilities, plain)
        scores[way] = {
            "auc": roc_auc(labels, probabilities),
            "low": low,
            "high": high,
            "mean_probability": float(probabilities.mean()),
            "versus_plain": list(difference),
            "seconds": round(seconds, 1),
        }
        print(
            f"{name} {way}: {scores[way]['auc']:.4f}, paired {difference[0]:+.4f}",
            file=sys.stderr,
            flush=True,
        )
    return {"patches": len(labels), "batch_norm_layers": layers, "stain": strength, "ways": scores}


def versus(way: str, difference: list[float]) -> str:
    """A way's AUC minus the plain model's, with its paired interval."""
    if way == "plain":
        return "(the baseline)"
    return "{:+.4f} ({:+.3f} to {:+.3f})".format(*difference)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="an exported model folder (best/)")
    parser.add_argument("--unseen", type=Path, default=DEFAULT_UNSEEN)
    parser.add_argument(
        "--locked",
        type=Path,
        help="a bench_quality.py split folder (split-<id>/): also score its locked patches",
    )
    parser.add_argument("--name", help="the result's name (default: the model folder's parent)")
    args = parser.parse_args(argv)
    if not (args.model / "model.keras").is_file():
        parser.error(f"{args.model}: no model.keras; pass an exported model folder (best/)")
    if args.locked and not (args.locked / "locked_labels.csv").is_file():
        parser.error(
            f"--locked {args.locked}: no locked_labels.csv; pass a bench_quality.py split folder "
            "(bench/results/quality/split-<id>)"
        )
    if not args.unseen.is_dir():
        parser.error(f"--unseen {args.unseen}: no such folder; pass the unseen-slide patches")
    from pcam.data import load_split
    from search.exported import read_labels, whole_split

    sets = []
    _, unseen = load_split(args.unseen, "train", progress=False)
    sets.append(("unseen slides", whole_split(unseen), unseen.labels))
    if args.locked:
        _, locked = load_split(args.locked / "data", "test", progress=False)
        labels = read_labels(args.locked / "locked_labels.csv", locked.ids)
        sets.append(("same slides (locked)", whole_split(locked), labels))
    info = machine_info()
    print(describe_machine(info), file=sys.stderr, flush=True)
    results = {name: score(args.model, name, subset, labels) for name, subset, labels in sets}
    name = args.name or args.model.resolve().parent.name
    record = {"model": str(args.model), "machine": info, "results": results}
    write_results("adapt", record, path=ADAPT / f"{name}.json")
    rows = [
        [
            where,
            way,
            f"{scores['auc']:.4f} ({scores['low']:.3f}–{scores['high']:.3f})",
            versus(way, scores["versus_plain"]),
            f"{scores['mean_probability']:.2f}",
            f"{scores['seconds']:.0f} s",
        ]
        for where, result in results.items()
        for way, scores in result["ways"].items()
    ]
    header = ["patches", "way", "AUC, d8 (95%)", "− plain, paired (95%)", "mean p", "time"]
    print(format_table(header, rows))
    print(f"\nmachine: {describe_machine(info)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
