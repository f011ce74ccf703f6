"""The polars yardstick of the benchmarks computes what compute_features computes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.columnar_features import columnar_features_pandas
from stock_assets.core.data import generate_gbm
from stock_assets.core.features import FEATURE_COLUMNS, TARGET_COLUMN, compute_features


@pytest.mark.parametrize(
    ("days", "tickers"),
    [(500, ["SYNTH"]), (90, ["CCC", "AAA", "BBB"])],
    ids=["seed", "three tickers"],
)
def test_polars_features_equal_compute_features(days: int, tickers: list[str]) -> None:
    bars = generate_gbm(days=days, seed=3, tickers=tickers)
    shuffled = bars.sample(frac=1.0, random_state=0)  # both sort by (Ticker, Date) themselves
    expected = compute_features(shuffled)
    actual = columnar_features_pandas(shuffled)
    assert list(actual.columns) == list(expected.columns)
    assert (actual.dtypes == expected.dtypes).all(), actual.dtypes
    assert len(actual) == len(expected) == len(tickers) * (days - 49)
    pd.testing.assert_frame_equal(
        actual.drop(columns=[*FEATURE_COLUMNS, TARGET_COLUMN]),
        expected.drop(columns=[*FEATURE_COLUMNS, TARGET_COLUMN]),
    )
    np.testing.assert_allclose(
        actual[FEATURE_COLUMNS].to_numpy(), expected[FEATURE_COLUMNS].to_numpy(), rtol=1e-9
    )
    # Same NA pattern (each ticker's last row) and the same labels elsewhere.
    pd.testing.assert_series_equal(actual[TARGET_COLUMN], expected[TARGET_COLUMN])
    assert actual[TARGET_COLUMN].isna().sum() == len(tickers)


def test_polars_drops_rows_with_a_nan_feature_as_compute_features() -> None:
    bars = generate_gbm(days=120, seed=5, tickers=["AAA", "BBB"])
    flat = bars.index[(bars["Ticker"] == "AAA")][60:80]  # 20 flat days: 0/0 in BB_Position
    bars.loc[flat, ["Open", "High", "Low", "Close"]] = 50.0
    expected = compute_features(bars)
    actual = columnar_features_pandas(bars)
    assert len(expected) < 2 * (120 - 49)  # the flat window dropped some rows
    pd.testing.assert_frame_equal(actual[["Ticker", "Date"]], expected[["Ticker", "Date"]])
    np.testing.assert_allclose(
        actual[FEATURE_COLUMNS].to_numpy(), expected[FEATURE_COLUMNS].to_numpy(), rtol=1e-9
    )
