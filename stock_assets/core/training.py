"""Model training and evaluation: pure functions over the features table.

No Dagster, KFP or MLflow here (scikit-learn, numpy and pandas only), so the same code runs in a
Dagster asset, a KFP component or a unit test. Reference hyperparameters come from the reference
pipeline's ``train_model`` component and its MLflow ``compare_models`` grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from stock_assets.core.features import FEATURE_COLUMNS, TARGET_COLUMN
from stock_assets.core.values import DateWindow

if TYPE_CHECKING:  # scikit-learn is imported where it is used, to keep imports light
    from sklearn.pipeline import Pipeline

__all__ = [
    "DEFAULT_HYPERPARAMETERS",
    "DEFAULT_RANDOM_STATE",
    "MODEL_TYPES",
    "OPTIONAL_HYPERPARAMETERS",
    "TimeSplit",
    "TrainingError",
    "TrainingResult",
    "accepted_hyperparameters",
    "build_pipeline",
    "check_both_classes",
    "check_hyperparameter",
    "check_model_type",
    "check_test_size",
    "evaluate",
    "labelled_rows_in",
    "majority_class",
    "resolve_hyperparameters",
    "single_class_problem",
    "time_split",
    "train_and_evaluate",
]

MODEL_TYPES: tuple[str, ...] = (
    "random_forest",
    "gradient_boosting",
    "logistic",
    "hist_gradient_boosting",
)

#: Each type's hyperparameters and their defaults: the reference pipeline's for its three types,
#: scikit-learn's for ``hist_gradient_boosting`` (with ``max_iter`` an upper bound: it stops
#: early once 10 rounds bring no gain on a held-out 10 % of its training rows).
DEFAULT_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 100, "max_depth": 10},
    "gradient_boosting": {"n_estimators": 100, "max_depth": 5, "learning_rate": 0.1},
    "logistic": {"C": 1.0, "max_iter": 1000},
    "hist_gradient_boosting": {
        "max_iter": 200,
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "l2_regularization": 0.0,
    },
}

#: Hyperparameters a type also accepts, unset by default (scikit-learn's default applies).
#: ``max_samples`` as a whole number bounds the rows each tree of a random forest draws, so its
#: cost stops growing with the data; it is capped at the rows available when there are fewer.
OPTIONAL_HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "random_forest": ("max_samples", "min_samples_leaf"),
    "gradient_boosting": (),
    "logistic": (),
    "hist_gradient_boosting": ("max_depth", "min_samples_leaf"),
}


def accepted_hyperparameters(model_type: str) -> tuple[str, ...]:
    """Every hyperparameter ``model_type`` takes: its defaults' keys, then the optional ones."""
    return (*DEFAULT_HYPERPARAMETERS[model_type], *OPTIONAL_HYPERPARAMETERS[model_type])


DEFAULT_RANDOM_STATE = 42
#: Fewest fit rows for histogram boosting's early stopping (5 held-out rows at 10 %).
MIN_EARLY_STOPPING_ROWS = 50

DATE_COLUMN = "Date"
TICKER_COLUMN = "Ticker"


class TrainingError(ValueError):
    """The inputs cannot produce a meaningful model (bad config or unusable data)."""


def check_model_type(model_type: str, *, auto: bool = False) -> str:
    """``model_type`` if it is one of :data:`MODEL_TYPES` (or ``"auto"`` when ``auto``).

    An unknown type is an error, never a silent fallback.
    """
    if model_type in MODEL_TYPES or (auto and model_type == "auto"):
        return model_type
    choices = ("'auto' or one of " if auto else "one of ") + ", ".join(MODEL_TYPES)
    raise TrainingError(f"model_type={model_type!r} is not supported; choose {choices}")


def check_test_size(test_size: float) -> float:
    """``test_size`` if it is a share strictly between 0 and 1."""
    if not 0 < test_size < 1:
        raise TrainingError(f"test_size={test_size} must lie strictly between 0 and 1")
    return test_size


def check_hyperparameter(name: str, value: float | None) -> float | None:
    """``value`` if it is unset (None: the model type's default) or a positive number."""
    if value is not None and not value > 0:
        raise TrainingError(
            f"{name}={value} must be positive; leave it unset to keep the model type's default"
        )
    return value


def resolve_hyperparameters(
    model_type: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return the defaults for ``model_type`` updated with the non-None ``overrides``.

    Raises TrainingError for an unknown model type or a key that model type does not take.
    """
    check_model_type(model_type)
    accepted = accepted_hyperparameters(model_type)
    resolved = dict(DEFAULT_HYPERPARAMETERS[model_type])
    for key, value in (overrides or {}).items():
        if key not in accepted:
            hint = (
                " (random_state is a separate argument, not a hyperparameter)"
                if key == "random_state"
                else ""
            )
            raise TrainingError(
                f"hyperparameter {key!r} is not valid for model_type {model_type!r}{hint}; "
                f"valid keys: {', '.join(accepted)}"
            )
        if value is not None:
            resolved[key] = value
    return resolved


def build_pipeline(
    model_type: str,
    hyperparameters: Mapping[str, Any] | None = None,
    random_state: int = DEFAULT_RANDOM_STATE,
    n_rows: int | None = None,
) -> Pipeline:
    """Unfitted ``StandardScaler -> classifier`` pipeline (missing hyperparameters = defaults).

    ``n_rows``, the rows it will be fitted on, caps a whole-number ``max_samples`` and, below
    ``MIN_EARLY_STOPPING_ROWS``, turns off histogram boosting's early stopping (too few rows).
    """
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    params = resolve_hyperparameters(model_type, hyperparameters)
    max_samples = params.get("max_samples")
    if isinstance(max_samples, int) and n_rows is not None:
        params["max_samples"] = min(max_samples, n_rows)
    classifier: Any
    if model_type == "random_forest":
        classifier = RandomForestClassifier(**params, random_state=random_state)
    elif model_type == "gradient_boosting":
        classifier = GradientBoostingClassifier(**params, random_state=random_state)
    elif model_type == "hist_gradient_boosting":
        early = n_rows is None or n_rows >= MIN_EARLY_STOPPING_ROWS
        classifier = HistGradientBoostingClassifier(
            **params, early_stopping=early, random_state=random_state
        )
    else:
        classifier = LogisticRegression(**params, random_state=random_state)
    return Pipeline([("scaler", StandardScaler()), ("classifier", classifier)])


def _require_columns(features: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise TrainingError(f"features table is missing column(s): {', '.join(missing)}")


class TimeSplit(NamedTuple):
    """The labelled rows split by date: ``train`` strictly before ``test``."""

    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def train_window(self) -> DateWindow:
        return DateWindow.of(self.train[DATE_COLUMN])

    @property
    def test_window(self) -> DateWindow:
        return DateWindow.of(self.test[DATE_COLUMN])


def time_split(features: pd.DataFrame, test_size: float = 0.2) -> TimeSplit:
    """Chronological train/test split on the labelled rows (Target not NA), never shuffled.

    The test set is every row on the last ``test_size`` fraction of the distinct dates (all
    tickers together); the cut is ``int(n_dates * (1 - test_size))``, which for a single ticker
    equals the reference pipeline's ``split_idx = int(len(X) * (1 - test_size))``. Rows come
    back sorted by date then ticker. Computed once per run; the windows travel with the model.
    """
    check_test_size(test_size)
    _require_columns(features, [DATE_COLUMN, TARGET_COLUMN])
    # the labelled rows, by date then ticker (stable), gathered in one copy of the table
    rows = np.flatnonzero(features[TARGET_COLUMN].notna().to_numpy())
    sort_keys = [features[DATE_COLUMN].to_numpy()[rows]]
    if TICKER_COLUMN in features.columns:
        tickers = features[TICKER_COLUMN].to_numpy()[rows]
        sort_keys.insert(0, pd.factorize(tickers, sort=True)[0])  # lexsort: last key first
    labelled = features.take(rows[np.lexsort(sort_keys)])

    dates = np.sort(labelled[DATE_COLUMN].unique())
    n_dates = len(dates)
    cut = int(n_dates * (1 - test_size))
    if cut == 0 or cut == n_dates:
        empty = "training" if cut == 0 else "test"
        raise TrainingError(
            f"time split leaves the {empty} set empty: {n_dates} distinct labelled date(s) "
            f"with test_size={test_size} gives {cut} train and {n_dates - cut} test date(s); "
            "provide more history or change test_size"
        )
    # sorted by date: the two windows are slices of one table, not two more copies of it
    first_test_row = int(np.searchsorted(labelled[DATE_COLUMN].to_numpy(), dates[cut]))
    return TimeSplit(labelled.iloc[:first_test_row], labelled.iloc[first_test_row:])


def labelled_rows_in(features: pd.DataFrame, window: DateWindow) -> pd.DataFrame:
    """The labelled rows dated within ``window``, e.g. a trained model's test rows."""
    labelled = features.loc[features[TARGET_COLUMN].notna()]
    return labelled.loc[window.contains(labelled[DATE_COLUMN])]


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
    _require_columns(train, columns)

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
