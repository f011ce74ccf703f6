"""Data-quality checks. A failure that would poison training is blocking: downstream won't run.

The two checks of each table run in one step (a ``@multi_asset_check``), so the table is read
from storage once, not once per check; each check keeps its own name, result, metadata and
MLflow tag, and can still be run on its own (the step computes only the selected checks).
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    multi_asset_check,
)

from stock_assets.core.data import PRICE_COLUMNS, duplicate_bars
from stock_assets.core.evaluation import single_class_problem
from stock_assets.core.features import FEATURE_COLUMNS, TARGET_COLUMN
from stock_assets.defs.assets.data import stock_data
from stock_assets.defs.assets.features import features
from stock_assets.defs.resources import MlflowTracking
from stock_assets.mlflow_ops.run_logging import set_tags


@dataclass(frozen=True)
class Outcome:
    """What a check found: whether it passed, the problem if not, and what it measured."""

    passed: bool
    problem: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


def ohlc_consistent(bars: pd.DataFrame) -> Outcome:
    """Prices are positive and Low <= Open, Close <= High on every bar."""
    open_, high, low, close = (
        bars[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in PRICE_COLUMNS
    )
    not_positive = int(np.count_nonzero((open_ <= 0) | (high <= 0) | (low <= 0) | (close <= 0)))
    # fmin/fmax skip a NaN as pandas' row-wise min/max do.
    outside = int(np.count_nonzero((np.fmin(open_, close) < low) | (np.fmax(open_, close) > high)))
    return Outcome(
        passed=not_positive == 0 and outside == 0,
        problem=f"{not_positive} bars with a price <= 0 and {outside} with Open or Close "
        "outside [Low, High]; expected 0 < Low <= Open, Close <= High",
        metadata={"bars_not_positive": not_positive, "bars_outside_low_high": outside},
    )


def sorted_by_ticker_and_date(bars: pd.DataFrame) -> bool:
    """Whether the rows are in (Ticker, Date) order: a stable sort would leave them in place.

    Fast path: string tickers and dates without gaps in them whose (ticker, date) keys never
    decrease from one row to the next. Anything else is decided by sorting, as pandas does.
    """
    codes, symbols = pd.factorize(bars["Ticker"], sort=True)
    dates = bars["Date"].to_numpy(dtype="datetime64[ns]")
    if (
        (codes >= 0).all()
        and all(isinstance(s, str) for s in symbols)
        and not np.isnat(dates).any()
    ):
        days = dates.view(np.int64)
        same = codes[1:] == codes[:-1]
        if (codes[1:] >= codes[:-1]).all() and (days[1:][same] >= days[:-1][same]).all():
            return True
    ordered = bars.sort_values(["Ticker", "Date"], kind="stable").index
    return bool((ordered == bars.index).all())


def unique_sorted_bars(bars: pd.DataFrame) -> Outcome:
    """One bar per (Ticker, Date), sorted by Ticker then Date."""
    duplicates = int(duplicate_bars(bars).sum())
    is_sorted = sorted_by_ticker_and_date(bars)
    return Outcome(
        passed=duplicates == 0 and is_sorted,
        problem=f"{duplicates} duplicate (Ticker, Date) bars, sorted={is_sorted}; "
        "expected one bar per ticker and date, sorted",
        metadata={"duplicate_bars": duplicates, "sorted": is_sorted},
    )


def features_finite(table: pd.DataFrame) -> Outcome:
    """No NaN or infinite value in the 22 feature columns."""
    per_column = {}
    for name in FEATURE_COLUMNS:  # one column at a time: no copy of the whole block
        values = table[name].to_numpy(dtype=np.float64, na_value=np.nan)
        count = int(values.size - np.count_nonzero(np.isfinite(values)))
        if count:
            per_column[name] = count
    metadata: dict[str, Any] = {
        "features_checked": len(FEATURE_COLUMNS),
        "non_finite_values": sum(per_column.values()),
    }
    if per_column:  # only when there is something to name
        metadata["columns_with_non_finite"] = ", ".join(f"{c} ({n})" for c, n in per_column.items())
    return Outcome(
        passed=not per_column,
        problem=f"non-finite values in {', '.join(per_column)}; expected finite features",
        metadata=metadata,
    )


def target_has_both_classes(table: pd.DataFrame) -> Outcome:
    """Both up and down days are present among the labelled rows."""
    target = table[TARGET_COLUMN].dropna().astype(int)
    problem = single_class_problem(target, where="Target of the labelled rows")
    return Outcome(
        passed=problem is None,
        problem=problem,
        metadata={"up_days": int((target == 1).sum()), "down_days": int((target == 0).sum())},
    )


def _specs(asset: Any, *checks: Callable[[pd.DataFrame], Outcome]) -> list[AssetCheckSpec]:
    """One blocking spec per check, named and described by its function."""
    return [
        AssetCheckSpec(c.__name__, asset=asset, blocking=True, description=c.__doc__)
        for c in checks
    ]


def _results(
    context: AssetCheckExecutionContext,
    mlflow: MlflowTracking,
    table: pd.DataFrame,
    checks: dict[str, Callable[[pd.DataFrame], Outcome]],
) -> Iterator[AssetCheckResult]:
    """The selected checks' results on ``table``, each mirrored as an MLflow tag."""
    for key in sorted(context.selected_asset_check_keys, key=lambda k: k.name):
        outcome = checks[key.name](table)
        with mlflow.reporting_errors():
            tag = {f"check.{key.name}": "passed" if outcome.passed else "failed"}
            set_tags(mlflow.client, mlflow.run_id, tag)
        yield AssetCheckResult(
            asset_key=key.asset_key,
            check_name=key.name,
            passed=outcome.passed,
            severity=AssetCheckSeverity.ERROR,
            description=None if outcome.passed else outcome.problem,
            metadata=outcome.metadata,
        )


BAR_CHECKS = (ohlc_consistent, unique_sorted_bars)
FEATURE_CHECKS = (features_finite, target_has_both_classes)


@multi_asset_check(
    specs=_specs(stock_data, *BAR_CHECKS), can_subset=True, ins={"stock_data": stock_data.key}
)
def stock_data_checks(
    context: AssetCheckExecutionContext, stock_data: pd.DataFrame, mlflow: MlflowTracking
) -> Iterator[AssetCheckResult]:
    """The checks of the bars, on one read of the table."""
    yield from _results(context, mlflow, stock_data, {c.__name__: c for c in BAR_CHECKS})


@multi_asset_check(
    specs=_specs(features, *FEATURE_CHECKS), can_subset=True, ins={"features": features.key}
)
def features_checks(
    context: AssetCheckExecutionContext, features: pd.DataFrame, mlflow: MlflowTracking
) -> Iterator[AssetCheckResult]:
    """The checks of the features table, on one read of the table."""
    yield from _results(context, mlflow, features, {c.__name__: c for c in FEATURE_CHECKS})
