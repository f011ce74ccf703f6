"""CSV input: odd dates, special and expanding files, out-of-range config, and
errors that never show a file's content. Each runs the real graph on a real data directory and
reads the directory back: a failed ``stock_data`` step stores nothing and moves no pointer."""

from __future__ import annotations

import gzip
import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import ExecuteInProcessResult

from stock_assets.core.csv_input import MAX_CSV_BYTES
from stock_assets.core.data import generate_gbm
from stock_assets.defs.io_manager import latest_path
from tests.conftest import failure_text, run_graph

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def _bars(days: int = 120) -> pd.DataFrame:
    return generate_gbm(days=days, seed=5).drop(columns="Ticker")


def _load(config: dict[str, Any]) -> ExecuteInProcessResult:
    return run_graph({"stock_data": config}, selection="stock_data")


def _refused(result: ExecuteInProcessResult, data_dir: Path, *fragments: str) -> str:
    """The failure's text, after checking it names each fragment and that nothing was written."""
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "stock_data"
    error = failure.step_failure_data.error  # one line, the rule's own: no traceback, no cause
    assert error.cls_name == "Failure" and error.cause is None, failure_text(result)
    assert "\n" not in error.message.strip(), error.message
    message = failure_text(result)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assets = data_dir / "assets"
    stored = [p for p in assets.rglob("*") if p.is_file()] if assets.exists() else []
    assert stored == [], stored
    assert not latest_path(data_dir, "stock_data").exists()
    return message


# --------------------------------------------------------------------------------------
# Dates whose day and month cannot be told apart
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_day_first_dates_are_refused_naming_file_line_and_column(
    data_dir: Path, tmp_path: Path
) -> None:
    bars = _bars()
    bars["Date"] = bars["Date"].dt.strftime("%d/%m/%Y")  # starts 02/01/2023: 2 January
    path = tmp_path / "dayfirst.csv"
    bars.to_csv(path, index=False)
    message = _refused(_load({"csv_path": str(path)}), data_dir, str(path), "'Date'", "line 2")
    assert "YYYY-MM-DD" in message and "02/01/2023" not in message


@pytest.mark.slow
def test_year_first_and_month_name_dates_load_as_the_same_days(
    data_dir: Path, tmp_path: Path
) -> None:
    bars = _bars()
    for name, layout in [("slashes", "%Y/%m/%d"), ("names", "%d %b %Y"), ("basic", "%Y%m%d")]:
        path = tmp_path / f"{name}.csv"
        bars.assign(Date=bars["Date"].dt.strftime(layout)).to_csv(path, index=False)
        result = _load({"csv_path": str(path)})
        assert result.success, failure_text(result)
        loaded = result.output_for_node("stock_data")
        assert list(loaded["Date"]) == list(bars["Date"]), name


# --------------------------------------------------------------------------------------
# Duplicate headers; errors show no file content
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_duplicate_header_is_refused_naming_the_file_and_the_column(
    data_dir: Path, tmp_path: Path
) -> None:
    bars = _bars()
    path = tmp_path / "twice.csv"
    bars.insert(5, "Close2", bars["Close"] * 2)
    bars.to_csv(path, index=False, header=[*bars.columns[:5], "Close", "Volume"])
    assert path.read_text().startswith("Date,Open,High,Low,Close,Close,Volume\n")
    _refused(_load({"csv_path": str(path)}), data_dir, str(path), "'Close'", "line 1")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["secrets_file", "header", "date", "price", "ticker"])
def test_errors_name_file_line_and_column_never_the_content(
    data_dir: Path, tmp_path: Path, where: str
) -> None:
    path = tmp_path / "input.csv"
    bars = _bars().astype({"Date": object, "Close": object})
    expected = ["line 7"]
    if where == "secrets_file":
        path.write_text(f"AWS_SECRET_ACCESS_KEY={SECRET}\nregion=eu-west-1\n")
        expected = ["missing column(s)"]
    elif where == "header":
        bars.columns = [*bars.columns[:-1], SECRET]  # no Volume column
        expected = ["'Volume'", "missing"]
    elif where == "date":
        bars.loc[5, "Date"] = SECRET
        expected += ["'Date'"]
    elif where == "price":
        bars.loc[5, "Close"] = SECRET
        expected += ["'Close'"]
    else:
        bars.insert(1, "Ticker", "AAA")
        bars.loc[5, "Ticker"] = SECRET  # one row of its own ticker: too few rows
        expected = ["too few rows"]
    if where != "secrets_file":
        bars.to_csv(path, index=False)
    message = _refused(_load({"csv_path": str(path)}), data_dir, str(path), *expected)
    assert SECRET not in message and "eu-west" not in message


# --------------------------------------------------------------------------------------
# Special and expanding files
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_fifo_is_refused_without_hanging(data_dir: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "bars.csv"
    os.mkfifo(fifo)
    results: list[ExecuteInProcessResult] = []
    worker = threading.Thread(target=lambda: results.append(_load({"csv_path": str(fifo)})))
    worker.start()
    worker.join(timeout=60)
    hung = worker.is_alive()
    if hung:  # release the blocked reader: a writer opens and closes the FIFO (end of file)
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=60)
    assert not hung, "the stock_data step blocked on a FIFO"
    _refused(results[0], data_dir, str(fifo), "not a regular file", "FIFO")


@pytest.mark.slow
@pytest.mark.parametrize("link", [False, True], ids=["dev_zero", "symlink_to_dev_zero"])
def test_a_device_is_refused_before_reading(data_dir: Path, tmp_path: Path, link: bool) -> None:
    path = Path("/dev/zero")
    if link:
        path = tmp_path / "zeros.csv"
        path.symlink_to("/dev/zero")
    _refused(_load({"csv_path": str(path)}), data_dir, str(path), "not a regular file", "device")


@pytest.mark.slow
def test_a_file_over_the_size_limit_is_refused_before_reading(
    data_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as file:  # sparse: no disk used
        file.write(b"Date,Open,High,Low,Close,Volume\n")
        file.truncate(MAX_CSV_BYTES + 1)
    _refused(_load({"csv_path": str(path)}), data_dir, str(path), "larger than", "MiB")


@pytest.mark.slow
def test_a_gzip_bomb_is_refused_once_its_text_passes_the_limit(
    data_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "bomb.csv.gz"
    chunk = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as file:
        for _ in range(MAX_CSV_BYTES // len(chunk) + 1):
            file.write(chunk)
    assert path.stat().st_size < MAX_CSV_BYTES // 100
    message = _refused(_load({"csv_path": str(path)}), data_dir, str(path), "decompressed")
    assert "MiB" in message


@pytest.mark.slow
def test_a_small_gzip_csv_still_loads(data_dir: Path, tmp_path: Path) -> None:
    bars = _bars()
    path = tmp_path / "aaa.csv.gz"
    bars.to_csv(path, index=False)
    result = _load({"csv_path": str(path)})
    assert result.success, failure_text(result)
    assert list(result.output_for_node("stock_data")["Close"]) == list(bars["Close"])


# --------------------------------------------------------------------------------------
# Days and end_date outside the range of dates a bar can carry
# --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        ({"days": 70000}, ["days=70000", "at most"]),
        ({"end_date": "1650-06-30"}, ["end_date='1650-06-30'", "1800-01-01"]),
        ({"end_date": "2300-01-02"}, ["end_date='2300-01-02'", "2200-12-31"]),
        ({"days": 30000, "end_date": "1800-06-30"}, ["days=30000", "at most"]),
    ],
    ids=["days", "end_date_early", "end_date_late", "both"],
)
def test_days_and_end_date_out_of_range_fail_before_anything_is_written(
    data_dir: Path, config: dict[str, Any], fragments: list[str]
) -> None:
    message = _refused(_load(config), data_dir, *fragments)
    assert "sorted" not in message
