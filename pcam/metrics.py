"""Exact ROC AUC, the competition metric, computed from ranks (ties averaged)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (Mann–Whitney U).

    Exact, unlike Keras' thresholded ``AUC`` metric; NaN when one class is absent.
    """
    labels = np.asarray(labels).reshape(-1).astype(bool)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    u_statistic = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u_statistic / (positives * negatives))


def binary_cross_entropy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(np.asarray(probabilities, dtype=np.float64).reshape(-1), 1e-7, 1 - 1e-7)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
