"""Daily bars loaded from CSV (core.csv_input) and validated: each rule and its one-line error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stock_assets.core.csv_input import load_ohlcv_csv
from stock_assets.core.data import (
    MIN_ROWS_PER_TICKER,
    DataValidationError,
    generate_gbm,
    validate_ohlcv,
)
from tests.data_helpers import assert_normalised, one

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
