"""Synthetic daily bars (core.data.generate_gbm): the reference's values, tickers, dates, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stock_assets.core.data import (
    DEFAULT_TICKER,
    EARLIEST_END_DATE,
    LATEST_END_DATE,
    MAX_DAYS,
    MIN_ROWS_PER_TICKER,
    DataValidationError,
    generate_gbm,
    validate_ohlcv,
)
from tests.data_helpers import assert_normalised, one
from tests.support.reference import reference_dates, reference_generate_data

# --------------------------------------------------------------------------------------
# generate_gbm
# --------------------------------------------------------------------------------------


def test_default_equals_reference_generate_data_value_for_value() -> None:
    expected = reference_generate_data()
    actual = generate_gbm()
    assert actual["Ticker"].eq(DEFAULT_TICKER).all()
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)
    assert_normalised(actual)


def test_other_seed_and_length_equal_reference_generate_data() -> None:
    pd.testing.assert_frame_equal(
        generate_gbm(days=MIN_ROWS_PER_TICKER, seed=7),
        reference_generate_data(days=MIN_ROWS_PER_TICKER, seed=7),
        check_exact=True,
    )


@pytest.mark.parametrize("days", [60, 500, 2520])
def test_business_days_equal_reference_loop_and_bdate_range(days: int) -> None:
    dates = generate_gbm(days=days)["Date"]
    assert list(dates) == [pd.Timestamp(d) for d in reference_dates(days)]
    assert list(dates) == list(pd.bdate_range(start="2023-01-01", periods=days))


def test_each_ticker_is_reproducible_and_independent_of_the_others() -> None:
    alone = {t: generate_gbm(days=80, tickers=[t]) for t in ["AAA", "ZZZ", DEFAULT_TICKER]}
    together = generate_gbm(days=80, tickers=["ZZZ", DEFAULT_TICKER, "AAA"])
    assert_normalised(together)
    assert together["Ticker"].unique().tolist() == ["AAA", DEFAULT_TICKER, "ZZZ"]
    for ticker, frame in alone.items():
        pd.testing.assert_frame_equal(one(together, ticker), frame, check_exact=True)
    # SYNTH is the reference pipeline's series whatever else is requested.
    pd.testing.assert_frame_equal(
        one(together, DEFAULT_TICKER), reference_generate_data(days=80), check_exact=True
    )
    pd.testing.assert_frame_equal(generate_gbm(days=80, tickers=["AAA"]), alone["AAA"])


def test_tickers_and_seeds_give_different_series() -> None:
    frame = generate_gbm(days=60, tickers=["AAA", "BBB"])
    assert not np.array_equal(one(frame, "AAA")["Close"], one(frame, "BBB")["Close"])
    other_seed = generate_gbm(days=60, seed=43, tickers=["AAA"])
    assert not np.array_equal(one(frame, "AAA")["Close"], other_seed["Close"])


def test_series_is_consistent_ohlcv() -> None:
    frame = generate_gbm(days=300, tickers=["AAA", "BBB"])
    validate_ohlcv(frame)
    assert (frame["High"] >= frame[["Open", "Close"]].max(axis=1)).all()
    assert (frame["Low"] <= frame[["Open", "Close"]].min(axis=1)).all()


@pytest.mark.parametrize(
    ("end_date", "last"),
    [
        ("2024-06-03", "2024-06-03"),  # a Monday
        ("2024-06-01", "2024-05-31"),  # a Saturday
        ("2024-06-02 15:30", "2024-05-31"),  # a Sunday, with a time of day
    ],
)
def test_end_date_ends_the_window_on_or_before_it(end_date: str, last: str) -> None:
    frame = generate_gbm(days=70, tickers=["AAA", "BBB"], end_date=end_date)
    assert_normalised(frame)
    for ticker in ["AAA", "BBB"]:
        dates = one(frame, ticker)["Date"]
        assert dates.iloc[-1] == pd.Timestamp(last)
        assert list(dates) == list(pd.bdate_range(end=end_date, periods=70))
    # Only the dates move: each ticker's prices are the same draws.
    prices = ["Open", "High", "Low", "Close", "Volume"]
    default = generate_gbm(days=70, tickers=["AAA", "BBB"])
    pd.testing.assert_frame_equal(frame[prices], default[prices])


@pytest.mark.parametrize(
    ("kwargs", "substrings"),
    [
        ({"days": 59}, ["days", "59", "60", "SMA_50"]),
        ({"days": 100.0}, ["days", "integer"]),
        ({"tickers": []}, ["tickers", "at least one"]),
        ({"tickers": ["AAA", "AAA"]}, ["tickers", "duplicate", "AAA"]),
        ({"tickers": ["AAA", " "]}, ["tickers", "non-blank"]),
        ({"seed": -1}, ["seed", "-1"]),
        ({"end_date": "not a date"}, ["end_date", "not a date"]),
        ({"days": MAX_DAYS + 1}, [f"days={MAX_DAYS + 1}", f"at most {MAX_DAYS}"]),
        ({"end_date": "1799-12-31"}, ["end_date='1799-12-31'", "out of range", "1800-01-01"]),
        ({"end_date": "2201-01-01T00:00"}, ["end_date='2201-01-01T00:00'", "2200-12-31"]),
    ],
)
def test_generate_gbm_rejects_bad_arguments(kwargs: dict, substrings: list[str]) -> None:
    with pytest.raises(DataValidationError) as info:
        generate_gbm(**kwargs)
    for text in substrings:
        assert text in str(info.value)


@pytest.mark.parametrize("end_date", [None, EARLIEST_END_DATE, LATEST_END_DATE])
def test_the_longest_windows_stay_inside_the_storable_dates(end_date: str | None) -> None:
    dates = generate_gbm(days=MAX_DAYS, end_date=end_date)["Date"]
    assert dates.is_monotonic_increasing and dates.is_unique
    assert pd.Timestamp("1700-01-01") < dates.iloc[0]
    assert dates.iloc[-1] < pd.Timestamp("2250-01-01")
    if end_date is not None:
        assert dates.iloc[-1] <= pd.Timestamp(end_date) and dates.iloc[-1].year == int(end_date[:4])
