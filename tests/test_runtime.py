"""The KFP runtime and the MLflow lifecycle helpers, called directly on a real store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from exporters.kfp.runtime import finish_pipeline_run, materialize_asset
from stock_assets.defs.resources import EXPERIMENT_NAME, close_open_runs, ensure_experiment
from stock_assets.defs.storage import read_value


def _runs_tagged(kfp_run_id: str) -> list[mlflow.entities.Run]:
    return mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.kfp_run_id = '{kfp_run_id}'",
        output_format="list",
    )


def test_tasks_of_one_kfp_run_share_one_mlflow_run(data_dir: Path, tmp_path: Path) -> None:
    bars = tmp_path / "stock_data"
    materialize_asset(
        module="stock_assets.definitions",
        asset="stock_data",
        inputs={},
        output=str(bars),
        config={"days": 120},
        kfp_run_id="run-a",
    )
    materialize_asset(
        module="stock_assets.definitions",
        asset="features",
        inputs={"stock_data": str(bars)},
        output=str(tmp_path / "features"),
        config={},
        kfp_run_id="run-a",
    )
    (run,) = _runs_tagged("run-a")
    assert run.info.status == "RUNNING"  # left open for the exit handler
    assert run.data.params["data_days"] == "120" and "feature_rows" in run.data.params
    assert isinstance(read_value(tmp_path / "features"), pd.DataFrame)

    finish_pipeline_run(module="stock_assets.definitions", kfp_run_id="run-a", state="FAILED")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"


def test_an_injected_mlflow_run_id_is_respected(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_store: str
) -> None:
    experiment_id = ensure_experiment(mlflow_store)
    injected = mlflow.MlflowClient().create_run(experiment_id, run_name="platform").info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", injected)
    materialize_asset(
        module="stock_assets.definitions",
        asset="stock_data",
        inputs={},
        output=str(tmp_path / "bars"),
        config={"days": 100},
        kfp_run_id="run-b",
    )
    assert [r.info.run_id for r in _runs_tagged("run-b")] == [injected]  # no second run
    assert mlflow.get_run(injected).data.params["data_days"] == "100"
    finish_pipeline_run(module="stock_assets.definitions", kfp_run_id="run-b", state="SUCCEEDED")
    assert mlflow.get_run(injected).info.status == "FINISHED"


def test_backstop_closes_runs_left_running(mlflow_store: str) -> None:
    experiment_id = ensure_experiment(mlflow_store, EXPERIMENT_NAME)
    client = mlflow.MlflowClient()
    orphan = client.create_run(experiment_id, tags={"dagster_run_id": "crashed"}).info.run_id
    assert close_open_runs("crashed", "KILLED") == [orphan]
    assert client.get_run(orphan).info.status == "KILLED"
    assert close_open_runs("crashed") == []  # safe to repeat
