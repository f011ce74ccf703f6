"""Judging a 0/1 up/down target and predictions of it: the both-classes rule and the metrics.

Shared by the final fit (:mod:`.training`), the walk-forward folds (:mod:`.selection`) and the
Dagster asset checks, so each applies the same rule and reports the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stock_assets.core.errors import TrainingError

__all__ = ["check_both_classes", "evaluate", "majority_class", "single_class_problem"]


def single_class_problem(y: Any, where: str = "training target") -> str | None:
    """Why ``y`` cannot train a classifier (empty, not 0/1, a single class), or None.

    The one statement of the both-classes rule: training, the walk-forward folds and the
    ``target_has_both_classes`` asset check all ask it.
    """
    values = np.asarray(y)
    if values.size == 0:
        return f"the {where} is empty; need both up and down days"
    classes, counts = np.unique(values, return_counts=True)
    unexpected = [v.item() for v in classes if v not in (0, 1)]
    if unexpected:
        return f"the {where} must be 0 (down) or 1 (up); found {unexpected}"
    if len(classes) < 2:
        cls = int(classes[0])
        name = {1: "up", 0: "down"}[cls]
        return (
            f"the {where} has a single class (all {int(counts[0])} rows are {cls} = {name}); "
            "need both up and down days to train a classifier"
        )
    return None


def check_both_classes(y: Any, where: str = "training target") -> None:
    """Raise TrainingError unless ``y`` holds only 0 (down) and 1 (up), and both of them."""
    problem = single_class_problem(y, where)
    if problem:
        raise TrainingError(problem)


def majority_class(y: Any) -> int:
    """Most frequent class of a 0/1 target; a tie goes to 1 (up)."""
    values = np.asarray(y).astype(int)
    n_up = int((values == 1).sum())
    return 1 if n_up * 2 >= len(values) else 0


def evaluate(
    y_true: Any,
    y_pred: Any,
    y_score: Any | None = None,
    baseline_class: int | None = None,
) -> dict[str, float]:
    """Classification metrics for the positive class 1 (up).

    ``baseline_accuracy`` (included when ``baseline_class`` is given) is the accuracy of always
    predicting ``baseline_class`` — pass the majority class of the *training* target.
    ``roc_auc`` is included when ``y_score`` (probability of 1) is given and ``y_true`` has
    both classes.
    """
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
    }
    if baseline_class is not None:
        metrics["baseline_accuracy"] = float(np.mean(y_true == baseline_class))
    if y_score is not None and len(np.unique(y_true)) == 2:
        metrics["roc_auc"] = float(roc_auc_score(y_true, np.asarray(y_score, dtype=float)))
    return metrics
