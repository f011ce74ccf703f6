"""The reference pipeline's own formulas (the chapter's Composant 1 and 2), as plain pandas.

Shared by the tests that prove the project reproduces the reference pipeline and by the
benchmark that times its per-ticker pandas code. One ticker at a time, as the chapter wrote it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

#: ``feature_cols`` of the reference pipeline's train_model, in its order.
REFERENCE_FEATURE_COLUMNS = [
    "SMA_5", "SMA_10", "SMA_20", "SMA_50",
    "EMA_5", "EMA_10", "EMA_20",
    "RSI", "MACD", "MACD_Signal", "MACD_Hist",
    "BB_Width", "BB_Position",
    "Return_1d", "Return_5d", "Return_10d",
    "Volatility_10d", "Volatility_20d",
    "Volume_Ratio", "High_Low_Range", "Close_Position", "Gap",
]  # fmt: skip


def reference_dates(days: int) -> list[datetime]:
    """The reference pipeline's business days from 2023-01-01."""
    dates = []
    current_date = datetime(2023, 1, 1)
    while len(dates) < days:
        if current_date.weekday() < 5:
            dates.append(current_date)
        current_date += timedelta(days=1)
    return dates


def reference_generate_data(days: int = 500, seed: int = 42, ticker: str = "SYNTH") -> pd.DataFrame:
    """The reference pipeline's generate_data; ``ticker`` only labels the rows."""
    np.random.seed(seed)
    dates = reference_dates(days)

    start_price = 100.0
    volatility = 0.02
    returns = np.random.normal(0.0001, volatility, days)
    close_prices = start_price * np.exp(np.cumsum(returns))

    daily_range = volatility * close_prices
    open_prices = np.roll(close_prices, 1)
    open_prices[0] = start_price
    high_prices = (
        np.maximum(open_prices, close_prices)
        + np.abs(np.random.normal(0.5, 0.2, days)) * daily_range
    )
    low_prices = (
        np.minimum(open_prices, close_prices)
        - np.abs(np.random.normal(0.5, 0.2, days)) * daily_range
    )
    volume = (1_000_000 * np.random.uniform(0.5, 1.5, days)).astype(int)

    return pd.DataFrame(
        {
            "Date": dates,
            "Ticker": ticker,
            "Open": np.round(open_prices, 2),
            "High": np.round(high_prices, 2),
            "Low": np.round(low_prices, 2),
            "Close": np.round(close_prices, 2),
            "Volume": volume,
        }
    )


def reference_feature_engineering(df: pd.DataFrame) -> pd.DataFrame:
    """The reference pipeline's feature_engineering on one ticker's bars."""
    df = df.copy()
    for window in [5, 10, 20, 50]:
        df[f"SMA_{window}"] = df["Close"].rolling(window).mean()
        if window <= 20:
            df[f"EMA_{window}"] = df["Close"].ewm(span=window).mean()

    delta = df["Close"].diff()
    gains = delta.where(delta > 0, 0)
    losses = (-delta).where(delta < 0, 0)
    avg_gains = gains.ewm(com=13).mean()
    avg_losses = losses.ewm(com=13).mean()
    rs = avg_gains / avg_losses
    df["RSI"] = 100 - (100 / (1 + rs))

    ema12 = df["Close"].ewm(span=12).mean()
    ema26 = df["Close"].ewm(span=26).mean()
    df["MACD"] = ema12 - ema26
    df["MACD_Signal"] = df["MACD"].ewm(span=9).mean()
    df["MACD_Hist"] = df["MACD"] - df["MACD_Signal"]

    sma20 = df["Close"].rolling(20).mean()
    std20 = df["Close"].rolling(20).std()
    df["BB_Width"] = (2 * std20 * 2) / sma20
    df["BB_Position"] = (df["Close"] - (sma20 - 2 * std20)) / (4 * std20)

    df["Return_1d"] = df["Close"].pct_change(1)
    df["Return_5d"] = df["Close"].pct_change(5)
    df["Return_10d"] = df["Close"].pct_change(10)
    df["Volatility_10d"] = df["Return_1d"].rolling(10).std()
    df["Volatility_20d"] = df["Return_1d"].rolling(20).std()

    df["Volume_Ratio"] = df["Volume"] / df["Volume"].rolling(20).mean()

    df["High_Low_Range"] = (df["High"] - df["Low"]) / df["Close"]
    df["Close_Position"] = (df["Close"] - df["Low"]) / (df["High"] - df["Low"] + 1e-10)
    df["Gap"] = (df["Open"] - df["Close"].shift(1)) / df["Close"].shift(1)

    df["Target"] = (df["Close"].shift(-1) > df["Close"]).astype(int)
    return df.dropna()
