"""Classification metrics for one test set, and the Bayes (noise) ceiling."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score, roc_curve

METRICS = (
    "accuracy", "precision", "recall", "f1", "roc_auc",
    "precision_negative", "recall_negative", "f1_negative",
)


def bayes_accuracy(p_positive: np.ndarray) -> float:
    """Expected accuracy of the Bayes-optimal classifier when P(positive | outfit) is known."""
    p = np.asarray(p_positive, dtype=np.float64)
    return float(np.mean(np.maximum(p, 1.0 - p)))


def bayes_auc(p_positive: np.ndarray) -> float:
    """Expected ROC-AUC of ranking by the known P(positive) when labels are drawn from it (ratio of expectations:
    sum over pairs i != j of p_i (1 - p_j) [1 if p_i > p_j, 1/2 if equal] / sum of p_i (1 - p_j))."""
    p = np.asarray(p_positive, dtype=np.float64)
    w = p[:, None] * (1.0 - p)[None, :]
    np.fill_diagonal(w, 0.0)
    wins = (p[:, None] > p[None, :]) + 0.5 * (p[:, None] == p[None, :])
    total = float(w.sum())
    return float((w * wins).sum() / total) if total > 0 else float("nan")


def classification_metrics(y_true: np.ndarray, p_positive: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, per-class precision/recall/F1 and ROC-AUC (positive class = 1)."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(p_positive, dtype=np.float64)
    pred = (p >= threshold).astype(np.int64)
    prec, rec, f1, _ = precision_recall_fscore_support(y, pred, labels=[1, 0], zero_division=0.0)
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    return {
        "accuracy": float(np.mean(pred == y)),
        "precision": float(prec[0]),
        "recall": float(rec[0]),
        "f1": float(f1[0]),
        "roc_auc": auc,
        "precision_negative": float(prec[1]),
        "recall_negative": float(rec[1]),
        "f1_negative": float(f1[1]),
    }


def roc_points(y_true: np.ndarray, p_positive: np.ndarray) -> dict[str, np.ndarray]:
    """ROC curve points (fpr, tpr, threshold) for the positive class."""
    fpr, tpr, thr = roc_curve(np.asarray(y_true), np.asarray(p_positive), pos_label=1, drop_intermediate=False)
    return {"fpr": fpr, "tpr": tpr, "threshold": thr}


def poisson_binomial_pmf(q) -> np.ndarray:
    """P(exactly k successes), k = 0..K, of K independent Bernoulli(q_j) trials, by exact dynamic programming
    over the last axis: q of shape (..., K) gives (..., K + 1)."""
    q = np.asarray(q, dtype=np.float64)
    pmf = np.zeros(q.shape[:-1] + (q.shape[-1] + 1,))
    pmf[..., 0] = 1.0
    for j in range(q.shape[-1]):
        p = q[..., j : j + 1]
        pmf[..., 1:] = pmf[..., 1:] * (1 - p) + pmf[..., :-1] * p
        pmf[..., 0] *= 1 - p[..., 0]
    return pmf
