"""The Date column of a CSV: only dates whose day and month cannot be confused.

Accepted: ISO dates, year first (``2024-01-31``, ``2024/01/31``, ``20240131``, a time of day
and a UTC offset allowed), and dates with an English month name and a four-digit year
(``31 Jan 2024``, ``January 31, 2024``). Refused, naming the line: numeric dates with the year
last (``02/01/2023``: 2 January or February 1?), and anything else. Errors never quote a value.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from stock_assets.core.data import DataValidationError

# A UTC offset written after a time of day: "...00:00:00-05:00", "...00:00Z".
_TZ_SUFFIX = r"(\d:\d\d(?::\d\d(?:\.\d+)?)?)\s*(?:Z|UTC|[+-]\d\d:?\d\d)$"
# Numbers only, the year last or two-digit: the order of day and month is a guess.
_YEAR_LAST = r"\d{1,2}[-/. ]\d{1,2}[-/. ]\d{2,4}(?:[ T].*)?"
_MONTH_NAME = r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?(?![a-z])"
_FOUR_DIGIT_YEAR = r"(?<!\d)\d{4}(?!\d)"
_DAY = r"(?<!\d)\d{1,2}(?:st|nd|rd|th)?(?![\d:])"
_EXPECTED = "expected ISO dates YYYY-MM-DD such as 2024-01-31 (or with a month name: 31 Jan 2024)"


def _iso(text: pd.Series) -> pd.Series:
    """Year-first ISO 8601 dates with a day (pandas' strict ISO parser); NaT elsewhere."""
    with warnings.catch_warnings():
        # Mixed UTC offsets give object dtype (and a FutureWarning): the caller strips them.
        warnings.simplefilter("ignore", FutureWarning)
        try:
            parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        except (ValueError, TypeError):
            parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    # "2024-01" and "2024" are ISO too, but name no day: refused, not read as the 1st.
    return parsed.where(text.str.len() >= len("2024-1-1"))


def _first_line(raw: pd.Series, mask: np.ndarray) -> object:
    return raw.index[int(np.argmax(mask))]


def parse_dates(raw: pd.Series, source: str) -> pd.Series:
    """Parse the Date column (indexed by line number) to naive calendar days (daily bars).

    A UTC offset after a time (e.g. "2024-03-08 00:00:00-05:00", as some exports write, with
    offsets changing at DST) is dropped so the local calendar day is kept.
    """
    blank = raw.isna().to_numpy()
    if blank.any():
        raise DataValidationError(
            f"{source}: column 'Date' is empty on {int(blank.sum())} row(s), first at line "
            f"{_first_line(raw, blank)}; expected a date on every row"
        )
    text = raw.astype(str).str.strip()  # integers such as 20240131 too
    parsed = _iso(text)  # fast path: ISO dates throughout
    if pd.api.types.is_datetime64_any_dtype(parsed) and not parsed.isna().any():
        if parsed.dt.tz is not None:
            parsed = parsed.dt.tz_localize(None)  # keep the wall-clock (local) date
        return parsed.dt.normalize().astype("datetime64[ns]")

    text = text.str.replace(_TZ_SUFFIX, r"\1", regex=True)
    parsed = _iso(text).astype("datetime64[ns]")
    named = (
        parsed.isna()
        & text.str.contains(_MONTH_NAME, regex=True)
        & text.str.contains(_FOUR_DIGIT_YEAR, regex=True)
        & text.str.replace(_FOUR_DIGIT_YEAR, " ", regex=True).str.contains(_DAY, regex=True)
    )
    if named.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parsed[named] = pd.to_datetime(text[named], errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    year_last = bad & text.str.fullmatch(_YEAR_LAST).to_numpy()
    if year_last.any():
        raise DataValidationError(
            f"{source}: column 'Date' has {int(year_last.sum())} numeric date(s) with the year "
            f"last, first at line {_first_line(raw, year_last)}: dd/mm/yyyy and mm/dd/yyyy "
            f"cannot be told apart; {_EXPECTED}"
        )
    if bad.any():
        raise DataValidationError(
            f"{source}: column 'Date' has {int(bad.sum())} value(s) that are not dates, first "
            f"at line {_first_line(raw, bad)}; {_EXPECTED}"
        )
    return parsed.dt.normalize().astype("datetime64[ns]")
