"""Technical features and the next-day target, per ticker, vectorised across tickers.

The formulas are the reference pipeline's ``feature_engineering`` (Composant 2), with the
same pandas semantics (``rolling(n).mean/std`` with ddof=1, ``ewm(span=...)``/``ewm(com=13)`` with
adjust=True, ``pct_change``), computed for every ticker at once without any value
crossing from one ticker to the next:

* rolling windows use a custom ``BaseIndexer`` whose windows never reach back past the
  start of the row's ticker, so pandas' cython kernels restart at each ticker exactly as
  they do on one ticker alone;
* exponential means use ``ewm(..., times=...)`` with consecutive rows of a ticker one
  time unit apart and a gap of 2**30 units between tickers: the carried-over weight
  decays to exactly 0 at each ticker's first row, which is the state a fresh ``ewm``
  starts from. Within a ticker the decay per row is ``factor ** 1.0 == factor``.

Both give the same floats as running the reference pipeline's code on each ticker separately.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer
from pandas.api.typing import Rolling

from stock_assets.core.data import (
    OHLCV_COLUMNS,
    PRICE_COLUMNS,
    DataValidationError,
    check_unique_bars,
)

FEATURE_COLUMNS = [
    "SMA_5",
    "SMA_10",
    "SMA_20",
    "SMA_50",
    "EMA_5",
    "EMA_10",
    "EMA_20",
    "RSI",
    "MACD",
    "MACD_Signal",
    "MACD_Hist",
    "BB_Width",
    "BB_Position",
    "Return_1d",
    "Return_5d",
    "Return_10d",
    "Volatility_10d",
    "Volatility_20d",
    "Volume_Ratio",
    "High_Low_Range",
    "Close_Position",
    "Gap",
]
TARGET_COLUMN = "Target"

# Time gap between two tickers in the ``times`` given to ``ewm``: factor ** 2**30 underflows
# to exactly 0.0 for every decay factor used here (the largest, 13/14 for com=13, would need
# a gap of only ~10,000), and positions stay far below 2**53, so time differences within a
# ticker are exactly 1.0 in float64.
_TICKER_GAP = 2**30


# A ticker's first rows where some feature is undefined: SMA_50, the longest window, is NaN
# on its first 49 rows (Volatility_20d needs 20 rows + 1 for the first return, the other
# windows fewer). NaNs that depend on the data (0/0 on flat prices) are dropped separately.
_WARM_UP = 49


class _TickerWindow(BaseIndexer):
    """Trailing window of ``window_size`` rows, cut at the start of the row's ticker."""

    group_start: np.ndarray
    end: np.ndarray  # 1, 2, ..., n: shared by every window size

    def get_window_bounds(
        self,
        num_values: int = 0,
        min_periods: int | None = None,
        center: bool | None = None,
        closed: str | None = None,
        step: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if len(self.end) != num_values:
            raise ValueError(f"window bounds are for {len(self.end)} rows, not {num_values}")
        if getattr(self, "start", None) is None:
            self.start = np.maximum(self.end - self.window_size, self.group_start)
        return self.start, self.end


class _Groups:
    """Row layout of a frame sorted by (Ticker, Date): where each ticker starts and ends."""

    def __init__(self, tickers: np.ndarray) -> None:
        n = len(tickers)
        self.first = np.ones(n, dtype=bool)
        np.not_equal(tickers[1:], tickers[:-1], out=self.first[1:])
        self.last = np.ones(n, dtype=bool)
        self.last[:-1] = self.first[1:]
        group_id = np.cumsum(self.first, dtype=np.int64) - 1
        self.start = np.flatnonzero(self.first).astype(np.int64)[group_id]
        self.position = np.arange(n, dtype=np.int64) - self.start
        self.times = (np.arange(n, dtype=np.int64) + group_id * _TICKER_GAP).view("datetime64[ns]")
        self._end = np.arange(1, n + 1, dtype=np.int64)
        self._window: _TickerWindow | None = None

    def shift(self, values: np.ndarray, periods: int) -> np.ndarray:
        """``Series.shift(periods)`` within each ticker (periods >= 1), NaN-filled."""
        out = np.empty_like(values, dtype=np.float64)
        out[periods:] = values[:-periods]
        out[self.position < periods] = np.nan
        return out

    def rolling(self, frame: pd.DataFrame, window: int) -> Rolling:
        """``rolling(window)`` within each ticker (min_periods = window, as the seed)."""
        if self._window is None or self._window.window_size != window:
            # Bounds are kept for the latest window size only: call in runs of one size.
            self._window = _TickerWindow(window_size=window, group_start=self.start, end=self._end)
        return frame.rolling(self._window, min_periods=window)

    def ewm_mean(self, values: np.ndarray, **decay: float) -> np.ndarray:
        """``ewm(**decay).mean()`` (adjust=True) within each ticker."""
        series = pd.Series(values, copy=False)
        ewm = series.ewm(**decay, halflife=pd.Timedelta(1, "ns"), times=self.times)
        return ewm.mean().to_numpy()


def _check_input(stock_data: pd.DataFrame) -> None:
    missing = [c for c in OHLCV_COLUMNS if c not in stock_data.columns]
    if missing:
        raise DataValidationError(
            f"compute_features: missing column(s) {', '.join(map(repr, missing))}; "
            f"expected {', '.join(OHLCV_COLUMNS)}"
        )
    if not pd.api.types.is_datetime64_dtype(stock_data["Date"]):
        raise DataValidationError(
            f"compute_features: column 'Date' has dtype {stock_data['Date'].dtype}; "
            "expected time-zone-naive datetime64 (see load_ohlcv_csv)"
        )
    for col in [*PRICE_COLUMNS, "Volume"]:
        try:
            values = stock_data[col].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DataValidationError(
                f"compute_features: column {col!r} has dtype {stock_data[col].dtype} with "
                "non-numeric values; expected numbers (run validate_ohlcv first)"
            ) from exc
        if not np.isfinite(values).all():
            raise DataValidationError(
                f"compute_features: column {col!r} has missing or infinite values; "
                "expected finite numbers (run validate_ohlcv first)"
            )


def _sorted_columns(stock_data: pd.DataFrame) -> dict[str, np.ndarray]:
    """The OHLCV columns as arrays sorted by (Ticker, Date), copied only if unsorted."""
    cols = {c: stock_data[c].to_numpy() for c in OHLCV_COLUMNS}
    tickers, dates = cols["Ticker"], cols["Date"].view(np.int64)
    same = tickers[1:] == tickers[:-1]
    if not (np.all(tickers[1:] >= tickers[:-1]) and np.all(dates[1:][same] > dates[:-1][same])):
        codes, _ = pd.factorize(stock_data["Ticker"], sort=True)
        order = np.lexsort((dates, codes))
        cols = {c: a[order] for c, a in cols.items()}
    return cols


def _features(cols: dict[str, np.ndarray], groups: _Groups) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (name, values over all rows) for each of the 22 features, NaN in warm-ups.

    The order keeps few full-length arrays alive at once and calls the rolling windows in
    runs of one size (their bounds are cached per size).
    """
    open_ = cols["Open"].astype(np.float64, copy=False)
    high = cols["High"].astype(np.float64, copy=False)
    low = cols["Low"].astype(np.float64, copy=False)
    close = cols["Close"].astype(np.float64, copy=False)
    volume = cols["Volume"].astype(np.float64, copy=False)

    def rolling(values: np.ndarray, window: int, how: str) -> np.ndarray:
        frame = pd.DataFrame({"x": values}, copy=False)
        return getattr(groups.rolling(frame, window), how)()["x"].to_numpy()

    # Returns (pct_change) and gap
    prev_close = groups.shift(close, 1)
    return_1d = close / prev_close - 1
    yield "Return_1d", return_1d
    yield "Return_5d", close / groups.shift(close, 5) - 1
    yield "Return_10d", close / groups.shift(close, 10) - 1
    yield "Gap", (open_ - prev_close) / prev_close

    # Rolling windows, grouped by window size
    yield "SMA_5", rolling(close, 5, "mean")
    yield "SMA_10", rolling(close, 10, "mean")
    yield "Volatility_10d", rolling(return_1d, 10, "std")
    yield "SMA_50", rolling(close, 50, "mean")
    sma20 = rolling(close, 20, "mean")
    std20 = rolling(close, 20, "std")
    yield "SMA_20", sma20
    yield "BB_Width", (2 * std20 * 2) / sma20
    yield "BB_Position", (close - (sma20 - 2 * std20)) / (4 * std20)
    del sma20, std20
    yield "Volatility_20d", rolling(return_1d, 20, "std")
    yield "Volume_Ratio", volume / rolling(volume, 20, "mean")

    # Exponential means
    for span in (5, 10, 20):
        yield f"EMA_{span}", groups.ewm_mean(close, span=span)
    # RSI: a ticker's first delta is NaN and counts as 0 gain and 0 loss, as in the reference.
    delta = close - prev_close
    del prev_close, return_1d
    gains = np.where(delta > 0, delta, 0.0)
    losses = np.where(delta < 0, -delta, 0.0)
    del delta
    rs = groups.ewm_mean(gains, com=13) / groups.ewm_mean(losses, com=13)
    del gains, losses
    yield "RSI", 100 - (100 / (1 + rs))
    del rs
    macd = groups.ewm_mean(close, span=12) - groups.ewm_mean(close, span=26)
    signal = groups.ewm_mean(macd, span=9)
    yield "MACD", macd
    yield "MACD_Signal", signal
    yield "MACD_Hist", macd - signal
    del macd, signal

    # Intraday prices
    yield "High_Low_Range", (high - low) / close
    yield "Close_Position", (close - low) / (high - low + 1e-10)


def compute_features(stock_data: pd.DataFrame) -> pd.DataFrame:
    """The reference pipeline's 22 technical features and next-day ``Target``, per ticker.

    Returns Date, Ticker, Open, High, Low, Close, Volume, ``FEATURE_COLUMNS`` (float64)
    and ``Target`` (nullable Int8: 1 if the ticker's next close is higher, else 0, <NA>
    on each ticker's last row, whose tomorrow is unknown), sorted by (Ticker, Date), index
    reset. Rows where a feature is NaN (each ticker's warm-up) are dropped, as in the reference.
    The input must hold finite OHLCV values (see ``validate_ohlcv``); it is not modified.
    """
    _check_input(stock_data)
    check_unique_bars(stock_data, source="compute_features")
    cols = _sorted_columns(stock_data)
    groups = _Groups(cols["Ticker"])
    keep = groups.position >= _WARM_UP

    # One float64 block (prices then features, one contiguous row per column) that becomes
    # the frame's storage without a copy; each feature is written into it when computed.
    float_names = [*PRICE_COLUMNS, *FEATURE_COLUMNS]
    slot = {name: i for i, name in enumerate(float_names)}
    block = np.empty((len(float_names), int(keep.sum())), dtype=np.float64)
    for name in PRICE_COLUMNS:
        np.compress(keep, cols[name], out=block[slot[name]])
    written = set()
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, values in _features(cols, groups):
            np.compress(keep, values, out=block[slot.pop(name)])
            written.add(name)
    if written != set(FEATURE_COLUMNS):  # a feature was left out of _features
        raise RuntimeError(f"features not computed: {set(FEATURE_COLUMNS) - written}")

    # Drop the remaining rows where a feature is NaN (e.g. 0/0 on flat prices), as the
    # reference's dropna() (its other columns are never NaN: OHLCV is finite, Target an int).
    rows = np.flatnonzero(keep)
    nan = np.zeros(len(rows), dtype=bool)
    for values in block[len(PRICE_COLUMNS) :]:
        nan |= np.isnan(values)
    if nan.any():
        block, rows = block[:, ~nan], rows[~nan]

    out = pd.DataFrame(block.T, columns=float_names, copy=False)
    out.insert(0, "Date", cols["Date"][rows])
    out.insert(1, "Ticker", cols["Ticker"][rows])
    out.insert(len(OHLCV_COLUMNS) - 1, "Volume", cols["Volume"][rows])

    # Target: tomorrow's close above today's; unknown (<NA>) on a ticker's last row.
    close = cols["Close"]
    rises = np.zeros(len(close), dtype=np.int8)
    np.greater(close[1:], close[:-1], out=rises[:-1], casting="unsafe")
    out[TARGET_COLUMN] = pd.arrays.IntegerArray(rises[rows], groups.last[rows])
    return out
