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

import numpy as np
import pandas as pd
from pandas.api.types import is_datetime64_any_dtype, is_string_dtype

#: Hex characters kept from the SHA-256: 128 bits, within MLflow's 36-character digest column.
DIGEST_LENGTH = 32
#: Bumped whenever the hashing scheme changes, so old and new digests never collide.
SCHEME = b"stock_assets.frame_digest/1\n"
DATE_COLUMN = "Date"


def frame_digest(frame: pd.DataFrame) -> str:
    """A stable content digest of ``frame``: SHA-256 of its schema and row hashes, 32 hex chars.

    The row hashes are ``pd.util.hash_pandas_object(frame, index=False)``'s, which uses a fixed
    key (no per-process randomisation). Dates are hashed at nanosecond resolution and strings as
    strings, so a table read back from Parquet or CSV gives the digest of the one written.
    They are computed column by column (:func:`row_hashes`), without a normalised copy of the
    table.
    """
    sha = hashlib.sha256(SCHEME)
    for name, kind in _logical_types(frame).items():
        sha.update(f"{name}\x1f{kind}\x1e".encode())
    sha.update(len(frame).to_bytes(8, "little"))
    if len(frame.columns):
        sha.update(row_hashes(frame).astype("<u8", copy=False).tobytes())
    return sha.hexdigest()[:DIGEST_LENGTH]


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """One uint64 per row: ``hash_pandas_object(index=False)`` of the normalised columns.

    Combines the columns' ``pd.util.hash_array`` as pandas' ``combine_hash_arrays`` does
    (CPython's tuple hash), in place, one column at a time.
    """
    width = len(frame.columns)
    out = np.full(len(frame), 0x345678, dtype=np.uint64)
    mult = np.uint64(1000003)
    for i in range(width):
        out ^= pd.util.hash_array(_normalised_values(frame.iloc[:, i]))
        out *= mult
        mult += np.uint64(82520 + 2 * (width - i))
    out += np.uint64(97531)
    return out


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


def _normalised_values(column: pd.Series) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The column's values to hash: dates as UTC-naive nanoseconds, strings as Python objects."""
    if is_datetime64_any_dtype(column.dtype):
        if getattr(column.dtype, "tz", None) is not None:
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        return column.to_numpy(dtype="datetime64[ns]")
    if is_string_dtype(column.dtype) and not isinstance(column.dtype, pd.CategoricalDtype):
        return column.to_numpy(dtype=object)
    if isinstance(column.dtype, pd.api.extensions.ExtensionDtype):
        return column.array  # e.g. nullable Int8: hashed with its mask, as pandas does
    return column.to_numpy()
