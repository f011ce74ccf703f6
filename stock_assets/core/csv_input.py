"""Daily bars from a user's CSV file: opened safely, read within bounds, validated.

Only a regular file is read (a FIFO, a device or a socket is refused before any read), at most
``MAX_CSV_BYTES`` of text, after decompressing a ``.gz``, ``.bz2``, ``.xz`` or ``.zip`` file.
Dates must say which number is the day: ISO dates (``2024-01-31``, ``2024/01/31``,
``20240131``, with a time and a UTC offset allowed) or a month name (``31 Jan 2024``).
An error names the file, the line and the column and what was expected, and never shows
text read from the file (the path may be any readable file, e.g. one holding secrets).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import re
import stat
import warnings
import zipfile
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from stock_assets.core.csv_dates import parse_dates
from stock_assets.core.data import (
    MIN_ROWS_PER_TICKER,
    NUMERIC_COLUMNS,
    OHLCV_COLUMNS,
    PRICE_COLUMNS,
    DataValidationError,
    check_end_date,
    validate_ohlcv,
)

#: The most text a CSV may hold, after decompression: 256 MiB (10 years of 500 tickers'
#: bars is about 75 MiB). Bounds the memory a file (or a compressed "bomb") can take.
MAX_CSV_BYTES = 256 * 1024 * 1024
_MIB = 1024 * 1024
_CHUNK = 4 * _MIB

_REQUIRED_CSV_COLUMNS = ["Date", *NUMERIC_COLUMNS]
#: Volumes are stored as int64: 2**63 and above do not fit (and would wrap to a negative).
_INT64_LIMIT = float(2**63)
_EXPECTED_CSV = "expected Date, Open, High, Low, Close, Volume (any letter case)"
_DECOMPRESSORS: dict[str, Callable[[IO[bytes]], io.BufferedIOBase]] = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
    ".bz2": lambda raw: bz2.BZ2File(raw, "rb"),
    ".xz": lambda raw: lzma.LZMAFile(raw, "rb"),  # noqa: SIM115 (closed by the caller)
}
_UNSUPPORTED = (".zst", ".tar", ".tgz", ".tbz2", ".txz", ".7z", ".rar")
_FILE_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a FIFO (named pipe)",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}
_FIELDS_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


# --------------------------------------------------------------------------------------
# Opening and reading, within bounds
# --------------------------------------------------------------------------------------


def _refuse_special(mode: int, source: str) -> None:
    """Refuse anything but a regular file, naming what it is."""
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _FILE_KINDS.items() if test(mode)), "a special file")
    raise DataValidationError(
        f"{source}: is {kind}, not a regular file; expected a CSV file of daily bars"
    )


def _open_regular(file: Path, source: str) -> IO[bytes]:
    """The file opened for reading, if it is a regular file (never blocks: a FIFO is refused)."""
    try:
        _refuse_special(os.stat(file).st_mode, source)
        # O_NONBLOCK: opening a FIFO swapped in after the stat returns at once; fstat refuses it.
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DataValidationError(
            f"{source}: file not found; expected a CSV of daily bars with columns "
            "Date, Open, High, Low, Close, Volume"
        ) from None
    except OSError as exc:
        raise DataValidationError(
            f"{source}: cannot be opened ({exc.strerror or type(exc).__name__}); expected a "
            "readable CSV file"
        ) from None
    try:
        info = os.fstat(fd)
        _refuse_special(info.st_mode, source)
        if info.st_size > MAX_CSV_BYTES:
            raise DataValidationError(
                f"{source}: is larger than the {MAX_CSV_BYTES // _MIB} MiB limit for a CSV "
                f"({info.st_size / _MIB:.0f} MiB); expected a smaller file (fewer tickers or days)"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_at_most(
    stream: IO[bytes] | io.BufferedIOBase, source: str, decompressed: bool
) -> bytearray:
    """All of ``stream``, refused once it passes ``MAX_CSV_BYTES`` (nothing more is read)."""
    data = bytearray()
    while len(data) <= MAX_CSV_BYTES:
        chunk = stream.read(min(_CHUNK, MAX_CSV_BYTES + 1 - len(data)))
        if not chunk:
            return data
        data += chunk
    what = "decompressed to" if decompressed else "holds"
    raise DataValidationError(
        f"{source}: {what} more than the {MAX_CSV_BYTES // _MIB} MiB limit for a CSV's text; "
        "expected a smaller file (fewer tickers or days)"
    )


def _read_text(file: Path, source: str) -> str:
    """The file's text: bounded, decompressed by its suffix, UTF-8 (a BOM is dropped)."""
    suffix = file.suffix.lower()
    if suffix in _UNSUPPORTED:
        raise DataValidationError(
            f"{source}: {suffix} archives are not read; expected a .csv file, or one compressed "
            "as .csv.gz, .csv.bz2, .csv.xz or .csv.zip"
        )
    with _open_regular(file, source) as raw:
        try:
            if suffix in _DECOMPRESSORS:
                with _DECOMPRESSORS[suffix](raw) as stream:
                    data = _read_at_most(stream, source, decompressed=True)
            elif suffix == ".zip":
                data = _read_zip(raw, source)
            else:
                data = _read_at_most(raw, source, decompressed=False)
        except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
            if suffix not in (*_DECOMPRESSORS, ".zip"):
                raise DataValidationError(
                    f"{source}: cannot be read "
                    f"({getattr(exc, 'strerror', None) or type(exc).__name__}); "
                    "expected a readable CSV file"
                ) from None
            raise DataValidationError(  # the exception's text may quote the file's bytes
                f"{source}: cannot be decompressed as {suffix} ({type(exc).__name__}); "
                f"expected a valid {suffix} file holding one CSV"
            ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataValidationError(
            f"{source}: line {line} is not UTF-8 text; expected a UTF-8 (or ASCII) CSV file"
        ) from None
    return text.removeprefix("\ufeff")


def _read_zip(raw: IO[bytes], source: str) -> bytearray:
    """The one member of a zip archive, bounded like any other file."""
    with zipfile.ZipFile(raw) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise DataValidationError(
                f"{source}: a zip archive with {len(members)} files; expected exactly one CSV"
            )
        with archive.open(members[0]) as stream:
            return _read_at_most(stream, source, decompressed=True)


# --------------------------------------------------------------------------------------
# Header and columns
# --------------------------------------------------------------------------------------


def _header(text: str, source: str) -> list[str]:
    """The names on line 1, as the csv module splits them."""
    try:
        header = next(csv.reader(io.StringIO(text), skipinitialspace=True), [])
    except csv.Error:
        header = []
    if not any(name.strip() for name in header):
        raise DataValidationError(
            f"{source}: file is empty or line 1 is not a header; expected a header line with "
            "Date, Open, High, Low, Close, Volume and one row per day"
        )
    return header


def _match_columns(header: Sequence[str], source: str) -> tuple[dict[str, int], int | None]:
    """Each field's column position, matching names in any letter case; duplicates refused."""
    by_key: dict[str, list[int]] = {}
    for position, name in enumerate(header):
        by_key.setdefault(name.strip().lower(), []).append(position)
    for canonical in [*_REQUIRED_CSV_COLUMNS, "Ticker"]:
        positions = by_key.get(canonical.lower(), [])
        if len(positions) > 1:
            shown = ", ".join(str(p + 1) for p in positions)
            raise DataValidationError(
                f"{source}: line 1: column {canonical!r} appears {len(positions)} times "
                f"(columns {shown}, in any letter case); expected exactly one column per field"
            )
    missing = [c for c in _REQUIRED_CSV_COLUMNS if c.lower() not in by_key]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataValidationError(
            f"{source}: line 1: missing column(s) {names}; {_EXPECTED_CSV}; the header has "
            f"{len(header)} column(s){_separator_hint(header)}"
        )
    mapping = {c: by_key[c.lower()][0] for c in _REQUIRED_CSV_COLUMNS}
    return mapping, by_key.get("ticker", [None])[0]


def _separator_hint(header: Sequence[str]) -> str:
    """A hint when the header was clearly split on the wrong separator (``;``, tab, ``|``)."""
    joined = " ".join(header)
    for separator in (";", "\t", "|"):
        if joined.count(separator) >= 2:
            shown = "tab" if separator == "\t" else repr(separator)
            return (
                f"; the separator looks like {shown}: save the file comma-separated, with a "
                "dot as the decimal mark"
            )
    return ""


def _read_rows(text: str, source: str, width: int) -> pd.DataFrame:
    """The rows under the header, columns by position, indexed by their line numbers."""
    try:
        with warnings.catch_warnings():
            # A row longer than the header: pandas would drop its extra fields (or, were all
            # rows longer, shift every column by one); refused instead.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(io.StringIO(text), skipinitialspace=True, index_col=False)
    except pd.errors.ParserWarning:
        raise DataValidationError(
            f"{source}: line {_first_long_row(text, width)} has more fields than the header; "
            f"expected {width} comma-separated fields per row, as on line 1"
        ) from None
    except pd.errors.EmptyDataError:
        raw = pd.DataFrame()
    except pd.errors.ParserError as exc:
        match = _FIELDS_ERROR.search(str(exc))
        where = (
            f"line {match[2]} has {match[3]} fields where the header has {match[1]}"
            if match
            else f"cannot be read as CSV ({type(exc).__name__})"
        )
        raise DataValidationError(
            f"{source}: {where}; expected a comma-separated text file with a header line"
        ) from None
    if raw.empty:
        raise DataValidationError(
            f"{source}: no data rows; expected one row per day, at least "
            f"{MIN_ROWS_PER_TICKER} rows per ticker"
        )
    if raw.shape[1] != width:
        raise DataValidationError(
            f"{source}: line 1 cannot be read as a header of {width} columns; expected a "
            "comma-separated header line"
        )
    raw.columns = range(width)
    raw.index = pd.RangeIndex(2, len(raw) + 2, name="line")  # line 1 is the header
    return raw


def _first_long_row(text: str, width: int) -> int | str:
    """The line number of the first row with more than ``width`` fields (error path only)."""
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    for row in reader:
        if len(row) > width:
            return reader.line_num
    return "?"


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


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def _stem(file: Path) -> str:
    """The file name without its extension and compression suffix: ``aapl.csv.gz`` -> aapl."""
    if file.suffix.lower() in (*_DECOMPRESSORS, ".zip"):
        file = Path(file.stem)
    return file.stem.strip()


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
    ``DataValidationError`` naming the file, the line and the column, and what was expected.
    """
    file = Path(path)
    source = str(path)
    end = check_end_date(end_date, field=f"{source}: end_date")
    if ticker is not None and (not isinstance(ticker, str) or not ticker.strip()):
        raise DataValidationError(
            f"{source}: ticker argument {ticker!r} is blank; expected a symbol such as 'AAPL'"
        )
    text = _read_text(file, source)
    header = _header(text, source)
    mapping, ticker_col = _match_columns(header, source)
    raw = _read_rows(text, source, len(header))
    del text

    frame = pd.DataFrame({c: raw[mapping[c]] for c in NUMERIC_COLUMNS}, index=raw.index)
    frame.insert(0, "Date", parse_dates(raw[mapping["Date"]], source))

    if ticker_col is not None:
        frame.insert(1, "Ticker", _parse_tickers(raw[ticker_col], source))
        if ticker is not None:
            keep = frame["Ticker"] == ticker.strip()
            if not keep.any():
                raise DataValidationError(
                    f"{source}: column 'Ticker' has no rows for ticker {ticker.strip()!r}; "
                    f"expected one of the file's {frame['Ticker'].nunique()} ticker(s)"
                )
            frame = frame[keep]
    else:
        name = ticker.strip() if ticker is not None else _stem(file).upper()
        if not name.strip():
            raise DataValidationError(
                f"{source}: cannot name the ticker; expected a Ticker column, a ticker "
                "argument or a file name such as 'AAPL.csv'"
            )
        frame.insert(1, "Ticker", name.strip())

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
    validate_ohlcv(frame, source=source, quote=False)

    # Volumes are stored as int64: a value that does not fit would wrap to a negative number.
    volume = pd.to_numeric(frame["Volume"]).to_numpy(dtype=np.float64)
    too_big = np.rint(volume) >= _INT64_LIMIT
    if too_big.any():
        raise DataValidationError(
            f"{source}: column 'Volume' has {int(too_big.sum())} value(s) too large to store, "
            f"first at line {frame.index[int(np.argmax(too_big))]}; expected a volume below "
            "9.2e18"
        )
    frame = frame.reset_index(drop=True)
    for col in PRICE_COLUMNS:
        frame[col] = pd.to_numeric(frame[col]).astype(np.float64)
    # Validated finite and non-negative; fractional volumes (e.g. crypto) are rounded.
    frame["Volume"] = np.rint(volume).astype(np.int64)
    frame["Ticker"] = frame["Ticker"].astype(object)
    return frame[OHLCV_COLUMNS]
