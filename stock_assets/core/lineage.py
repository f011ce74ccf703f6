"""Content digests of tables: the identity of the data a model learned from.

Pure (pandas, numpy, hashlib). The digest is a function of the table's content only: column
names, their logical types and every cell value, in row order; not the index, the process, the
machine or the file format it was read from. It is the Dagster data version of ``stock_data``
and ``features`` and the MLflow dataset digest of the training and test windows, so the same
string can be looked up in both tools.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd
from pandas.api.types import is_datetime64_any_dtype, is_string_dtype

#: Hex characters kept from the SHA-256: 128 bits, within MLflow's 36-character digest column.
DIGEST_LENGTH = 32
#: Bumped whenever the hashing scheme changes, so old and new digests never collide.
SCHEME = b"stock_assets.frame_digest/1\n"
DATE_COLUMN = "Date"


def frame_digest(frame: pd.DataFrame) -> str:
    """A stable content digest of ``frame``: SHA-256 of its schema and row hashes, 32 hex chars.

    Rows are hashed with ``pd.util.hash_pandas_object(index=False)``, which uses a fixed key
    (no per-process randomisation). Dates are hashed at nanosecond resolution and strings as
    strings, so a table read back from Parquet or CSV gives the digest of the one written.
    """
    normalised = _normalise(frame)
    sha = hashlib.sha256(SCHEME)
    for name, kind in _logical_types(frame).items():
        sha.update(f"{name}\x1f{kind}\x1e".encode())
    sha.update(len(frame).to_bytes(8, "little"))
    if len(frame.columns):
        row_hashes = pd.util.hash_pandas_object(normalised, index=False)
        sha.update(row_hashes.to_numpy(dtype="<u8").tobytes())
    return sha.hexdigest()[:DIGEST_LENGTH]


def date_range(frame: pd.DataFrame, column: str = DATE_COLUMN) -> tuple[str, str]:
    """First and last date of ``column`` as ``YYYY-MM-DD`` (empty strings for an empty table)."""
    if frame.empty:
        return "", ""
    dates = pd.to_datetime(frame[column])
    return f"{dates.min():%Y-%m-%d}", f"{dates.max():%Y-%m-%d}"


@dataclass(frozen=True)
class TableSummary:
    """What identifies a table: its digest, size and date range."""

    digest: str
    rows: int
    start: str
    end: str

    @property
    def window(self) -> str:
        """``start..end``, the form used in names and tags."""
        return f"{self.start}..{self.end}"


def summarise(frame: pd.DataFrame, date_column: str = DATE_COLUMN) -> TableSummary:
    """Digest, row count and date range of ``frame``."""
    start, end = date_range(frame, date_column) if date_column in frame.columns else ("", "")
    return TableSummary(digest=frame_digest(frame), rows=len(frame), start=start, end=end)


def _logical_types(frame: pd.DataFrame) -> dict[str, str]:
    """Column name → type name, with storage details (date unit, string backend) left out."""
    kinds = {}
    for name, dtype in frame.dtypes.items():
        if is_datetime64_any_dtype(dtype):
            kind = "datetime" if getattr(dtype, "tz", None) is None else "datetime_utc"
        elif is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
            kind = "string"
        else:
            kind = str(dtype)
        kinds[str(name)] = kind
    return kinds


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as UTC-naive nanoseconds and strings as Python objects, for hashing."""
    columns = {}
    for position, (_, column) in enumerate(frame.items()):
        if is_datetime64_any_dtype(column.dtype):
            if getattr(column.dtype, "tz", None) is not None:
                column = column.dt.tz_convert("UTC").dt.tz_localize(None)
            column = column.astype("datetime64[ns]")
        elif is_string_dtype(column.dtype) and not isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype(object)
        columns[position] = column.reset_index(drop=True)
    return pd.DataFrame(columns)
