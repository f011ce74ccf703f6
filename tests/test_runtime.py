"""The KFP runtime and the MLflow resource's lifecycle methods, called directly on a real store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from exporters.kfp.runtime import finish_pipeline_run, materialize_asset
from stock_assets.defs.resources import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_NAME,
    MlflowTracking,
)
from stock_assets.defs.storage import read_value

pytestmark = pytest.mark.slow


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
    experiment_id = MlflowTracking().experiment_id()
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
    tracking = MlflowTracking()
    client = mlflow.MlflowClient()
    orphan = client.create_run(
        tracking.experiment_id(), tags={"dagster_run_id": "crashed"}
    ).info.run_id
    assert tracking.close_open_runs("crashed", "KILLED") == [orphan]
    assert client.get_run(orphan).info.status == "KILLED"
    assert tracking.close_open_runs("crashed") == []  # safe to repeat


def test_end_pipeline_run_checks_the_status_and_finds_nothing_for_an_unknown_run(
    mlflow_store: str,
) -> None:
    tracking = MlflowTracking()
    with pytest.raises(ValueError, match="'SUCCEEDED'; expected one of FINISHED, FAILED, KILLED"):
        tracking.end_pipeline_run("run-x", "SUCCEEDED")
    assert tracking.end_pipeline_run("never-started", "FAILED") is None


def test_an_existing_experiment_gets_the_experiment_kind_tag(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    old = client.create_experiment(EXPERIMENT_NAME, tags={"project": "stock-prediction"})
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(old).tags
    assert MlflowTracking(mlflow_tracking_uri=uri).experiment_id() == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
