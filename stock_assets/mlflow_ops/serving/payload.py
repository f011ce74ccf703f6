"""The checks on a JSON request body before the model sees it (:mod:`.app`'s guard).

A body passes only if MLflow's scoring server will read it the way these checks did: exactly one
of the request keys, rows of finite numbers, at most :data:`MAX_ROWS` rows and :data:`MAX_CELLS`
cells once decoded. The first problem is named by its row and column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from stock_assets.core.features import FEATURE_COLUMNS

#: The most rows one request may hold once decoded, and the most cells (rows x 22 features).
MAX_ROWS = 10_000
MAX_CELLS = MAX_ROWS * len(FEATURE_COLUMNS)
REQUEST_KEYS = ("dataframe_split", "dataframe_records", "inputs", "instances")
_KEYS_TEXT = ", ".join(REQUEST_KEYS)

Cells = Iterable[tuple[object, Any]]


class TooLarge(ValueError):
    """A body whose decoded rows or cells exceed the bounds (answered 413)."""


class _NonFinite:
    def __init__(self, name: str) -> None:
        self.name = name


def _name(column: object) -> str:
    text = repr(column) if isinstance(column, str) else str(column)
    return text if len(text) <= 40 else text[:37] + "..."


def _value_problem(value: Any) -> str | None:
    if isinstance(value, bool):
        return "expected a number, got true/false"
    if isinstance(value, int | float):
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond a double's range
            finite = False
        return None if finite else "not a finite number (too large for a double)"
    if value is None:
        return "missing value (null); expected a number"
    if isinstance(value, _NonFinite):
        return f"{value.name} is not allowed; expected a finite number"
    if isinstance(value, str):
        return "expected a number, got a string"
    if isinstance(value, list | dict):
        kind = "list" if isinstance(value, list) else "object"
        return f"expected a number, got a {kind} (the input must be rows of numbers, 2-D)"
    return f"expected a number, got {type(value).__name__}"


def _positional(row: list[Any]) -> Cells:
    return ((FEATURE_COLUMNS[j] if j < len(FEATURE_COLUMNS) else j, v) for j, v in enumerate(row))


def _rows(rows: list[Any], *, named_only: bool) -> Iterator[tuple[str | None, Cells]]:
    """Each row of a list as (problem, cells): records by name, lists by feature position."""
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            yield None, row.items()
        elif isinstance(row, list) and not named_only:
            size = len(FEATURE_COLUMNS)
            problem = None if len(row) == size else f"row {i}: {len(row)} values; expected {size}"
            yield problem, _positional(row)
        else:
            expected = "an object of column: value" if named_only else "a list of 22 numbers"
            yield f"row {i}: expected {expected}", ()


def _split_rows(split: Any) -> tuple[str | None, list[Any], Iterable[tuple[str | None, Cells]]]:
    if not isinstance(split, dict) or not isinstance(split.get("data"), list):
        return "dataframe_split: expected an object with 'columns' and 'data'", [], ()
    extra = sorted(set(split) - {"columns", "data", "index"})
    if extra:
        return f"dataframe_split: unexpected key {_name(extra[0])}", [], ()
    data, columns = split["data"], split.get("columns")
    if columns is not None:
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            return "dataframe_split.columns: expected a list of column names (strings)", [], ()
        seen: set[str] = set()
        for column in columns:
            if column in seen:
                return f"dataframe_split.columns: column {_name(column)} appears twice", [], ()
            seen.add(column)
    index = split.get("index")
    if index is not None and not (
        isinstance(index, list)
        and len(index) == len(data)
        and all(isinstance(x, str | int) and not isinstance(x, bool) for x in index)
    ):
        return "dataframe_split.index: expected one label (string or integer) per row", [], ()

    def rows() -> Iterator[tuple[str | None, Cells]]:
        for i, row in enumerate(data):
            if not isinstance(row, list):
                yield f"dataframe_split.data: row {i} must be a list of numbers", ()
            elif columns is None:
                yield None, _positional(row)
            elif len(row) != len(columns):
                yield f"row {i} has {len(row)} values for {len(columns)} columns", ()
            else:
                yield None, zip(columns, row, strict=True)

    return None, data, rows()


def _column_rows(columns: dict[str, Any]) -> tuple[str | None, int]:
    """``{"inputs": {column: [values]}}``: the problem, or None and the number of rows."""
    lengths = {c: len(v) if isinstance(v, list) else 1 for c, v in columns.items()}
    if not lengths:
        return None, 0
    first = next(iter(lengths))
    for column, length in lengths.items():
        if length != lengths[first]:
            return (
                f"column {_name(column)} has {length} values, {_name(first)} has "
                f"{lengths[first]}; expected the same number of rows in every column"
            ), 0
    return None, lengths[first]


def _check(rows: Iterable[tuple[str | None, Cells]], count: int) -> str | None:
    if count == 0:
        return "no rows; expected at least one row of the 22 features"
    if count > MAX_ROWS:
        raise TooLarge(f"the request holds {count} rows; at most {MAX_ROWS} per request")
    cells = 0
    for i, (problem, row) in enumerate(rows):
        if problem:
            return problem
        for column, value in row:
            cells += 1
            if cells > MAX_CELLS:
                raise TooLarge(f"the request holds over {MAX_CELLS} cells; at most {MAX_CELLS}")
            problem = _value_problem(value)
            if problem:
                return f"row {i}, column {_name(column)}: {problem}"
    return None


def payload_problem(body: bytes) -> str | None:
    """What is wrong with a JSON request body (None if nothing); raises :class:`TooLarge`."""
    try:
        data = json.loads(body, parse_constant=_NonFinite)
    except UnicodeDecodeError:
        return "the request body is not UTF-8 text; expected JSON"
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        return f"the request body is not valid JSON ({error.msg} at {where})"
    except RecursionError:
        return "the request body is nested too deeply; expected rows of numbers"
    except ValueError as error:  # e.g. an integer of over 4300 digits
        return f"the request body is not valid JSON ({str(error).split(':')[0]})"
    if not isinstance(data, dict):
        return f"expected a JSON object with one of: {_KEYS_TEXT}"
    unknown = [key for key in data if key not in REQUEST_KEYS]
    if unknown:
        return f"unexpected key {_name(unknown[0])}; expected exactly one of: {_KEYS_TEXT}"
    if len(data) != 1:
        return f"expected exactly one of: {_KEYS_TEXT}; got {len(data)}"
    key, value = next(iter(data.items()))
    if key == "dataframe_split":
        problem, rows, cells = _split_rows(value)
        return problem or _check(cells, len(rows))
    if key != "dataframe_records" and isinstance(value, dict):  # inputs: {column: [values]}
        problem, count = _column_rows(value)
        if problem:
            return problem
        by_row = [
            (None, ((c, v[i] if isinstance(v, list) else v) for c, v in value.items()))
            for i in range(min(count, MAX_ROWS + 1))
        ]
        return _check(by_row, count)
    if not isinstance(value, list):
        return f"{key}: expected a list of rows"
    named_only = key == "dataframe_records"
    if value and not named_only and not any(isinstance(row, list | dict) for row in value):
        value = [value]  # a 1-D list of numbers is one row
    return _check(_rows(value, named_only=named_only), len(value))
