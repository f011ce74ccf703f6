"""Hostile or odd files, a fresh store, a missing store; real CLI processes."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import mlflow
import pytest

from stock_assets.core.data import generate_gbm
from stock_assets.defs.io_manager import latest_path
from stock_assets.defs.storage import read_value
from tests.reliability.helpers import (
    BIN,
    DEPLOY_ALWAYS,
    FAST_MODEL,
    Sandbox,
    finish,
    kill_group,
)


class _Payload:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _run_log(sandbox: Sandbox, process: subprocess.Popen, name: str) -> tuple[int, str]:
    status = finish(process)
    return status, (sandbox.root / name).read_text()


@pytest.mark.slow
def test_stray_files_and_pickles_in_the_data_directory_change_nothing(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    ops = {"model": FAST_MODEL, "deploy_decision": DEPLOY_ALWAYS}
    assert finish(sandbox.materialize(ops)) == 0
    features = read_value(latest_path(sandbox.data, "features"))

    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    run_dir = latest_path(sandbox.data, "stock_data").parent
    assets = sandbox.data / "assets"
    for folder in (assets, run_dir, assets / "latest"):
        for name in ("stock_data.bak", "stock_data.pkl", "stock_data.joblib", "features.bak"):
            (folder / name).write_bytes(payload)
    (run_dir / "features.bak").write_bytes(b"PAR1 not the features")

    # A partial re-run reads the committed stock_data, and a full run writes its own.
    for select in ("features", "stock_data*"):
        assert finish(sandbox.materialize(ops, select=select)) == 0, select
        assert not marker.exists(), "a pickle from the data directory was executed"
    again = read_value(latest_path(sandbox.data, "features"))
    assert again.equals(features)


def _csv(
    path: Path,
    sep: str = ",",
    decimal: str = ".",
    huge_volume_at: int | None = None,
    date_format: str | None = None,
) -> Path:
    bars = generate_gbm(days=80, seed=3).drop(columns="Ticker")
    bars["Volume"] = bars["Volume"].astype("float64")
    if date_format is not None:
        bars["Date"] = bars["Date"].dt.strftime(date_format)
    if huge_volume_at is not None:
        bars.loc[huge_volume_at, "Volume"] = 1e19
    bars.to_csv(path, index=False, sep=sep, decimal=decimal)
    return path


@pytest.mark.slow
def test_bad_csvs_fail_with_file_line_and_column(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    cases = {
        "huge.csv": (_csv(tmp_path / "huge.csv", huge_volume_at=10), "line 12"),
        "semi.csv": (_csv(tmp_path / "semi.csv", sep=";", decimal=","), "looks like ';'"),
        "dayfirst.csv": (_csv(tmp_path / "dayfirst.csv", date_format="%d/%m/%Y"), "line 2"),
    }
    for name, (path, expected) in cases.items():
        log = sandbox.root / f"{name}.log"
        process = sandbox.materialize(
            {"stock_data": {"csv_path": str(path)}}, select="stock_data", log=log
        )
        assert finish(process) != 0, name
        text = log.read_text()
        assert expected in text and str(path) in text, text[-3000:]
        if name == "huge.csv":
            assert "'Volume'" in text and "too large" in text
        if name == "dayfirst.csv":
            assert "'Date'" in text and "year last" in text
    assert not latest_path(sandbox.data, "stock_data").exists()  # nothing stored


@pytest.mark.slow
def test_a_fifo_as_csv_path_fails_the_cli_promptly(tmp_path: Path) -> None:
    """Nobody ever writes to the FIFO: the step must refuse it, not wait for a writer."""
    sandbox = Sandbox(tmp_path)
    fifo = tmp_path / "bars.csv"
    os.mkfifo(fifo)
    log = sandbox.root / "fifo.log"
    process = sandbox.materialize({"stock_data": {"csv_path": str(fifo)}}, "stock_data", log)
    try:
        status = finish(process, timeout=120)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise AssertionError("dagster asset materialize blocked on a FIFO") from None
    text = log.read_text()
    assert status != 0 and str(fifo) in text and "FIFO (named pipe), not a regular file" in text
    assert not latest_path(sandbox.data, "stock_data").exists()  # nothing stored


@pytest.mark.slow
def test_two_first_runs_on_a_fresh_sqlite_store_both_succeed(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    assert not (sandbox.data / "mlflow.db").exists()
    processes = [sandbox.materialize(select="stock_data") for _ in range(2)]
    assert [finish(p) for p in processes] == [0, 0]
    assert {r.info.status for r in sandbox.mlflow_runs()} == {"FINISHED"}
    assert len(sandbox.mlflow_runs()) == 2


@pytest.mark.slow
def test_registry_list_on_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    done = subprocess.run(
        [str(BIN / "stock-registry"), "list"], env=sandbox.env(), capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "no MLflow store at" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (sandbox.data / "mlflow.db").exists()
    assert mlflow.get_tracking_uri() != sandbox.tracking_uri
