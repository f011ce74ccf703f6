"""The 22 features and Target in polars: the columnar yardstick for the ``features`` step.

A benchmark comparator, not used by the pipeline: the same formulas as
:func:`stock_assets.core.features.compute_features` (rolling windows and exponential means per
ticker with ``.over("Ticker")``, ddof=1, adjust=True), and the same rows kept (each ticker's
warm-up and any row with a NaN feature dropped). ``tests/test_columnar_features.py`` checks
that both agree to 1e-9 at seed size.
"""

from __future__ import annotations

import pandas as pd
import polars as pl

from stock_assets.core.data import OHLCV_COLUMNS
from stock_assets.core.features import FEATURE_COLUMNS, TARGET_COLUMN


def _per_ticker(expr: pl.Expr) -> pl.Expr:
    return expr.over("Ticker")


def columnar_features(bars: pl.DataFrame) -> pl.DataFrame:
    """``compute_features`` in polars, for bars with the OHLCV columns (any row order)."""
    close, high, low = pl.col("Close"), pl.col("High"), pl.col("Low")
    volume = pl.col("Volume").cast(pl.Float64)
    prev_close = _per_ticker(close.shift(1))

    step1 = (
        bars.select(OHLCV_COLUMNS)
        .sort("Ticker", "Date")
        .with_columns(
            Return_1d=close / prev_close - 1,
            Return_5d=close / _per_ticker(close.shift(5)) - 1,
            Return_10d=close / _per_ticker(close.shift(10)) - 1,
            Gap=(pl.col("Open") - prev_close) / prev_close,
            SMA_5=_per_ticker(close.rolling_mean(5)),
            SMA_10=_per_ticker(close.rolling_mean(10)),
            SMA_20=_per_ticker(close.rolling_mean(20)),
            SMA_50=_per_ticker(close.rolling_mean(50)),
            _std20=_per_ticker(close.rolling_std(20)),
            Volume_Ratio=volume / _per_ticker(volume.rolling_mean(20)),
            EMA_5=_per_ticker(close.ewm_mean(span=5)),
            EMA_10=_per_ticker(close.ewm_mean(span=10)),
            EMA_20=_per_ticker(close.ewm_mean(span=20)),
            _macd=_per_ticker(close.ewm_mean(span=12) - close.ewm_mean(span=26)),
            _delta=close - prev_close,
            High_Low_Range=(high - low) / close,
            Close_Position=(close - low) / (high - low + 1e-10),
            # Tomorrow's close above today's; null on a ticker's last row.
            Target=(_per_ticker(close.shift(-1)) > close).cast(pl.Int8),
        )
    )
    delta, sma20, std20, macd = (pl.col(c) for c in ("_delta", "SMA_20", "_std20", "_macd"))
    # A ticker's first delta is missing and counts as 0 gain and 0 loss, as in the reference.
    gains = pl.when(delta > 0).then(delta).otherwise(0.0)
    losses = pl.when(delta < 0).then(-delta).otherwise(0.0)
    rs = _per_ticker(gains.ewm_mean(com=13)) / _per_ticker(losses.ewm_mean(com=13))
    signal = _per_ticker(macd.ewm_mean(span=9))
    table = step1.with_columns(
        Volatility_10d=_per_ticker(pl.col("Return_1d").rolling_std(10)),
        Volatility_20d=_per_ticker(pl.col("Return_1d").rolling_std(20)),
        BB_Width=(2 * std20 * 2) / sma20,
        BB_Position=(close - (sma20 - 2 * std20)) / (4 * std20),
        RSI=100 - (100 / (1 + rs)),
        MACD=macd,
        MACD_Signal=signal,
        MACD_Hist=macd - signal,
    )
    # Drop each ticker's warm-up and any row with a missing or NaN feature (the reference's
    # dropna(); a feature is null where a window or shift reaches before the ticker's start).
    complete = pl.all_horizontal(
        [pl.col(c).is_not_null() & pl.col(c).is_not_nan() for c in FEATURE_COLUMNS]
    )
    return table.filter(complete).select([*OHLCV_COLUMNS, *FEATURE_COLUMNS, TARGET_COLUMN])


def columnar_features_pandas(stock_data: pd.DataFrame) -> pd.DataFrame:
    """:func:`columnar_features` on a pandas frame, back as pandas (for comparisons)."""
    out = columnar_features(pl.from_pandas(stock_data)).to_pandas()
    out[TARGET_COLUMN] = out[TARGET_COLUMN].astype("Int8")
    return out
