"""Daily OHLCV bars: synthetic generation, CSV loading and validation.

Pure functions (numpy/pandas/stdlib only): no Dagster, no KFP. Every function returns or
checks the same normalised frame: columns ``OHLCV_COLUMNS``, ``Date`` as ``datetime64[ns]``,
``Ticker`` as str, prices float64, ``Volume`` int64, sorted by (Ticker, Date), index reset.
"""

from __future__ import annotations

import datetime as dt
import warnings
import zlib
from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

OHLCV_COLUMNS = ["Date", "Ticker", "Open", "High", "Low", "Close", "Volume"]
PRICE_COLUMNS = ["Open", "High", "Low", "Close"]
NUMERIC_COLUMNS = [*PRICE_COLUMNS, "Volume"]
DEFAULT_TICKER = "SYNTH"

# 50 rows of warm-up for the longest window (SMA_50) plus 10 rows to train and test on.
MIN_ROWS_PER_TICKER = 60

# The reference pipeline's geometric Brownian motion parameters (Composant 1: generate_data).
START_PRICE = 100.0
DRIFT = 0.0001
VOLATILITY = 0.02
START_DATE = "2023-01-01"

_REQUIRED_CSV_COLUMNS = ["Date", *NUMERIC_COLUMNS]
#: Volumes are stored as int64: 2**63 and above do not fit (and would wrap to a negative).
_INT64_LIMIT = float(2**63)
_EXPECTED_CSV = "expected Date, Open, High, Low, Close, Volume (any letter case)"
# A UTC offset written after a time of day: "...00:00:00-05:00", "...00:00Z".
_TZ_SUFFIX = r"(\d:\d\d(?::\d\d(?:\.\d+)?)?)\s*(?:Z|UTC|[+-]\d\d:?\d\d)$"
_MIN_ROWS_WHY = (
    f"at least {MIN_ROWS_PER_TICKER} rows per ticker are needed "
    "(50 rows of warm-up for SMA_50 plus 10 rows to train and test on)"
)


class DataValidationError(ValueError):
    """Input stock data is unusable; the message names the source, the column and the fix."""


# --------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------


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
    seen: set[str] = set()
    dupes = sorted({t for t in names if t in seen or seen.add(t)})
    if dupes:
        raise DataValidationError(
            f"tickers: duplicate symbol(s) {dupes!r}; expected each ticker once"
        )
    return names


def check_end_date(end_date: str | None, field: str = "end_date") -> pd.Timestamp | None:
    """The ISO date ``end_date`` (``YYYY-MM-DD``, a time of day allowed) as a naive Timestamp."""
    if end_date is None:
        return None
    try:
        ts = pd.Timestamp(dt.datetime.fromisoformat(str(end_date)))
    except ValueError as exc:
        raise DataValidationError(
            f"{field}={end_date!r} is not a date; expected YYYY-MM-DD, e.g. '2024-06-28'"
        ) from exc
    if ts.tzinfo is not None:
        ts = ts.tz_localize(None)
    return ts


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
) -> pd.DataFrame:
    """Synthetic daily bars: the reference pipeline's geometric Brownian motion, per ticker.

    Dates are ``days`` business days (Mon-Fri, no holidays) from 2023-01-01, or, with
    ``end_date``, the ``days`` business days ending on or before ``end_date``. With the
    defaults the frame equals the reference pipeline's ``generate_data`` value for value.
    """
    days, seed = check_days(days), check_seed(seed)
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


# --------------------------------------------------------------------------------------
# CSV loading
# --------------------------------------------------------------------------------------


def _match_columns(columns: Sequence[object], source: str) -> tuple[dict[str, str], str | None]:
    """Map canonical names to the file's headers, ignoring letter case and blanks."""
    by_key: dict[str, list[str]] = {}
    for col in columns:
        by_key.setdefault(str(col).strip().lower(), []).append(str(col))
    ambiguous = {k: v for k, v in by_key.items() if len(v) > 1}
    for canonical in [*_REQUIRED_CSV_COLUMNS, "Ticker"]:
        if canonical.lower() in ambiguous:
            found = ", ".join(repr(c) for c in ambiguous[canonical.lower()])
            raise DataValidationError(
                f"{source}: column {canonical!r} appears more than once ({found}); "
                "expected exactly one column per field (any letter case)"
            )
    missing = [c for c in _REQUIRED_CSV_COLUMNS if c.lower() not in by_key]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataValidationError(
            f"{source}: missing column(s) {names}; {_EXPECTED_CSV}; "
            f"found {', '.join(repr(str(c)) for c in columns)}{_separator_hint(columns)}"
        )
    mapping = {c: by_key[c.lower()][0] for c in _REQUIRED_CSV_COLUMNS}
    ticker_col = by_key.get("ticker", [None])[0]
    return mapping, ticker_col


def _separator_hint(columns: Sequence[object]) -> str:
    """A hint when the header was clearly split on the wrong separator (``;``, tab, ``|``)."""
    header = " ".join(str(c) for c in columns)
    for separator in (";", "\t", "|"):
        if header.count(separator) >= 2:
            shown = "tab" if separator == "\t" else repr(separator)
            return (
                f"; the separator looks like {shown}: save the file comma-separated, with a "
                "dot as the decimal mark"
            )
    return ""


def _parse_dates(raw: pd.Series, source: str) -> pd.Series:
    """Parse the Date column to naive calendar days (daily bars).

    A time-zone offset after a time (e.g. "2024-03-08 00:00:00-05:00", as some exports
    write, with offsets changing at DST) is dropped so the local calendar day is kept.
    """
    blank = raw.isna().to_numpy()
    if blank.any():
        raise DataValidationError(
            f"{source}: column 'Date' is empty on {int(blank.sum())} row(s), first at line "
            f"{raw.index[int(np.argmax(blank))]}; expected a date on every row"
        )
    with warnings.catch_warnings():
        # Mixed UTC offsets give object dtype (and a FutureWarning): handled below.
        warnings.simplefilter("ignore", FutureWarning)
        parsed = pd.to_datetime(raw, errors="coerce")  # fast path: one format throughout
    if not pd.api.types.is_datetime64_any_dtype(parsed) or parsed.isna().any():
        text = raw.astype(str).str.strip().str.replace(_TZ_SUFFIX, r"\1", regex=True)
        parsed = pd.to_datetime(text, errors="coerce")
        if parsed.isna().any():  # formats differing between rows: parse each on its own
            parsed = pd.to_datetime(text, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = int(np.argmax(bad))
        raise DataValidationError(
            f"{source}: column 'Date' has {int(bad.sum())} unparseable value(s), first "
            f"{raw.iloc[first]!r} at line {raw.index[first]}; expected dates such as "
            "'2024-01-31'"
        )
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_localize(None)  # keep the wall-clock (local) date
    return parsed.dt.normalize().astype("datetime64[ns]")


def _parse_tickers(raw: pd.Series, source: str) -> np.ndarray:
    """The Ticker column as stripped str symbols (work done once per distinct symbol)."""
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    symbols = np.array([str(u).strip() for u in uniques] + [""], dtype=object)
    values = symbols[codes]  # code -1 (missing) picks the trailing ""
    blank = values == ""
    if blank.any():
        raise DataValidationError(
            f"{source}: column 'Ticker' is empty on {int(blank.sum())} row(s), first at "
            f"line {raw.index[int(np.argmax(blank))]}; expected a symbol on every row"
        )
    return values


def load_ohlcv_csv(
    path: str | PathLike[str],
    ticker: str | None = None,
    end_date: str | None = None,
) -> pd.DataFrame:
    """Read a daily-bar CSV export into the normalised OHLCV frame, validated.

    Column names match in any letter case; extra columns (e.g. "Adj Close") are ignored.
    The ticker comes from a Ticker column if there is one (then ``ticker``, if given,
    selects that ticker's rows), else from ``ticker``, else from the file name stem
    upper-cased. ``end_date`` keeps rows dated on or before it. Raises
    ``DataValidationError`` naming the file, the column and what was expected.
    """
    file = Path(path)
    source = str(path)
    end = check_end_date(end_date, field=f"{source}: end_date")
    if ticker is not None and (not isinstance(ticker, str) or not ticker.strip()):
        raise DataValidationError(
            f"{source}: ticker argument {ticker!r} is blank; expected a symbol such as 'AAPL'"
        )
    if not file.exists():
        raise DataValidationError(
            f"{source}: file not found; expected a CSV of daily bars with columns "
            "Date, Open, High, Low, Close, Volume"
        )
    if file.is_dir():
        raise DataValidationError(f"{source}: is a directory; expected a CSV file")
    try:
        raw = pd.read_csv(file, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(
            f"{source}: file is empty; expected a header line with Date, Open, High, Low, "
            "Close, Volume and one row per day"
        ) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DataValidationError(
            f"{source}: cannot be read as CSV ({type(exc).__name__}: {exc}); "
            "expected a comma-separated text file with a header line"
        ) from exc

    mapping, ticker_col = _match_columns(list(raw.columns), source)
    if raw.empty:
        raise DataValidationError(
            f"{source}: no data rows; expected one row per day, {_MIN_ROWS_WHY}"
        )
    raw.index = pd.RangeIndex(2, len(raw) + 2, name="line")  # line 1 is the header

    frame = pd.DataFrame({c: raw[mapping[c]] for c in NUMERIC_COLUMNS}, index=raw.index)
    frame.insert(0, "Date", _parse_dates(raw[mapping["Date"]], source))

    if ticker_col is not None:
        frame.insert(1, "Ticker", _parse_tickers(raw[ticker_col], source))
        if ticker is not None:
            keep = frame["Ticker"] == ticker.strip()
            if not keep.any():
                found = ", ".join(repr(t) for t in sorted(frame["Ticker"].unique())[:10])
                raise DataValidationError(
                    f"{source}: column 'Ticker' has no rows for ticker {ticker.strip()!r}; "
                    f"found {found}"
                )
            frame = frame[keep]
    else:
        name = ticker.strip() if ticker is not None else file.stem.strip().upper()
        if not name:
            raise DataValidationError(
                f"{source}: cannot name the ticker; expected a Ticker column, a ticker "
                "argument or a file name such as 'AAPL.csv'"
            )
        frame.insert(1, "Ticker", name)

    if end is not None:
        frame = frame[frame["Date"] <= end]
        if frame.empty:
            raise DataValidationError(
                f"{source}: no rows dated on or before end_date {end.date()}; expected "
                f"at least {MIN_ROWS_PER_TICKER} rows per ticker up to end_date"
            )

    frame = frame.sort_values(["Ticker", "Date"], kind="mergesort")
    if end is not None:
        source = f"{source} (rows dated on or before end_date {end.date()})"
    validate_ohlcv(frame, source=source)

    # Volumes are stored as int64: a value that does not fit would wrap to a negative number.
    volume = pd.to_numeric(frame["Volume"]).to_numpy(dtype=np.float64)
    too_big = np.rint(volume) >= _INT64_LIMIT
    if too_big.any():
        where = _where(frame, too_big)
        raise DataValidationError(
            f"{source}: column 'Volume' has {int(too_big.sum())} value(s) too large to store, "
            f"e.g. {volume[np.argmax(too_big)]:g} at {where}; expected a volume below 9.2e18"
        )
    frame = frame.reset_index(drop=True)
    for col in PRICE_COLUMNS:
        frame[col] = pd.to_numeric(frame[col]).astype(np.float64)
    # Validated finite and non-negative; fractional volumes (e.g. crypto) are rounded.
    volume = pd.to_numeric(frame["Volume"]).to_numpy(dtype=np.float64)
    frame["Volume"] = np.rint(volume).astype(np.int64)
    frame["Ticker"] = frame["Ticker"].astype(object)
    return frame[OHLCV_COLUMNS]


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _where(df: pd.DataFrame, mask: np.ndarray) -> str:
    """Describe the first row where ``mask`` holds: its index label, ticker and date."""
    i = int(np.argmax(mask))
    label = df.index[i]
    word = df.index.name or "row"
    parts = []
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


def check_unique_bars(df: pd.DataFrame, source: str = "stock data") -> None:
    """Raise ``DataValidationError`` naming the first repeated (Ticker, Date) bar, if any."""
    bad = duplicate_bars(df)
    if bad.any():
        raise DataValidationError(
            f"{source}: duplicate date(s) for a ticker: {int(bad.sum())} repeated row(s), "
            f"first at {_where(df, bad)}; expected one row per ticker per date (daily bars)"
        )


def validate_ohlcv(df: pd.DataFrame, source: str = "stock data") -> None:
    """Raise ``DataValidationError`` unless ``df`` holds usable daily bars.

    Checks (vectorised): the OHLCV columns exist; prices and volume are numeric, present
    and finite; prices > 0; volume >= 0; High >= Low; one row per (Ticker, Date); at least
    ``MIN_ROWS_PER_TICKER`` rows per ticker.
    """
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
                example = series.iloc[int(np.argmax(bad))]
                raise DataValidationError(
                    f"{source}: column {col!r} has {int(bad.sum())} non-numeric value(s), "
                    f"e.g. {example!r} at {_where(df, bad)}; expected numbers"
                )
            series = coerced
        values[col] = series.to_numpy(dtype=np.float64, na_value=np.nan)

    for col in NUMERIC_COLUMNS:
        bad = ~np.isfinite(values[col])
        if bad.any():
            kind = "missing (NaN)" if np.isnan(values[col][np.argmax(bad)]) else "infinite"
            raise DataValidationError(
                f"{source}: column {col!r} has {int(bad.sum())} missing or infinite value(s), "
                f"first {kind} at {_where(df, bad)}; expected a number on every row"
            )
    for col in PRICE_COLUMNS:
        bad = values[col] <= 0
        if bad.any():
            example = values[col][np.argmax(bad)]
            raise DataValidationError(
                f"{source}: column {col!r} has {int(bad.sum())} zero or negative price(s), "
                f"e.g. {example:g} at {_where(df, bad)}; expected positive prices (> 0)"
            )
    bad = values["Volume"] < 0
    if bad.any():
        raise DataValidationError(
            f"{source}: column 'Volume' has {int(bad.sum())} negative value(s), e.g. "
            f"{values['Volume'][np.argmax(bad)]:g} at {_where(df, bad)}; expected volume >= 0"
        )
    bad = values["High"] < values["Low"]
    if bad.any():
        i = int(np.argmax(bad))
        raise DataValidationError(
            f"{source}: columns 'High'/'Low': High < Low on {int(bad.sum())} row(s), first at "
            f"{_where(df, bad)} with High={values['High'][i]:g} < Low={values['Low'][i]:g}; "
            "expected High >= Low"
        )

    if not pd.api.types.is_datetime64_any_dtype(df["Date"]):
        raise DataValidationError(
            f"{source}: column 'Date' has dtype {df['Date'].dtype}; expected datetime64"
        )
    bad = df["Date"].isna().to_numpy()
    if bad.any():
        raise DataValidationError(
            f"{source}: column 'Date' has {int(bad.sum())} missing value(s), first at "
            f"{_where(df, bad)}; expected a date on every row"
        )
    codes, symbols = pd.factorize(df["Ticker"], use_na_sentinel=True)
    blank_codes = [i for i, t in enumerate(symbols) if not str(t).strip()]
    bad = (codes < 0) | np.isin(codes, blank_codes)
    if bad.any():
        raise DataValidationError(
            f"{source}: column 'Ticker' is blank on {int(bad.sum())} row(s), first at "
            f"{_where(df, bad)}; expected a symbol on every row"
        )

    check_unique_bars(df, source)

    counts = np.bincount(codes, minlength=len(symbols))
    short = np.flatnonzero(counts < MIN_ROWS_PER_TICKER)
    if short.size:
        order = sorted(short, key=lambda i: str(symbols[i]))
        shown = ", ".join(f"{symbols[i]!r} has {counts[i]}" for i in order[:5])
        more = f" (and {len(short) - 5} more)" if len(short) > 5 else ""
        raise DataValidationError(
            f"{source}: too few rows for ticker(s): {shown} row(s){more}; {_MIN_ROWS_WHY}"
        )
