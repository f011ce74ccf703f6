"""Data-quality checks. A failure that would poison training is blocking: downstream won't run."""

import numpy as np
import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, asset_check

from stock_assets.core.data import duplicate_bars
from stock_assets.core.features import FEATURE_COLUMNS, TARGET_COLUMN
from stock_assets.core.training import single_class_problem
from stock_assets.defs.assets.data import stock_data
from stock_assets.defs.assets.features import features
from stock_assets.defs.resources import MlflowTracking


def _result(
    context: AssetCheckExecutionContext,
    mlflow: MlflowTracking,
    passed: bool,
    problem: str | None,
    metadata: dict,
) -> AssetCheckResult:
    """The check's result, described by ``problem`` when it fails, mirrored as an MLflow tag."""
    name = context.check_specs[0].name
    mlflow.set_tag(f"check.{name}", "passed" if passed else "failed")
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=None if passed else problem,
        metadata=metadata,
    )


@asset_check(asset=stock_data, blocking=True)
def ohlc_consistent(
    context: AssetCheckExecutionContext, stock_data: pd.DataFrame, mlflow: MlflowTracking
) -> AssetCheckResult:
    """Prices are positive and Low <= Open, Close <= High on every bar."""
    prices = stock_data[["Open", "High", "Low", "Close"]]
    not_positive = int((prices <= 0).any(axis=1).sum())
    low = stock_data["Low"]
    high = stock_data["High"]
    outside = int(
        (
            (stock_data[["Open", "Close"]].min(axis=1) < low)
            | (stock_data[["Open", "Close"]].max(axis=1) > high)
        ).sum()
    )
    return _result(
        context,
        mlflow,
        passed=not_positive == 0 and outside == 0,
        problem=f"{not_positive} bars with a price <= 0 and {outside} with Open or Close "
        "outside [Low, High]; expected 0 < Low <= Open, Close <= High",
        metadata={"bars_not_positive": not_positive, "bars_outside_low_high": outside},
    )


@asset_check(asset=stock_data, blocking=True)
def unique_sorted_bars(
    context: AssetCheckExecutionContext, stock_data: pd.DataFrame, mlflow: MlflowTracking
) -> AssetCheckResult:
    """One bar per (Ticker, Date), sorted by Ticker then Date."""
    duplicates = int(duplicate_bars(stock_data).sum())
    ordered = stock_data.sort_values(["Ticker", "Date"], kind="stable").index
    is_sorted = bool((ordered == stock_data.index).all())
    return _result(
        context,
        mlflow,
        passed=duplicates == 0 and is_sorted,
        problem=f"{duplicates} duplicate (Ticker, Date) bars, sorted={is_sorted}; "
        "expected one bar per ticker and date, sorted",
        metadata={"duplicate_bars": duplicates, "sorted": is_sorted},
    )


@asset_check(asset=features, blocking=True)
def features_finite(
    context: AssetCheckExecutionContext, features: pd.DataFrame, mlflow: MlflowTracking
) -> AssetCheckResult:
    """No NaN or infinite value in the 22 feature columns."""
    values = features[FEATURE_COLUMNS].to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    per_column = {
        name: int(count)
        for name, count in zip(FEATURE_COLUMNS, bad.sum(axis=0), strict=True)
        if count
    }
    metadata = {"features_checked": len(FEATURE_COLUMNS), "non_finite_values": int(bad.sum())}
    if per_column:  # only when there is something to name
        metadata["columns_with_non_finite"] = ", ".join(f"{c} ({n})" for c, n in per_column.items())
    return _result(
        context,
        mlflow,
        passed=not per_column,
        problem=f"non-finite values in {', '.join(per_column)}; expected finite features",
        metadata=metadata,
    )


@asset_check(asset=features, blocking=True)
def target_has_both_classes(
    context: AssetCheckExecutionContext, features: pd.DataFrame, mlflow: MlflowTracking
) -> AssetCheckResult:
    """Both up and down days are present among the labelled rows."""
    target = features[TARGET_COLUMN].dropna().astype(int)
    problem = single_class_problem(target, where="Target of the labelled rows")
    return _result(
        context,
        mlflow,
        passed=problem is None,
        problem=problem,
        metadata={"up_days": int((target == 1).sum()), "down_days": int((target == 0).sum())},
    )
