"""Synthetic generation, CSV loading and validation of daily bars (core.data, core.csv_input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stock_assets.core.csv_input import load_ohlcv_csv
from stock_assets.core.data import (
    DEFAULT_TICKER,
    EARLIEST_END_DATE,
    LATEST_END_DATE,
    MAX_DAYS,
    MIN_ROWS_PER_TICKER,
    OHLCV_COLUMNS,
    PRICE_COLUMNS,
    DataValidationError,
    generate_gbm,
    validate_ohlcv,
)
from tests.support.reference import reference_dates, reference_generate_data


def one(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    return frame[frame["Ticker"] == ticker].reset_index(drop=True)


def assert_normalised(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == OHLCV_COLUMNS
    assert frame["Date"].dtype == "datetime64[ns]"
    assert frame["Ticker"].dtype == object
    assert all(frame[c].dtype == np.float64 for c in PRICE_COLUMNS)
    assert frame["Volume"].dtype == np.int64
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
    keys = frame[["Ticker", "Date"]]
    assert keys.equals(keys.sort_values(["Ticker", "Date"]).reset_index(drop=True))


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


# --------------------------------------------------------------------------------------
# load_ohlcv_csv
# --------------------------------------------------------------------------------------


def bars(days: int = 70, ticker: str = "AAA") -> pd.DataFrame:
    return generate_gbm(days=days, tickers=[ticker])


def write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_csv_round_trip_with_ticker_column_any_order(tmp_path: Path) -> None:
    frame = generate_gbm(days=70, tickers=["AAA", "BBB"])
    shuffled = frame.sample(frac=1.0, random_state=0)
    loaded = load_ohlcv_csv(write(tmp_path / "prices.csv", shuffled))
    assert_normalised(loaded)
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)


def test_csv_lower_case_columns_extra_columns_and_ticker_from_file_stem(tmp_path: Path) -> None:
    frame = bars(ticker="AAPL")
    export = frame.drop(columns="Ticker").assign(**{"Adj Close": frame["Close"] * 0.9})
    export.columns = [c if c == "Adj Close" else c.lower() for c in export.columns]
    loaded = load_ohlcv_csv(write(tmp_path / "aapl.csv", export))
    assert_normalised(loaded)
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)


def test_csv_upper_case_columns_ticker_from_argument(tmp_path: Path) -> None:
    frame = bars(ticker="MSFT")
    export = frame.drop(columns="Ticker").rename(columns=str.upper)
    loaded = load_ohlcv_csv(write(tmp_path / "export.csv", export), ticker="MSFT")
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)


def test_csv_ticker_argument_selects_rows_of_a_ticker_column(tmp_path: Path) -> None:
    frame = generate_gbm(days=70, tickers=["AAA", "BBB"])
    path = write(tmp_path / "prices.csv", frame.rename(columns={"Ticker": "ticker"}))
    pd.testing.assert_frame_equal(load_ohlcv_csv(path, ticker="BBB"), one(frame, "BBB"))
    with pytest.raises(DataValidationError, match=r"prices\.csv.*'Ticker'.*'CCC'.*2 ticker"):
        load_ohlcv_csv(path, ticker="CCC")


def test_csv_end_date_keeps_rows_on_or_before_it(tmp_path: Path) -> None:
    frame = bars(days=100)
    end = frame["Date"].iloc[80]
    loaded = load_ohlcv_csv(write(tmp_path / "aaa.csv", frame), end_date=str(end.date()))
    pd.testing.assert_frame_equal(loaded, frame.iloc[:81], check_exact=True)


def test_csv_dates_with_utc_offsets_keep_the_local_day(tmp_path: Path) -> None:
    frame = bars()
    export = frame.drop(columns="Ticker")
    offsets = np.where(np.arange(len(frame)) < 30, "-05:00", "-04:00")  # a DST change
    export["Date"] = frame["Date"].dt.strftime("%Y-%m-%d 00:00:00") + offsets
    loaded = load_ohlcv_csv(write(tmp_path / "aaa.csv", export))
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)


def test_csv_fractional_volume_is_rounded(tmp_path: Path) -> None:
    frame = bars()
    export = frame.assign(Volume=frame["Volume"] + 0.4)
    loaded = load_ohlcv_csv(write(tmp_path / "aaa.csv", export))
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)


def expect_error(path: Path, *substrings: str, **kwargs: str) -> str:
    """The loader's error; it names the file and each substring, on one line."""
    with pytest.raises(DataValidationError) as info:
        load_ohlcv_csv(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    for text in substrings:
        assert text in message, f"{text!r} not in {message!r}"
    return message


def test_csv_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.csv", "file not found", "Date, Open, High, Low, Close, Volume")


def test_csv_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    expect_error(path, "empty", "Date, Open, High, Low, Close, Volume")


def test_csv_header_only(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n")
    expect_error(path, "no data rows", str(MIN_ROWS_PER_TICKER))


def test_csv_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "prices.csv", bars().drop(columns=["Close", "Volume"]))
    expect_error(
        path,
        "line 1",
        "missing column(s) 'Close', 'Volume'",
        "expected Date, Open, High, Low, Close, Volume (any letter case)",
    )


def test_csv_unparseable_date(tmp_path: Path) -> None:
    frame = bars().astype({"Date": str})
    frame.loc[5, "Date"] = "soon-ish"
    message = expect_error(write(tmp_path / "p.csv", frame), "'Date'", "line 7", "YYYY-MM-DD")
    assert "soon-ish" not in message


@pytest.mark.parametrize(
    ("layout", "line"),
    [("%d/%m/%Y", 2), ("%m/%d/%Y", 2), ("%d.%m.%y", 2), ("%m-%d-%Y", 2)],
)
def test_csv_numeric_dates_with_the_year_last_are_refused(
    tmp_path: Path, layout: str, line: int
) -> None:
    frame = bars()
    export = frame.assign(Date=frame["Date"].dt.strftime(layout))
    message = expect_error(
        write(tmp_path / "p.csv", export), "'Date'", f"line {line}", "year last", "YYYY-MM-DD"
    )
    assert export["Date"].iloc[0] not in message


def test_csv_one_ambiguous_date_among_iso_dates_is_refused(tmp_path: Path) -> None:
    frame = bars().astype({"Date": str})
    frame.loc[30, "Date"] = "02/03/2023"
    expect_error(write(tmp_path / "p.csv", frame), "'Date'", "1 numeric date", "line 32")


@pytest.mark.parametrize(
    "layout",
    ["%Y/%m/%d", "%Y%m%d", "%Y-%m-%dT%H:%M:%SZ", "%d %b %Y", "%B %d, %Y", "%Y-%b-%d"],
)
def test_csv_unambiguous_date_formats_give_the_iso_days(tmp_path: Path, layout: str) -> None:
    frame = bars()
    export = frame.assign(Date=frame["Date"].dt.strftime(layout))
    loaded = load_ohlcv_csv(write(tmp_path / "aaa.csv", export))
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)


@pytest.mark.parametrize("layout", ["%Y-%m", "%Y", "%b %Y"])
def test_csv_dates_without_a_day_are_refused(tmp_path: Path, layout: str) -> None:
    frame = bars()
    export = frame.assign(Date=frame["Date"].dt.strftime(layout))
    expect_error(write(tmp_path / "p.csv", export), "'Date'", "line 2", "not dates")


def test_csv_non_numeric_price(tmp_path: Path) -> None:
    frame = bars().astype({"Close": object})
    frame.loc[3, "Close"] = "abc"
    message = expect_error(
        write(tmp_path / "p.csv", frame), "'Close'", "non-numeric", "line 5", "expected numbers"
    )
    assert "abc" not in message


@pytest.mark.parametrize(
    ("column", "value", "substrings"),
    [
        ("Open", np.nan, ["'Open'", "missing", "expected a number on every row"]),
        ("Volume", np.nan, ["'Volume'", "missing", "expected a number on every row"]),
        ("Close", 0.0, ["'Close'", "zero or negative", "expected positive prices (> 0)"]),
        ("Low", -1.5, ["'Low'", "zero or negative", "expected positive prices (> 0)"]),
        ("Volume", -10, ["'Volume'", "negative", "expected volume >= 0"]),
    ],
)
def test_csv_bad_values(tmp_path: Path, column: str, value: float, substrings: list[str]) -> None:
    frame = bars().astype({"Volume": float})
    frame.loc[10, column] = value
    message = expect_error(write(tmp_path / "p.csv", frame), *substrings, "line 12")
    assert "-1.5" not in message and "2023-01-16" not in message  # no value from the file


def test_csv_high_below_low(tmp_path: Path) -> None:
    frame = bars()
    bad = frame.index[20:23]
    frame.loc[bad, ["High", "Low"]] = frame.loc[bad, ["Low", "High"]].to_numpy()
    expect_error(
        write(tmp_path / "p.csv", frame),
        "'High'/'Low'",
        "High < Low on 3 row(s)",
        "line 22",
        "expected High >= Low",
    )


def test_csv_duplicate_dates(tmp_path: Path) -> None:
    frame = bars()
    frame = pd.concat([frame, frame.iloc[[40]]])
    expect_error(
        write(tmp_path / "p.csv", frame),
        "duplicate date",
        f"line {len(frame) + 1}",
        "expected one row per ticker per date",
    )


def test_csv_too_few_rows(tmp_path: Path) -> None:
    frame = pd.concat([bars(ticker="AAA"), bars(ticker="BBB").iloc[:45]])
    message = expect_error(
        write(tmp_path / "p.csv", frame),
        "too few rows",
        "the ticker at line 72 has 45",
        f"at least {MIN_ROWS_PER_TICKER} rows per ticker",
        "SMA_50",
    )
    assert "BBB" not in message


def test_csv_end_date_leaving_too_few_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "aaa.csv", bars())
    expect_error(path, "has 10 row(s)", "end_date 2023-01-13", end_date="2023-01-13")
    expect_error(path, "no rows dated on or before end_date", end_date="2022-01-01")
    expect_error(path, "end_date", "'soon'", end_date="soon")
    expect_error(path, "end_date='1650-01-01' is out of range", end_date="1650-01-01")


@pytest.mark.parametrize(
    "header", ["Date,Open,High,Low,Close,close,Volume", "Date,Open,High,Low,Close,Close,Volume"]
)
def test_csv_duplicate_column_is_refused(tmp_path: Path, header: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text(f"{header}\n2023-01-02,1,1,1,1,1,1\n")
    expect_error(path, "line 1", "'Close'", "appears 2 times", "columns 5, 6")


def test_csv_rows_longer_than_the_header_are_refused(tmp_path: Path) -> None:
    text = write(tmp_path / "aaa.csv", bars()).read_text().splitlines()
    for name, lines in {"one": [5], "all": range(1, len(text))}.items():
        changed = [f"{row},7" if i in lines else row for i, row in enumerate(text)]
        path = tmp_path / f"{name}.csv"
        path.write_text("\n".join(changed) + "\n")
        expect_error(path, f"line {min(lines) + 1}", "fields")


def test_csv_bytes_that_are_not_utf8_name_their_line(tmp_path: Path) -> None:
    path = write(tmp_path / "aaa.csv", bars())
    path.write_bytes(path.read_bytes().replace(b"\n2023-01-10", b"\n2023-01-10\xe9", 1))
    expect_error(path, "line 8", "not UTF-8")


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
def test_csv_compressed_loads_and_names_its_ticker_without_suffixes(
    tmp_path: Path, suffix: str
) -> None:
    frame = bars(ticker="AAPL")
    frame.drop(columns="Ticker").to_csv(tmp_path / f"aapl.csv{suffix}", index=False)
    loaded = load_ohlcv_csv(tmp_path / f"aapl.csv{suffix}")
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)


def test_csv_not_really_compressed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "aaa.csv.gz"
    path.write_text("Date,Open,High,Low,Close,Volume\n")
    expect_error(path, "cannot be decompressed as .gz")


def test_csv_a_directory_is_refused(tmp_path: Path) -> None:
    expect_error(tmp_path, "is a directory, not a regular file")


# --------------------------------------------------------------------------------------
# validate_ohlcv on in-memory frames
# --------------------------------------------------------------------------------------


def test_validate_accepts_generated_data() -> None:
    validate_ohlcv(generate_gbm(days=60, tickers=["A", "B"]))


def test_validate_names_the_source_and_the_problem() -> None:
    frame = generate_gbm(days=60).astype({"High": object})
    frame.loc[2, "High"] = "n/a?"
    with pytest.raises(DataValidationError, match=r"^stock data: column 'High'.*'n/a\?'"):
        validate_ohlcv(frame)
    with pytest.raises(DataValidationError, match=r"^my feed: missing column\(s\) 'Volume'"):
        validate_ohlcv(generate_gbm(days=60).drop(columns="Volume"), source="my feed")
