"""The content digest: the same for the same data anywhere, different for any change."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from stock_assets.core.data import generate_gbm
from stock_assets.core.features import compute_features
from stock_assets.core.lineage import (
    DIGEST_LENGTH,
    SCHEME,
    _logical_types,
    frame_digest,
    summarise,
)
from stock_assets.defs.storage import read_value, write_value
from tests.conftest import PROJECT_ROOT, env_for_subprocess


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    """The seed's features for two tickers: dates, strings, floats and a nullable Int8."""
    return compute_features(generate_gbm(days=120, seed=7, tickers=["AAA", "BBB"]))


@pytest.mark.slow
def test_same_digest_in_other_processes_with_other_hash_seeds(features, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from stock_assets.core.data import generate_gbm\n"
        "from stock_assets.core.features import compute_features\n"
        "from stock_assets.core.lineage import frame_digest\n"
        "bars = generate_gbm(days=120, seed=7, tickers=['AAA', 'BBB'])\n"
        "print(frame_digest(compute_features(bars)))\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=PROJECT_ROOT,
            env=env_for_subprocess(PYTHONHASHSEED=hash_seed),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        digests.add(done.stdout.strip())
    assert digests == {frame_digest(features)}
    assert len(frame_digest(features)) == DIGEST_LENGTH


def test_stored_and_read_back_gives_the_same_digest(features, tmp_path: Path) -> None:
    back = read_value(write_value(tmp_path / "features.parquet", features))
    assert frame_digest(back) == frame_digest(features)
    # Only content counts: not the index, not the date unit.
    shuffled_index = features.set_axis(range(1000, 1000 + len(features)))
    assert frame_digest(shuffled_index) == frame_digest(features)
    microseconds = features.assign(Date=features["Date"].astype("datetime64[us]"))
    assert frame_digest(microseconds) == frame_digest(features)


def test_any_change_of_content_changes_the_digest(features) -> None:
    original = frame_digest(features)
    one_cell = features.copy()
    one_cell.loc[one_cell.index[3], "Close"] += 1e-9
    changed = {
        "one cell": one_cell,
        "one date": features.assign(
            Date=features["Date"].where(
                features.index != features.index[-1], pd.Timestamp(2000, 1, 3)
            )
        ),
        "row order": features.iloc[::-1],
        "a row less": features.iloc[:-1],
        "column name": features.rename(columns={"Close": "close"}),
        "column order": features[[*features.columns[1:], features.columns[0]]],
        "type": features.assign(Volume=features["Volume"].astype("float64")),
    }
    digests = {name: frame_digest(frame) for name, frame in changed.items()}
    assert original not in digests.values(), digests
    assert len(set(digests.values())) == len(digests)


def test_mlflow_default_digest_misses_what_ours_sees(features) -> None:
    """Why we pass our digest: MLflow's ignores date columns (and rows past 10,000)."""
    moved = features.assign(Date=features["Date"] + pd.Timedelta(days=1))
    assert mlflow.data.from_pandas(moved).digest == mlflow.data.from_pandas(features).digest
    assert frame_digest(moved) != frame_digest(features)


def test_summary_has_rows_and_date_range(features) -> None:
    summary = summarise(features)
    assert summary.rows == len(features)
    assert summary.start == f"{features['Date'].min():%Y-%m-%d}"
    assert summary.window == f"{summary.start}..{features['Date'].max():%Y-%m-%d}"


def test_dataset_schema_equals_mlflows_without_its_cell_by_cell_scan(features) -> None:
    """TableDataset gives MLflow's own schema (types, and required = no missing value)."""
    from mlflow.data.pandas_dataset import PandasDataset

    from stock_assets.mlflow_ops.lineage import SCHEMA_SAMPLE_ROWS, TableDataset

    # missing values only after the sampled rows: still seen, the column not required
    frame = pd.concat([features] * (SCHEMA_SAMPLE_ROWS // len(features) + 2), ignore_index=True)
    frame.loc[len(frame) - 1, "RSI"] = np.nan
    ours = TableDataset(frame, source=None, targets="Target", digest="d").schema
    with pytest.warns(UserWarning, match="Inferred schema contains integer"):  # MLflow's hint
        mlflows = PandasDataset(frame, source=None, targets="Target", digest="d").schema
    assert ours.to_dict() == mlflows.to_dict()
    assert {c["name"]: c["required"] for c in ours.to_dict()}["RSI"] is False


def _digest_as_documented(frame: pd.DataFrame) -> str:
    """SHA-256 of the scheme, the logical schema, the row count and pandas' row hashes of the
    table with dates as UTC-naive nanoseconds and strings as objects (the digest's definition)."""
    normalised = {}
    for position, (_, column) in enumerate(frame.items()):
        if pd.api.types.is_datetime64_any_dtype(column.dtype):
            if column.dt.tz is not None:
                column = column.dt.tz_convert("UTC").dt.tz_localize(None)
            column = column.astype("datetime64[ns]")
        elif pd.api.types.is_string_dtype(column.dtype) and column.dtype != "category":
            column = column.astype(object)
        normalised[position] = column.reset_index(drop=True)
    sha = hashlib.sha256(SCHEME)
    for name, kind in _logical_types(frame).items():
        sha.update(f"{name}\x1f{kind}\x1e".encode())
    sha.update(len(frame).to_bytes(8, "little"))
    rows = pd.util.hash_pandas_object(pd.DataFrame(normalised), index=False)
    sha.update(rows.to_numpy(dtype="<u8").tobytes())
    return sha.hexdigest()[:DIGEST_LENGTH]


def test_digest_is_pandas_row_hashes_of_the_normalised_table(features) -> None:
    """Hashed column by column (no normalised copy), the digest is still its definition's,
    for every kind of column a table may hold."""
    n = len(features)
    mixed = features.assign(
        Stamp=pd.date_range("2024-03-08", periods=n, freq="h", tz="US/Eastern"),
        Micro=features["Date"].astype("datetime64[us]"),
        Text=pd.array(["up", None] * (n // 2) + ["x"] * (n % 2), dtype="string"),
        Kind=pd.Categorical(["a", "b"] * (n // 2) + ["a"] * (n % 2)),
        Flag=features["Close"] > features["Open"],
        Count=pd.array([1, None] * (n // 2) + [3] * (n % 2), dtype="Int64"),
    ).set_axis(range(5, 5 + n))
    for frame in (features, mixed, mixed.iloc[::3], mixed.iloc[:0]):
        assert frame_digest(frame) == _digest_as_documented(frame)
