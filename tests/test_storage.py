"""Asset values on disk: typed JSON read back only into known classes, Parquet, no pickle."""

from __future__ import annotations

import datetime as dt
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from stock_assets.core.data import generate_gbm
from stock_assets.core.features import FEATURE_COLUMNS, compute_features
from stock_assets.core.values import DateWindow, Decision, Promotion, TrainedModel
from stock_assets.defs.io_manager import AssetFileIOManager
from stock_assets.defs.storage import StorageError, read_value, write_value

MODEL = TrainedModel(
    model_type="random_forest",
    hyperparameters={"n_estimators": 50, "max_depth": 5},
    feature_columns=("SMA_5", "RSI"),
    metrics={"accuracy": 0.52, "baseline_accuracy": 0.5},
    train_window=DateWindow(dt.date(2023, 3, 10), dt.date(2024, 7, 25)),
    test_window=DateWindow(dt.date(2024, 7, 26), dt.date(2024, 11, 28)),
    model_uri="models:/m-1",
    serving_model_uri="models:/m-2",
    registered_version="3",
    mlflow_run_id="abc",
)


@pytest.mark.parametrize(
    "value",
    [
        MODEL,
        Decision(True, True, 0.6, 0.5, 0.55, None, None, "ok", "logistic", "models:/m", "1"),
        Promotion("stock-prediction", "2", "production", "1", True, "models:/x@production"),
        {"rows": 7, "total": -18.0},
    ],
    ids=["TrainedModel", "Decision", "Promotion", "plain dict"],
)
def test_values_round_trip_with_their_types(tmp_path: Path, value: object) -> None:
    path = write_value(tmp_path / "value", value)
    assert path == tmp_path / "value"  # exactly the path asked for, no suffix added
    again = read_value(path)
    assert again == value and type(again) is type(value)


def test_typed_json_is_readable_and_names_its_class(tmp_path: Path) -> None:
    stored = json.loads(write_value(tmp_path / "model", MODEL).read_text())
    assert stored["__type__"] == "TrainedModel"
    assert stored["test_window"] == {"first": "2024-07-26", "last": "2024-11-28"}


def test_frames_are_parquet(tmp_path: Path) -> None:
    bars = generate_gbm(days=60)
    path = write_value(tmp_path / "bars", bars)
    assert path.read_bytes()[:4] == b"PAR1"
    pd.testing.assert_frame_equal(read_value(path), bars)


def test_float_columns_are_plain_and_the_repetitive_ones_dictionary_encoded(
    tmp_path: Path,
) -> None:
    """Continuous floats overflow Parquet's default dictionary and do not compress: writing and
    reading them that way cost ~2x. They are stored plain; the others keep dictionary + snappy."""
    table = compute_features(generate_gbm(days=120, tickers=["AAA", "BBB"]))
    path = write_value(tmp_path / "features", table)
    chunks = pq.ParquetFile(path).metadata.row_group(0)
    stored = {chunks.column(i).path_in_schema: chunks.column(i) for i in range(chunks.num_columns)}
    for name in ["Open", "Close", *FEATURE_COLUMNS]:
        assert not stored[name].has_dictionary_page, name
        assert stored[name].compression == "UNCOMPRESSED", name
    for name in ["Date", "Ticker", "Volume", "Target"]:
        assert stored[name].has_dictionary_page, name
        assert stored[name].compression == "SNAPPY", name
    back = read_value(path)
    pd.testing.assert_frame_equal(back, table)  # dtypes too: object Ticker, Int8 Target
    # Read back one block per column, without copying the floats into one 2-D block.
    assert back._mgr.nblocks == len(table.columns)
    back.loc[0, "RSI"] = 50.0  # and writable, as any frame


def test_an_unknown_type_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Other:
        x: int

    for value in (Other(1), object()):
        with pytest.raises(StorageError, match="cannot store a"):
            write_value(tmp_path / "x", value)
    assert list(tmp_path.iterdir()) == []


def test_reading_accepts_only_the_known_classes(tmp_path: Path) -> None:
    (tmp_path / "evil").write_text(json.dumps({"__type__": "os.system", "command": "true"}))
    with pytest.raises(StorageError, match="unknown stored value type 'os.system'"):
        read_value(tmp_path / "evil")
    bad = json.loads(write_value(tmp_path / "m", MODEL).read_text())
    bad["metrics"] = "not a dict"
    (tmp_path / "m").write_text(json.dumps(bad))
    with pytest.raises(ValidationError, match="metrics"):
        read_value(tmp_path / "m")
    (tmp_path / "pickled").write_bytes(pickle.dumps(MODEL))
    with pytest.raises(UnicodeDecodeError):  # never unpickled
        read_value(tmp_path / "pickled")


def test_io_manager_path_protocol_is_the_upath_io_managers(tmp_path: Path) -> None:
    manager = AssetFileIOManager(base_dir=str(tmp_path))
    manager.dump_to_path(None, MODEL, tmp_path / "artifact")
    assert manager.load_from_path(None, tmp_path / "artifact") == MODEL


@pytest.mark.parametrize("spelling", ["Infinity", "-Infinity", "NaN", "1e999"])
def test_non_finite_numbers_are_refused_when_read_naming_file_and_field(
    tmp_path: Path, spelling: str
) -> None:
    """Python's json reads Infinity, NaN and 1e999 (as inf); an edited value must not pass."""
    path = write_value(tmp_path / "model", MODEL)
    path.write_text(path.read_text().replace('"accuracy": 0.52', f'"accuracy": {spelling}'))
    with pytest.raises(StorageError) as raised:
        read_value(path)
    assert str(raised.value) == (
        f"stored value {path}: field 'metrics.accuracy' is {spelling}; "
        "stored numbers must be finite"
    )
    (tmp_path / "plain").write_text(f'{{"folds": [{{"auc": 0.5}}, {{"auc": {spelling}}}]}}')
    with pytest.raises(StorageError, match=r"field 'folds\[1\]\.auc' is"):
        read_value(tmp_path / "plain")


def test_a_non_finite_typed_value_is_not_written(tmp_path: Path) -> None:
    import dataclasses

    bad = dataclasses.replace(MODEL, metrics={"accuracy": float("inf")})
    with pytest.raises(StorageError, match="non-finite"):
        write_value(tmp_path / "model", bad)
    assert list(tmp_path.iterdir()) == []
