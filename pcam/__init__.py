"""PCam patches, read once, fed in batches, and the parametric CNN that learns from them.

The names below are the package's public surface. They load on first use, so ``import pcam``
stays cheap: Keras (and its backend) loads only with the names that need it (``build``,
``train``, ``fit``, ``predict_tta``).
"""

from __future__ import annotations

from pcam.exports import lazy_exports

# name -> the module that defines it
_PUBLIC = {
    "PcamError": "pcam.errors",
    "DataError": "pcam.errors",
    "ConfigError": "pcam.errors",
    "StorageError": "pcam.errors",
    "SetupError": "pcam.errors",
    "Terminated": "pcam.errors",
    "load_training_data": "pcam.data",
    "load_split": "pcam.data",
    "TrainingData": "pcam.data",
    "Subset": "pcam.data",
    "Augment": "pcam.augment",
    "ModelParams": "pcam.model",
    "SEED_BASELINE": "pcam.model",
    "build": "pcam.model",
    "count_params": "pcam.model",
    "train": "pcam.train",
    "fit": "pcam.train",
    "TrainResult": "pcam.train",
    "predict_tta": "pcam.tta",
    "roc_auc": "pcam.metrics",
    "bootstrap_auc_interval": "pcam.metrics",
    "paired_auc_difference": "pcam.metrics",
    "generate": "pcam.synth",
}

__all__, __getattr__ = lazy_exports(__name__, _PUBLIC)
