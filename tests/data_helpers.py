"""Helpers shared by the data tests: one ticker's rows, the normalised OHLCV frame's shape."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stock_assets.core.data import OHLCV_COLUMNS, PRICE_COLUMNS


def one(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """The rows of ``ticker``, indexed from 0."""
    return frame[frame["Ticker"] == ticker].reset_index(drop=True)


def assert_normalised(frame: pd.DataFrame) -> None:
    """``frame`` has the loaders' form: OHLCV columns and dtypes, sorted by ticker and date."""
    assert list(frame.columns) == OHLCV_COLUMNS
    assert frame["Date"].dtype == "datetime64[ns]"
    assert frame["Ticker"].dtype == object
    assert all(frame[c].dtype == np.float64 for c in PRICE_COLUMNS)
    assert frame["Volume"].dtype == np.int64
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
    keys = frame[["Ticker", "Date"]]
    assert keys.equals(keys.sort_values(["Ticker", "Date"]).reset_index(drop=True))
