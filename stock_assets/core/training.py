"""Fitting one model on a time split and evaluating it: the result a caller logs or deploys.

No Dagster, KFP or MLflow here (scikit-learn, numpy and pandas only), so the same code runs in a
Dagster asset, a KFP component or a unit test. The pieces it is built from live in their own
modules: the model types and their hyperparameters (:mod:`.estimators`), the chronological
split (:mod:`.splits`), the both-classes rule and the metrics (:mod:`.evaluation`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stock_assets.core.errors import TrainingError
from stock_assets.core.estimators import (
    DEFAULT_RANDOM_STATE,
    build_pipeline,
    resolve_hyperparameters,
)
from stock_assets.core.evaluation import (
    check_both_classes,
    evaluate,
    majority_class,
)
from stock_assets.core.features import FEATURE_COLUMNS, TARGET_COLUMN
from stock_assets.core.splits import (
    TimeSplit,
    require_columns,
)
from stock_assets.core.values import DateWindow

if TYPE_CHECKING:  # scikit-learn is imported where it is used, to keep imports light
    from sklearn.pipeline import Pipeline

__all__ = ["TrainingResult", "train_and_evaluate"]


@dataclass
class TrainingResult:
    """Everything a caller needs to log, plot or deploy one trained model."""

    pipeline: Pipeline
    model_type: str
    hyperparameters: dict[str, Any]
    random_state: int
    feature_columns: list[str]
    metrics: dict[str, float]
    confusion_matrix: list[list[int]]
    feature_importances: pd.Series | None
    baseline_class: int
    n_train: int
    n_test: int
    train_window: DateWindow
    test_window: DateWindow
    y_test: np.ndarray
    y_score: np.ndarray


def _feature_matrix(rows: pd.DataFrame, feature_columns: list[str], where: str) -> pd.DataFrame:
    X = rows[feature_columns].astype("float64")
    bad = (~np.isfinite(X)).sum()
    bad = bad[bad > 0]
    if not bad.empty:
        detail = ", ".join(f"{col} ({n})" for col, n in bad.items())
        raise TrainingError(
            f"{where} rows have missing or infinite feature values: {detail}; "
            "drop or fill them before training"
        )
    return X


def _importances(
    pipeline: Pipeline,
    feature_columns: list[str],
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    random_state: int,
) -> pd.Series | None:
    """Impurity importances of forests, absolute coefficients of a logistic regression, and
    for models with neither (histogram boosting) the accuracy lost when a feature is shuffled
    (permutation importance on at most 5,000 test rows, 3 repeats, floored at 0)."""
    classifier = pipeline.named_steps["classifier"]
    if hasattr(classifier, "feature_importances_"):
        values = np.asarray(classifier.feature_importances_)
    elif hasattr(classifier, "coef_"):
        values = np.abs(np.asarray(classifier.coef_)).ravel()
    elif len(X_test):
        from sklearn.inspection import permutation_importance

        rows = np.random.default_rng(random_state).permutation(len(X_test))[:5000]
        found = permutation_importance(
            pipeline,
            X_test.iloc[np.sort(rows)],
            y_test[np.sort(rows)],
            n_repeats=3,
            random_state=random_state,
        )
        values = np.clip(found.importances_mean, 0.0, None)
    else:
        return None
    series = pd.Series(values, index=pd.Index(feature_columns), name="importance", dtype=float)
    return series.sort_values(ascending=False, kind="stable")


def train_and_evaluate(
    split: TimeSplit,
    model_type: str = "random_forest",
    hyperparameters: Mapping[str, Any] | None = None,
    random_state: int = DEFAULT_RANDOM_STATE,
    feature_columns: Sequence[str] = FEATURE_COLUMNS,
) -> TrainingResult:
    """Fit ``StandardScaler -> classifier`` on ``split.train`` and evaluate it on ``split.test``.

    Deterministic for the same inputs. Raises TrainingError for a bad configuration, missing
    columns, non-finite feature values or a single-class training target.
    """
    from sklearn.metrics import confusion_matrix

    params = resolve_hyperparameters(model_type, hyperparameters)
    columns = list(feature_columns)
    train, test = split
    require_columns(train, columns)

    X_train = _feature_matrix(train, columns, "training")
    X_test = _feature_matrix(test, columns, "test")
    y_train = train[TARGET_COLUMN].astype("int64").to_numpy()
    y_test = test[TARGET_COLUMN].astype("int64").to_numpy()
    check_both_classes(y_train, "training target")

    pipeline = build_pipeline(model_type, params, random_state, n_rows=len(X_train))
    pipeline.fit(X_train, y_train)
    y_pred = np.asarray(pipeline.predict(X_test)).astype("int64")
    positive = list(pipeline.classes_).index(1)
    y_score = np.asarray(pipeline.predict_proba(X_test))[:, positive]

    baseline = majority_class(y_train)
    return TrainingResult(
        pipeline=pipeline,
        model_type=model_type,
        hyperparameters=params,
        random_state=random_state,
        feature_columns=columns,
        metrics=evaluate(y_test, y_pred, y_score, baseline_class=baseline),
        confusion_matrix=confusion_matrix(y_test, y_pred, labels=[0, 1]).tolist(),
        feature_importances=_importances(pipeline, columns, X_test, y_test, random_state),
        baseline_class=baseline,
        n_train=len(train),
        n_test=len(test),
        train_window=split.train_window,
        test_window=split.test_window,
        y_test=y_test,
        y_score=y_score,
    )
