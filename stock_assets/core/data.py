"""Daily OHLCV bars: synthetic generation and validation (CSV loading: ``csv_input``).

Pure functions (numpy/pandas/stdlib only): no Dagster, no KFP. Every function returns or
checks the same normalised frame: columns ``OHLCV_COLUMNS``, ``Date`` as ``datetime64[ns]``,
``Ticker`` as str, prices float64, ``Volume`` int64, sorted by (Ticker, Date), index reset.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from stock_assets.core.history import TRAINING_ROWS_PER_TICKER

OHLCV_COLUMNS = ["Date", "Ticker", "Open", "High", "Low", "Close", "Volume"]
PRICE_COLUMNS = ["Open", "High", "Low", "Close"]
NUMERIC_COLUMNS = [*PRICE_COLUMNS, "Volume"]
DEFAULT_TICKER = "SYNTH"

#: The fewest bars per ticker the features need; training needs ``TRAINING_ROWS_PER_TICKER``.
MIN_ROWS_PER_TICKER = 60

# The reference pipeline's geometric Brownian motion parameters (Composant 1: generate_data).
START_PRICE = 100.0
DRIFT = 0.0001
VOLATILITY = 0.02
START_DATE = "2023-01-01"

#: The synthetic processes: the reference's random walk (nothing to predict), or the same walk
#: with a planted, weak, known edge: each day's return repeats a share of the previous one's.
SYNTHETIC_PROCESSES = ("random_walk", "planted_edge")
#: The planted edge's lag-1 autocorrelation of daily returns (a weak momentum).
PLANTED_AUTOCORRELATION = 0.15

# Bars carry datetime64[ns] dates, which hold 1677-09-21 to 2262-04-11 only (beyond, numpy
# wraps silently). These bounds keep every synthetic window inside that range with a margin:
# MAX_DAYS business days (about 96 years) after START_DATE or before any allowed end_date.
#: The most business days of synthetic bars per ticker.
MAX_DAYS = 25_000
#: The earliest and latest ``end_date`` accepted (synthetic data and CSV alike).
EARLIEST_END_DATE = "1800-01-01"
LATEST_END_DATE = "2200-12-31"
_MIN_ROWS_WHY = (
    f"at least {MIN_ROWS_PER_TICKER} rows per ticker are needed for the features (50 rows of "
    f"warm-up for SMA_50 plus 10), and {TRAINING_ROWS_PER_TICKER} to train with the default "
    "model settings"
)


class DataValidationError(ValueError):
    """Input stock data is unusable; the message names the source, the column and the fix."""


# --- Synthetic data -------------------------------------------------------------------


def _ticker_random_state(seed: int, ticker: str) -> np.random.RandomState:
    """The RNG of one ticker: depends only on (seed, ticker), never on the other tickers.

    ``DEFAULT_TICKER`` uses ``RandomState(seed)`` so that the default configuration draws
    exactly what the reference pipeline's ``np.random.seed(seed)`` drew.
    """
    if ticker == DEFAULT_TICKER:
        return np.random.RandomState(seed)
    entropy = [seed, zlib.crc32(ticker.encode("utf-8"))]
    return np.random.RandomState(np.random.SeedSequence(entropy).generate_state(1)[0])


# The rules for the synthetic series' arguments, each written once: ``generate_gbm`` applies
# them, and the Dagster config classes call them so a bad value fails in the launchpad.


def check_days(days: int) -> int:
    """``days`` if it is an integer number of bars the features can be computed on."""
    if isinstance(days, bool) or not isinstance(days, int | np.integer):
        raise DataValidationError(f"days={days!r} is not an integer")
    if days < MIN_ROWS_PER_TICKER:
        raise DataValidationError(f"days={days} is too small: {_MIN_ROWS_WHY}")
    if days > MAX_DAYS:
        raise DataValidationError(
            f"days={days} is too large: expected at most {MAX_DAYS} business days (about 96 "
            "years), so that every date stays within the years pandas can store"
        )
    return int(days)


def check_seed(seed: int) -> int:
    """``seed`` if numpy's RandomState accepts it."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise DataValidationError(f"seed={seed!r}; expected an integer in [0, 2**32)")
    return int(seed)


def check_tickers(tickers: Iterable[str]) -> list[str]:
    """The ticker symbols if there is at least one and each is non-blank and unique."""
    if isinstance(tickers, str):
        tickers = [tickers]
    names = list(tickers)
    if not names:
        raise DataValidationError("tickers: empty; expected at least one ticker symbol")
    bad = [t for t in names if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataValidationError(
            f"tickers: invalid symbol(s) {bad!r}; expected non-blank strings such as 'SYNTH'"
        )
    counted = Counter(names)
    dupes = sorted(t for t, n in counted.items() if n > 1)
    if dupes:
        raise DataValidationError(
            f"tickers: duplicate symbol(s) {dupes!r}; expected each ticker once"
        )
    return names


def check_process(process: str) -> str:
    """``process`` if it names one of :data:`SYNTHETIC_PROCESSES`."""
    if process not in SYNTHETIC_PROCESSES:
        raise DataValidationError(
            f"process={process!r} is not a synthetic process; choose one of "
            f"{', '.join(SYNTHETIC_PROCESSES)}"
        )
    return process


def autocorrelated(returns: np.ndarray, phi: float) -> np.ndarray:
    """Rows of i.i.d. normal returns made AR(1) with lag-1 autocorrelation ``phi``, in place.

    ``x[t] = mu + phi (x[t-1] - mu) + sqrt(1 - phi^2) (e[t] - mu)``: the mean and the variance
    of each day's return stay those of the draws, only today now leans on yesterday.
    """
    mu = DRIFT
    scale = np.sqrt(1.0 - phi**2)
    for t in range(1, returns.shape[1]):
        returns[:, t] = mu + phi * (returns[:, t - 1] - mu) + scale * (returns[:, t] - mu)
    return returns


def check_end_date(end_date: str | None, field: str = "end_date") -> pd.Timestamp | None:
    """The ISO date ``end_date`` (``YYYY-MM-DD``, a time of day allowed) as a naive Timestamp."""
    if end_date is None:
        return None
    try:
        when = dt.datetime.fromisoformat(str(end_date)).replace(tzinfo=None)  # the local day
    except ValueError as exc:
        raise DataValidationError(
            f"{field}={end_date!r} is not a date; expected YYYY-MM-DD, e.g. '2024-06-28'"
        ) from exc
    if not EARLIEST_END_DATE <= when.date().isoformat() <= LATEST_END_DATE:
        raise DataValidationError(
            f"{field}={end_date!r} is out of range; expected a date from {EARLIEST_END_DATE} "
            f"to {LATEST_END_DATE}"
        )
    return pd.Timestamp(when)


def _business_days(days: int, end: pd.Timestamp | None) -> np.ndarray:
    """``days`` Mon-Fri dates from START_DATE, or ending on or before ``end``.

    Same dates as ``pd.bdate_range(start=START_DATE, periods=days)`` (and as the reference
    pipeline's loop) or ``pd.bdate_range(end=end, periods=days)``, ~500x faster (numpy's C busday).
    """
    if end is None:
        first = np.busday_offset(np.datetime64(START_DATE, "D"), 0, roll="forward")
        offsets = np.arange(days)
    else:
        first = np.busday_offset(np.datetime64(end.date(), "D"), 0, roll="backward")
        offsets = np.arange(1 - days, 1)
    return np.busday_offset(first, offsets).astype("datetime64[ns]")


def generate_gbm(
    days: int = 500,
    seed: int = 42,
    tickers: Sequence[str] = (DEFAULT_TICKER,),
    end_date: str | None = None,
    process: str = "random_walk",
) -> pd.DataFrame:
    """Synthetic daily bars: the reference pipeline's geometric Brownian motion, per ticker.

    Dates are ``days`` business days (Mon-Fri, no holidays) from 2023-01-01, or, with
    ``end_date``, the ``days`` business days ending on or before ``end_date``. With the
    defaults the frame equals the reference pipeline's ``generate_data`` value for value.
    ``process="planted_edge"`` makes the same draws' returns autocorrelated
    (:data:`PLANTED_AUTOCORRELATION`), a weak edge a model can find.
    """
    days, seed = check_days(days), check_seed(seed)
    check_process(process)
    names = check_tickers(tickers)
    end = check_end_date(end_date)

    dates = _business_days(days, end)

    # Each ticker has its own RNG, so generating in sorted order changes no value.
    names = sorted(names)
    # Draw in the reference pipeline's order, per ticker: returns, high noise, low noise, volume.
    n = len(names)
    returns = np.empty((n, days))
    high_noise = np.empty((n, days))
    low_noise = np.empty((n, days))
    uniform = np.empty((n, days))
    for i, ticker in enumerate(names):
        rng = _ticker_random_state(seed, ticker)
        returns[i] = rng.normal(DRIFT, VOLATILITY, days)
        high_noise[i] = rng.normal(0.5, 0.2, days)
        low_noise[i] = rng.normal(0.5, 0.2, days)
        uniform[i] = rng.uniform(0.5, 1.5, days)
    if process == "planted_edge":
        autocorrelated(returns, PLANTED_AUTOCORRELATION)

    # The reference pipeline's arithmetic, vectorised over tickers (row i = ticker i), in
    # place where possible (the same IEEE operations, so the same values). The prices are computed
    # straight into the block that becomes the frame's storage.
    prices = np.empty((len(PRICE_COLUMNS), n, days))
    open_, high, low, close = prices
    np.cumsum(returns, axis=1, out=close)
    np.exp(close, out=close)
    close *= START_PRICE  # close = START_PRICE * exp(cumsum(returns))
    open_[:, 0] = START_PRICE  # open = close shifted by one day
    open_[:, 1:] = close[:, :-1]
    daily_range = np.multiply(VOLATILITY, close, out=returns)
    high_noise = np.abs(high_noise, out=high_noise)
    high_noise *= daily_range
    np.add(np.maximum(open_, close, out=high), high_noise, out=high)
    low_noise = np.abs(low_noise, out=low_noise)
    low_noise *= daily_range
    np.subtract(np.minimum(open_, close, out=low), low_noise, out=low)
    np.round(prices, 2, out=prices)
    uniform *= 1_000_000
    volume = uniform.astype(np.int64).ravel()
    del returns, high_noise, low_noise, uniform

    frame = pd.DataFrame(prices.reshape(len(PRICE_COLUMNS), -1).T, columns=PRICE_COLUMNS)
    frame.insert(0, "Date", np.tile(dates, n))
    frame.insert(1, "Ticker", np.repeat(np.array(names, dtype=object), days))
    frame.insert(len(OHLCV_COLUMNS) - 1, "Volume", volume)
    return frame


# --- Validation -----------------------------------------------------------------------


def _where(df: pd.DataFrame, mask: np.ndarray, quote: bool = True) -> str:
    """Describe the first row where ``mask`` holds: its index label, ticker and date.

    ``quote=False`` gives the label only (e.g. "line 12"): no value read from a file.
    """
    i = int(np.argmax(mask))
    label = df.index[i]
    word = df.index.name or "row"
    parts = []
    if not quote:
        return f"{word} {label}"
    if "Ticker" in df.columns:
        parts.append(f"ticker {df['Ticker'].iloc[i]!r}")
    if "Date" in df.columns:
        date = df["Date"].iloc[i]
        parts.append(f"date {date.date() if isinstance(date, pd.Timestamp) else date}")
    return f"{word} {label}" + (f" ({', '.join(parts)})" if parts else "")


def duplicate_bars(df: pd.DataFrame) -> np.ndarray:
    """Which rows repeat an earlier row's (Ticker, Date): daily bars are one per ticker and date.

    The one statement of the rule: :func:`validate_ohlcv`, ``compute_features`` and the
    ``unique_sorted_bars`` asset check all ask it.
    """
    codes, _ = pd.factorize(df["Ticker"], use_na_sentinel=True)
    dates = df["Date"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    same = codes[1:] == codes[:-1]
    if np.all(codes[1:] >= codes[:-1]) and np.all(dates[1:][same] > dates[:-1][same]):
        return np.zeros(len(df), dtype=bool)  # grouped by ticker, dates rising: no repeat
    return pd.DataFrame({"t": codes, "d": dates}).duplicated().to_numpy()


def check_unique_bars(df: pd.DataFrame, source: str = "stock data", quote: bool = True) -> None:
    """Raise ``DataValidationError`` naming the first repeated (Ticker, Date) bar, if any."""
    bad = duplicate_bars(df)
    if bad.any():
        raise DataValidationError(
            f"{source}: duplicate date(s) for a ticker: {int(bad.sum())} repeated row(s), "
            f"first at {_where(df, bad, quote)}; expected one row per ticker per date (daily bars)"
        )


def validate_ohlcv(df: pd.DataFrame, source: str = "stock data", quote: bool = True) -> None:
    """Raise ``DataValidationError`` unless ``df`` holds usable daily bars.

    Checks (vectorised): the OHLCV columns exist; prices and volume are numeric, present
    and finite; prices > 0; volume >= 0; High >= Low; one row per (Ticker, Date); at least
    ``MIN_ROWS_PER_TICKER`` rows per ticker. ``quote=False`` (a file's rows) names rows by
    their index label and never shows a value, ticker or date read from the rows.
    """

    def at(mask: np.ndarray) -> str:
        return _where(df, mask, quote)

    def eg(value: object) -> str:
        return f", e.g. {value}," if quote else ""

    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(f"{source}: got {type(df).__name__}; expected a DataFrame")
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataValidationError(
            f"{source}: missing column(s) {names}; expected {', '.join(OHLCV_COLUMNS)}"
        )
    if df.empty:
        raise DataValidationError(f"{source}: no rows; {_MIN_ROWS_WHY}")

    values: dict[str, np.ndarray] = {}
    for col in NUMERIC_COLUMNS:
        series = df[col]
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            coerced = pd.to_numeric(series, errors="coerce")
            bad = (coerced.isna() & series.notna()).to_numpy()
            if pd.api.types.is_bool_dtype(series):
                bad = np.ones(len(series), dtype=bool)
            if bad.any():
                example = repr(series.iloc[int(np.argmax(bad))])
                raise DataValidationError(
                    f"{source}: column {col!r} has {int(bad.sum())} non-numeric value(s)"
                    f"{eg(example)} first at {at(bad)}; expected numbers"
                )
            series = coerced
        values[col] = series.to_numpy(dtype=np.float64, na_value=np.nan)

    for col in NUMERIC_COLUMNS:
        bad = ~np.isfinite(values[col])
        if bad.any():
            kind = "missing (NaN)" if np.isnan(values[col][np.argmax(bad)]) else "infinite"
            raise DataValidationError(
                f"{source}: column {col!r} has {int(bad.sum())} missing or infinite value(s), "
                f"first {kind} at {at(bad)}; expected a number on every row"
            )
    for col in PRICE_COLUMNS:
        bad = values[col] <= 0
        if bad.any():
            example = f"{values[col][np.argmax(bad)]:g}"
            raise DataValidationError(
                f"{source}: column {col!r} has {int(bad.sum())} zero or negative price(s)"
                f"{eg(example)} first at {at(bad)}; expected positive prices (> 0)"
            )
    bad = values["Volume"] < 0
    if bad.any():
        example = f"{values['Volume'][np.argmax(bad)]:g}"
        raise DataValidationError(
            f"{source}: column 'Volume' has {int(bad.sum())} negative value(s){eg(example)} "
            f"first at {at(bad)}; expected volume >= 0"
        )
    bad = values["High"] < values["Low"]
    if bad.any():
        i = int(np.argmax(bad))
        pair = f" with High={values['High'][i]:g} < Low={values['Low'][i]:g}" if quote else ""
        raise DataValidationError(
            f"{source}: columns 'High'/'Low': High < Low on {int(bad.sum())} row(s), first at "
            f"{at(bad)}{pair}; expected High >= Low"
        )

    if not pd.api.types.is_datetime64_any_dtype(df["Date"]):
        raise DataValidationError(
            f"{source}: column 'Date' has dtype {df['Date'].dtype}; expected datetime64"
        )
    bad = df["Date"].isna().to_numpy()
    if bad.any():
        raise DataValidationError(
            f"{source}: column 'Date' has {int(bad.sum())} missing value(s), first at "
            f"{at(bad)}; expected a date on every row"
        )
    codes, symbols = pd.factorize(df["Ticker"], use_na_sentinel=True)
    blank_codes = [i for i, t in enumerate(symbols) if not str(t).strip()]
    bad = (codes < 0) | np.isin(codes, blank_codes)
    if bad.any():
        raise DataValidationError(
            f"{source}: column 'Ticker' is blank on {int(bad.sum())} row(s), first at "
            f"{at(bad)}; expected a symbol on every row"
        )

    check_unique_bars(df, source, quote)

    counts = np.bincount(codes, minlength=len(symbols))
    short = np.flatnonzero(counts < MIN_ROWS_PER_TICKER)
    if short.size:
        if quote:
            order = sorted(short, key=lambda i: str(symbols[i]))[:5]
            labels = [repr(symbols[i]) for i in order]
        else:  # in the order of the rows, each named by its first row
            order = list(short[:5])
            labels = [f"the ticker at {at(codes == i)}" for i in order]
        shown = ", ".join(f"{name} has {counts[i]}" for name, i in zip(labels, order, strict=True))
        more = f" (and {len(short) - 5} more)" if len(short) > 5 else ""
        raise DataValidationError(
            f"{source}: too few rows for ticker(s): {shown} row(s){more}; {_MIN_ROWS_WHY}"
        )
