"""Serialising asset values to files, shared by the Dagster IO manager and the KFP runtime.

DataFrames go to Parquet (typed and columnar), plain dicts to JSON, anything else (a fitted
scikit-learn pipeline) to a joblib dump. Writes are atomic, so a failed step never leaves a
half-written file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

PARQUET_MAGIC = b"PAR1"


def suffix_for(value: Any) -> str:
    """The file suffix the value is stored under."""
    if isinstance(value, pd.DataFrame):
        return ".parquet"
    if isinstance(value, dict) and _is_json(value):
        return ".json"
    return ".joblib"


def write_value(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` to ``path`` atomically, in the format its type calls for."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        suffix = suffix_for(value)
        if suffix == ".parquet":
            value.to_parquet(tmp_name, index=False)
        elif suffix == ".json":
            Path(tmp_name).write_text(json.dumps(value, indent=2, sort_keys=True))
        else:
            joblib.dump(value, tmp_name)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return target


def read_value(path: str | os.PathLike[str]) -> Any:
    """Read a value written by :func:`write_value`, recognising the format by its first bytes."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no stored asset value at {source}")
    with source.open("rb") as handle:
        head = handle.read(4)
    if head == PARQUET_MAGIC:
        return pd.read_parquet(source)
    if head[:1] in (b"{", b"["):
        return json.loads(source.read_text())
    return joblib.load(source)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
