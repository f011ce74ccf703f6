"""Asset values as files: DataFrames as Parquet, the typed values as JSON. Nothing is pickled.

A typed value (:data:`stock_assets.core.values.VALUE_TYPES`) is written as its fields plus
``"__type__": "<class name>"`` and read back only into that closed set of classes, each field
checked against its annotation (pydantic); other JSON-able values (a plain dict of numbers) are
plain JSON. Anything else is refused with an error naming the type. Writes are atomic, so a
failed step never leaves a half-written file behind. Numbers are finite both ways: ``NaN``,
``Infinity`` and ``1e999`` (which Python's ``json`` accepts) are refused when a value is read,
naming the file and the field (:func:`read_error_line`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import TypeAdapter, ValidationError

from stock_assets.core.values import VALUE_TYPES

PARQUET_MAGIC = b"PAR1"
TYPE_KEY = "__type__"


class StorageError(TypeError):
    """A value that cannot be stored, or a file that is not a value this project wrote."""


@functools.cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def to_json(value: Any) -> str:
    """A typed value as JSON with its class name, or a plain JSON-able value as JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if VALUE_TYPES.get(name) is not type(value):
            raise StorageError(
                f"cannot store a {name}: only {', '.join(VALUE_TYPES)} are known value types "
                "(stock_assets.core.values)"
            )
        fields = _adapter(type(value)).dump_python(value, mode="json")
        try:
            return json.dumps({TYPE_KEY: name, **fields}, indent=2, sort_keys=True, allow_nan=False)
        except ValueError as error:
            raise StorageError(
                f"cannot store a {name} with a non-finite number ({error})"
            ) from None
    try:
        return json.dumps(value, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise StorageError(
            f"cannot store a {type(value).__name__}: asset values are DataFrames, "
            f"{', '.join(VALUE_TYPES)} or JSON-able values ({error})"
        ) from error


class _NonFinite:
    """A number JSON spelt that is not finite (``NaN``, ``Infinity``, ``1e999``), as read."""

    def __init__(self, text: str) -> None:
        self.text = text


def _finite_float(text: str) -> float | _NonFinite:
    number = float(text)
    return number if math.isfinite(number) else _NonFinite(text)


def _non_finite_field(data: Any, where: str = "") -> tuple[str, str] | None:
    """The first non-finite number in ``data``: its field (``metrics.accuracy``) and spelling."""
    if isinstance(data, _NonFinite):
        return where or "(the value)", data.text
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for key, item in items:
        found = _non_finite_field(
            item,
            f"{where}[{key}]"
            if isinstance(key, int)
            else (f"{where}.{key}" if where else str(key)),
        )
        if found:
            return found
    return None


def loads_finite(text: str) -> Any:
    """``json.loads(text)``, refusing ``NaN``, ``Infinity`` and numbers that overflow to them."""
    data = json.loads(text, parse_constant=_NonFinite, parse_float=_finite_float)
    found = _non_finite_field(data)
    if found:
        raise StorageError(f"field {found[0]!r} is {found[1]}; stored numbers must be finite")
    return data


def from_json(text: str) -> Any:
    """The value :func:`to_json` wrote; a typed value only into its known class."""
    data = loads_finite(text)
    if not (isinstance(data, dict) and TYPE_KEY in data):
        return data
    fields = dict(data)
    name = fields.pop(TYPE_KEY)
    cls = VALUE_TYPES.get(name)
    if cls is None:
        raise StorageError(f"unknown stored value type {name!r}; known: {', '.join(VALUE_TYPES)}")
    return _adapter(cls).validate_python(fields)


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """``frame.to_parquet(path, index=False)``, with each column encoded the way that pays.

    Parquet's writer defaults to a dictionary and snappy for every column. On continuous floats
    (features, returns) the dictionary overflows and falls back to plain encoding, and snappy
    finds nothing to compress: both cost time (writing and reading the features table took ~2x
    longer) for a file under 20% smaller. Float columns are written plain and uncompressed;
    the others (dates, tickers, volumes, targets), which repeat, keep the dictionary and snappy.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    floats = {field.name for field in table.schema if pa.types.is_floating(field.type)}
    pq.write_table(
        table,
        path,
        use_dictionary=[name for name in table.column_names if name not in floats],
        compression={name: "none" if name in floats else "snappy" for name in table.column_names},
    )


def write_value(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` to exactly ``path``, atomically, in the format its type calls for."""
    target = Path(os.fspath(path))
    text = None if isinstance(value, pd.DataFrame) else to_json(value)  # refuse before writing
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        if text is None:
            write_parquet(value, tmp_name)
        else:
            Path(tmp_name).write_text(text)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return target


def read_parquet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``pd.read_parquet(path)``, one pandas block per column, every column writable.

    ``pd.read_parquet`` consolidates the float columns into one 2-D block, a second copy of
    the table (half the read time at 1.26 M rows). A column Arrow hands over without a copy
    is read-only; it is copied, as consolidation would have, so the frame behaves as before.
    """
    frame = pq.read_table(path).to_pandas(split_blocks=True)
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if isinstance(column.dtype, np.dtype) and not column.to_numpy().flags.writeable:
            frame.isetitem(position, column.copy())
    return frame


def read_value(path: str | os.PathLike[str]) -> Any:
    """Read the value written by :func:`write_value` at exactly ``path``.

    A JSON value with a non-finite number raises :class:`StorageError` naming the file and field.
    """
    source = Path(os.fspath(path))
    if not source.is_file():
        raise FileNotFoundError(f"no stored asset value at {source}")
    with source.open("rb") as handle:
        head = handle.read(4)
    if head == PARQUET_MAGIC:
        return read_parquet(source)
    try:
        return from_json(source.read_text())
    except StorageError as error:
        raise StorageError(f"stored value {source}: {error}") from None


def read_error_line(path: str | os.PathLike[str], error: BaseException) -> str:
    """One line for a stored value that could not be read: the file, the field, what is wrong."""
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(the value)"
        return (
            f"stored value {path}: field {field!r}: {first['msg']} "
            f"(got {str(first.get('input'))[:80]!r}); it was edited or damaged"
        )
    text = str(error).splitlines()[0] if str(error) else error.__class__.__name__
    if isinstance(error, StorageError) and text.startswith("stored value "):
        return text
    return f"stored value {path}: {error.__class__.__name__}: {text[:300]}"
