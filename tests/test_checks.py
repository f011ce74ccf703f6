"""The asset checks: each finds its fault, and the two checks of a table share one read of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dagster import AssetCheckKey, AssetKey, AssetSelection, DagsterEventType

from stock_assets.core.data import generate_gbm
from stock_assets.core.features import compute_features
from stock_assets.defs.checks import (
    features_finite,
    ohlc_consistent,
    sorted_by_ticker_and_date,
    target_has_both_classes,
    unique_sorted_bars,
)
from tests.conftest import failure_text, mlflow_run_for, run_graph


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return generate_gbm(days=70, tickers=["AAA", "BBB", "CCC"])


def test_ohlc_consistent_counts_bad_prices_and_bars_outside_their_range(bars) -> None:
    assert ohlc_consistent(bars).metadata == {"bars_not_positive": 0, "bars_outside_low_high": 0}
    bad = bars.copy()
    bad.loc[3, "Low"] = bad.loc[3, ["Open", "Close"]].min() + 0.01  # Low above Open or Close
    bad.loc[9, "High"] = bad.loc[9, ["Open", "Close"]].max() - 0.01
    bad.loc[20, "Open"] = -1.0
    outcome = ohlc_consistent(bad)
    assert not outcome.passed and "expected 0 < Low" in outcome.problem
    # Row 20: Open < 0 is also below Low.
    assert outcome.metadata == {"bars_not_positive": 1, "bars_outside_low_high": 3}


def _sorted_by_pandas(frame: pd.DataFrame) -> bool:
    """The check's definition: a stable sort by (Ticker, Date) leaves every row in place."""
    ordered = frame.sort_values(["Ticker", "Date"], kind="stable").index
    return bool((ordered == frame.index).all())


def test_sorted_means_a_stable_sort_would_move_nothing(bars) -> None:
    by_ticker = {t: bars[bars["Ticker"] == t] for t in ("AAA", "BBB", "CCC")}
    frames = {
        "sorted": bars,
        "tickers out of order": pd.concat([by_ticker["BBB"], by_ticker["AAA"], by_ticker["CCC"]]),
        "two dates swapped": bars.iloc[[*range(10), 11, 10, *range(12, len(bars))]],
        "a repeated bar, adjacent": bars.iloc[[0, 0, *range(1, len(bars))]],
        "another index": bars.set_axis(range(100, 100 + len(bars))),
        "reversed": bars.iloc[::-1],
        "a missing ticker": bars.assign(Ticker=bars["Ticker"].where(bars.index != 5, None)),
        "a missing date": bars.assign(Date=bars["Date"].where(bars.index != 0, pd.NaT)),
    }
    found = {name: sorted_by_ticker_and_date(f) for name, f in frames.items()}
    assert found == {name: _sorted_by_pandas(f) for name, f in frames.items()}
    assert found["sorted"] and not found["tickers out of order"]
    assert not found["two dates swapped"] and not found["a missing date"]


def test_unique_sorted_bars_reports_duplicates_and_order(bars) -> None:
    assert unique_sorted_bars(bars).metadata == {"duplicate_bars": 0, "sorted": True}
    repeated = pd.concat([bars, bars.iloc[[5]]], ignore_index=True)
    outcome = unique_sorted_bars(repeated)
    assert not outcome.passed
    assert outcome.metadata == {"duplicate_bars": 1, "sorted": False}


def test_features_finite_names_each_column_with_non_finite_values(bars) -> None:
    table = compute_features(bars)
    assert features_finite(table).passed
    table.loc[[2, 4], "RSI"] = [np.nan, np.inf]
    table.loc[7, "Gap"] = -np.inf
    outcome = features_finite(table)
    assert not outcome.passed and "RSI, Gap" in outcome.problem
    assert outcome.metadata == {
        "features_checked": 22,
        "non_finite_values": 3,
        "columns_with_non_finite": "RSI (2), Gap (1)",
    }


def test_target_has_both_classes_counts_up_and_down_days(bars) -> None:
    table = compute_features(bars)
    outcome = target_has_both_classes(table)
    assert outcome.passed
    labelled = table["Target"].dropna()
    assert outcome.metadata == {
        "up_days": int((labelled == 1).sum()),
        "down_days": int((labelled == 0).sum()),
    }
    all_up = table.assign(Target=table["Target"].where(table["Target"].isna(), 1))
    outcome = target_has_both_classes(all_up)
    assert not outcome.passed and "single class" in outcome.problem


@pytest.mark.slow
def test_each_tables_checks_read_it_once_and_one_check_runs_alone(data_dir) -> None:
    result = run_graph(selection=AssetSelection.assets("stock_data", "features"))
    assert result.success, failure_text(result)
    evaluations = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == dict.fromkeys(
        ["ohlc_consistent", "unique_sorted_bars", "features_finite", "target_has_both_classes"],
        True,
    )
    loads: dict[str, int] = {}
    for event in result.all_events:
        if event.event_type == DagsterEventType.LOADED_INPUT:
            loads[event.step_key] = loads.get(event.step_key, 0) + 1
    assert loads == {"features": 1, "stock_data_checks": 1, "features_checks": 1}
    tags = mlflow_run_for(result).data.tags
    assert {k: v for k, v in tags.items() if k.startswith("check.")} == {
        f"check.{name}": "passed" for name in evaluations
    }

    only = AssetCheckKey(AssetKey("features"), "features_finite")
    alone = run_graph(selection=AssetSelection.checks(only))
    assert alone.success, failure_text(alone)
    assert [e.asset_check_key for e in alone.get_asset_check_evaluations()] == [only]
