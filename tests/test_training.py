"""Tests for stock_assets.core.training and stock_assets.core.plots (plain pytest, no Dagster)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from stock_assets.core import plots
from stock_assets.core.errors import TrainingError
from stock_assets.core.estimators import (
    DEFAULT_HYPERPARAMETERS,
    MODEL_TYPES,
    build_pipeline,
    resolve_hyperparameters,
)
from stock_assets.core.evaluation import check_both_classes, evaluate
from stock_assets.core.features import FEATURE_COLUMNS
from stock_assets.core.splits import labelled_rows_in, time_split
from stock_assets.core.training import train_and_evaluate

FEATURES = FEATURE_COLUMNS
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Small models keep the suite fast; the keys are valid for each model type.
FAST = {
    "random_forest": {"n_estimators": 15, "max_depth": 4},
    "gradient_boosting": {"n_estimators": 15, "max_depth": 2},
    "logistic": {"C": 1.0},
    "hist_gradient_boosting": {"max_iter": 30, "max_leaf_nodes": 7},
}


def make_features(
    tickers: tuple[str, ...] = ("AAA", "BBB", "CCC"), n_dates: int = 60, seed: int = 0
) -> pd.DataFrame:
    """Random features table shaped like the real one; Target depends on Return_1d."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-01", periods=n_dates)
    frames = []
    for ticker in tickers:
        n = len(dates)
        close = 100 + rng.normal(0, 1, n).cumsum()
        frame = pd.DataFrame(
            {
                "Date": dates,
                "Ticker": ticker,
                "Open": close,
                "High": close + 1,
                "Low": close - 1,
                "Close": close,
                "Volume": rng.integers(1_000, 10_000, n),
            }
        )
        for name in FEATURES:
            frame[name] = rng.normal(0, 1, n)
        signal = frame["Return_1d"] + 0.5 * rng.normal(0, 1, n)
        target = pd.array((signal > 0).astype(int), dtype="Int8")
        target[-1] = pd.NA  # tomorrow unknown for each ticker's last row
        frame["Target"] = target
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return make_features()


# --- time_split -----------------------------------------------------------------------------


def test_time_split_is_chronological_and_labelled_only(features: pd.DataFrame) -> None:
    train, test = time_split(features, test_size=0.2)
    assert train["Date"].max() < test["Date"].min()
    assert train["Target"].notna().all() and test["Target"].notna().all()
    labelled = features[features["Target"].notna()]
    assert len(train) + len(test) == len(labelled)
    # every labelled row of a test date is in the test set (all tickers together)
    test_dates = set(test["Date"])
    assert len(test) == labelled["Date"].isin(test_dates).sum()
    n_dates = labelled["Date"].nunique()
    assert train["Date"].nunique() == int(n_dates * 0.8)


@pytest.mark.parametrize("test_size", [0.2, 0.25, 0.3, 0.5])
def test_time_split_matches_reference_split_idx_for_one_ticker(test_size: float) -> None:
    frame = make_features(tickers=("AAA",), n_dates=47)
    labelled = frame[frame["Target"].notna()].reset_index(drop=True)
    split_idx = int(len(labelled) * (1 - test_size))  # the reference pipeline's rule
    train, test = time_split(frame, test_size=test_size)
    pd.testing.assert_frame_equal(train.reset_index(drop=True), labelled.iloc[:split_idx])
    pd.testing.assert_frame_equal(
        test.reset_index(drop=True), labelled.iloc[split_idx:].reset_index(drop=True)
    )


def test_windows_select_the_split_rows_again(features: pd.DataFrame) -> None:
    split = time_split(features, 0.25)
    assert split.train_window.last < split.test_window.first
    test_rows = labelled_rows_in(features, split.test_window)
    pd.testing.assert_frame_equal(
        test_rows.sort_values(["Date", "Ticker"]), split.test, check_like=True
    )
    assert len(labelled_rows_in(features, split.train_window)) == len(split.train)


def test_time_split_ignores_input_row_order(features: pd.DataFrame) -> None:
    shuffled = features.sample(frac=1.0, random_state=1)
    for ours, theirs in zip(time_split(features, 0.2), time_split(shuffled, 0.2), strict=True):
        pd.testing.assert_frame_equal(ours, theirs)


def test_time_split_empty_side_raises() -> None:
    frame = make_features(tickers=("AAA",), n_dates=2)  # one labelled date
    with pytest.raises(TrainingError, match=r"1 distinct labelled date.*test_size=0.2"):
        time_split(frame, test_size=0.2)


@pytest.mark.parametrize("test_size", [0, 1, -0.1, 1.5])
def test_time_split_rejects_bad_test_size(features: pd.DataFrame, test_size: float) -> None:
    with pytest.raises(TrainingError, match="test_size"):
        time_split(features, test_size=test_size)


# --- configuration errors -------------------------------------------------------------------


def test_unknown_model_type_lists_allowed(features: pd.DataFrame) -> None:
    calls = [
        lambda: resolve_hyperparameters("xgboost", {}),
        lambda: build_pipeline("xgboost", {}),
        lambda: train_and_evaluate(time_split(features), "xgboost", feature_columns=FEATURES),
    ]
    for call in calls:
        with pytest.raises(TrainingError) as info:
            call()
        message = str(info.value)
        assert "xgboost" in message
        for allowed in MODEL_TYPES:
            assert allowed in message


def test_invalid_hyperparameter_key() -> None:
    with pytest.raises(TrainingError) as info:
        resolve_hyperparameters("logistic", {"max_depth": 3})
    message = str(info.value)
    for fragment in ("max_depth", "logistic", "C", "max_iter"):
        assert fragment in message
    with pytest.raises(TrainingError, match="separate argument"):
        resolve_hyperparameters("random_forest", {"random_state": 0})


def test_resolve_merges_defaults_and_skips_none() -> None:
    resolved = resolve_hyperparameters(
        "gradient_boosting", {"learning_rate": 0.05, "max_depth": None}
    )
    assert resolved == {"n_estimators": 100, "max_depth": 5, "learning_rate": 0.05}
    assert DEFAULT_HYPERPARAMETERS["gradient_boosting"]["learning_rate"] == 0.1  # not mutated
    assert resolve_hyperparameters("logistic", None) == {"C": 1.0, "max_iter": 1000}


def test_pipeline_is_scaler_then_classifier_with_the_random_state() -> None:
    pipeline = build_pipeline("random_forest")
    assert [name for name, _ in pipeline.steps] == ["scaler", "classifier"]
    params = pipeline.named_steps["classifier"].get_params()
    assert params["random_state"] == 42
    assert params["n_estimators"] == DEFAULT_HYPERPARAMETERS["random_forest"]["n_estimators"]


def test_single_class_training_target(features: pd.DataFrame) -> None:
    frame = features.copy()
    frame.loc[frame["Target"].notna(), "Target"] = 1
    with pytest.raises(TrainingError) as info:
        train_and_evaluate(time_split(frame), "logistic", feature_columns=FEATURES)
    message = str(info.value)
    train, _ = time_split(frame, 0.2)
    assert "single class" in message and "1 = up" in message
    assert f"all {len(train)} rows" in message
    with pytest.raises(TrainingError, match="0 = down"):
        check_both_classes(np.zeros(5, dtype=int), where="test target")
    with pytest.raises(TrainingError, match=r"found \[2\]"):
        check_both_classes([0, 1, 2])
    check_both_classes([0, 1, 1])  # no error


def test_missing_and_non_finite_features_raise(features: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match="missing column"):
        train_and_evaluate(time_split(features.drop(columns=["RSI"])), feature_columns=FEATURES)
    frame = features.copy()
    frame.loc[0, "SMA_50"] = np.nan
    frame.loc[1, "Volume_Ratio"] = np.inf
    with pytest.raises(TrainingError, match=r"SMA_50 \(1\), Volume_Ratio \(1\)"):
        train_and_evaluate(time_split(frame), feature_columns=FEATURES)


# --- training and evaluation ----------------------------------------------------------------


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_each_model_type_trains(features: pd.DataFrame, model_type: str) -> None:
    result = train_and_evaluate(
        time_split(features, 0.2), model_type, FAST[model_type], feature_columns=FEATURES
    )
    expected_keys = {"accuracy", "precision", "recall", "f1", "baseline_accuracy", "roc_auc"}
    assert set(result.metrics) == expected_keys
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())

    # baseline, computed independently: last 20% of labelled dates is the test set
    labelled = features[features["Target"].notna()].sort_values(["Date", "Ticker"])
    dates = sorted(labelled["Date"].unique())
    cut = int(len(dates) * 0.8)
    y_train = labelled.loc[labelled["Date"] < dates[cut], "Target"].astype(int)
    y_test = labelled.loc[labelled["Date"] >= dates[cut], "Target"].astype(int)
    majority = int(y_train.mean() >= 0.5)
    assert result.baseline_class == majority
    assert result.metrics["baseline_accuracy"] == pytest.approx((y_test == majority).mean())

    assert result.n_train == len(y_train) and result.n_test == len(y_test)
    assert str(result.train_window) == f"{dates[0]:%Y-%m-%d}..{dates[cut - 1]:%Y-%m-%d}"
    assert str(result.test_window) == f"{dates[cut]:%Y-%m-%d}..{dates[-1]:%Y-%m-%d}"
    assert np.array_equal(result.y_test, y_test.to_numpy())
    assert len(result.y_score) == result.n_test
    assert ((result.y_score >= 0) & (result.y_score <= 1)).all()
    cm = np.array(result.confusion_matrix)
    assert cm.shape == (2, 2) and cm.sum() == result.n_test
    assert result.metrics["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())


def test_deterministic(features: pd.DataFrame) -> None:
    for model_type in ("random_forest", "gradient_boosting"):
        split = time_split(features)
        a = train_and_evaluate(split, model_type, FAST[model_type], feature_columns=FEATURES)
        b = train_and_evaluate(split, model_type, FAST[model_type], feature_columns=FEATURES)
        assert a.metrics == b.metrics
        assert a.confusion_matrix == b.confusion_matrix
        assert np.array_equal(a.y_score, b.y_score)
        pd.testing.assert_series_equal(a.feature_importances, b.feature_importances)


def test_shuffled_input_gives_same_model(features: pd.DataFrame) -> None:
    shuffled = features.sample(frac=1.0, random_state=3)
    a = train_and_evaluate(
        time_split(features), "random_forest", FAST["random_forest"], feature_columns=FEATURES
    )
    b = train_and_evaluate(
        time_split(shuffled), "random_forest", FAST["random_forest"], feature_columns=FEATURES
    )
    assert a.metrics == b.metrics
    assert np.array_equal(a.y_score, b.y_score)


@pytest.mark.parametrize(
    ("model_type", "overrides"),
    [
        ("random_forest", {"n_estimators": 7, "max_depth": 3}),
        ("gradient_boosting", {"n_estimators": 9, "learning_rate": 0.05}),
        ("logistic", {"C": 0.1, "max_iter": 200}),
    ],
)
def test_overrides_reach_estimator(
    features: pd.DataFrame, model_type: str, overrides: dict[str, float]
) -> None:
    result = train_and_evaluate(
        time_split(features), model_type, overrides, random_state=7, feature_columns=FEATURES
    )
    params = result.pipeline.named_steps["classifier"].get_params()
    expected = {**DEFAULT_HYPERPARAMETERS[model_type], **overrides}
    assert result.hyperparameters == expected
    for key, value in expected.items():
        assert params[key] == value
    assert params["random_state"] == 7


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_feature_importances(features: pd.DataFrame, model_type: str) -> None:
    split = time_split(features)
    result = train_and_evaluate(split, model_type, FAST[model_type], feature_columns=FEATURES)
    importances = result.feature_importances
    assert importances is not None
    assert sorted(importances.index) == sorted(FEATURES) and len(importances) == len(FEATURES)
    assert importances.is_monotonic_decreasing
    assert (importances >= 0).all()
    assert importances.index[0] == "Return_1d"  # the only informative feature


def test_evaluate_edge_cases() -> None:
    metrics = evaluate([1, 1, 1], [0, 0, 0], y_score=[0.2, 0.3, 0.4], baseline_class=1)
    assert metrics == {
        "accuracy": 0.0,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "baseline_accuracy": 1.0,
    }  # no roc_auc: a single class in y_true
    assert "baseline_accuracy" not in evaluate([0, 1], [0, 1])
    assert evaluate([0, 1], [0, 1], y_score=[0.1, 0.9])["roc_auc"] == 1.0


def test_default_feature_columns_are_the_reference_pipelines(features: pd.DataFrame) -> None:
    from tests.support.reference import REFERENCE_FEATURE_COLUMNS

    result = train_and_evaluate(time_split(features), "logistic")
    assert result.feature_columns == REFERENCE_FEATURE_COLUMNS


def test_trains_on_compute_features_output() -> None:
    from stock_assets.core.features import compute_features

    rng = np.random.default_rng(5)
    frames = []
    for ticker in ("AAA", "BBB"):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 120)))
        frames.append(
            pd.DataFrame(
                {
                    "Date": pd.bdate_range("2023-01-02", periods=120),
                    "Ticker": ticker,
                    "Open": close * (1 + rng.normal(0, 0.002, 120)),
                    "High": close * 1.01,
                    "Low": close * 0.99,
                    "Close": close,
                    "Volume": rng.integers(1_000, 10_000, 120),
                }
            )
        )
    table = compute_features(pd.concat(frames, ignore_index=True))
    result = train_and_evaluate(time_split(table), "random_forest", FAST["random_forest"])
    assert result.n_train + result.n_test == int(table["Target"].notna().sum())
    assert result.train_window.last < result.test_window.first


# --- plots ----------------------------------------------------------------------------------


def assert_png(path, min_side: int = 200) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = plt.imread(path)
    assert image.shape[0] >= min_side and image.shape[1] >= min_side
    assert image.std() > 0  # not a blank canvas


def test_plots_write_png(tmp_path, features: pd.DataFrame) -> None:
    result = train_and_evaluate(time_split(features), "logistic", feature_columns=FEATURES)
    written = [
        plots.confusion_matrix_png(result.confusion_matrix, tmp_path / "cm.png"),
        plots.roc_curve_png(result.y_test, result.y_score, tmp_path / "roc.png"),
        plots.roc_curve_png([1, 1, 1], [0.2, 0.5, 0.9], tmp_path / "roc_single.png"),
        plots.feature_importance_png(result.feature_importances, tmp_path / "sub" / "fi.png"),
        plots.scores_bar_png(
            pd.Series({"random_forest n=50": 0.52, "logistic C=0.1": 0.55}),
            tmp_path / "scores_series.png",
            baseline=0.51,
        ),
    ]
    for path in written:
        assert path.exists()
        assert_png(path)
    assert plt.get_fignums() == []  # every figure closed
