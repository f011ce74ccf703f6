"""What the Dagster and MLflow UIs show a newcomer: previews, check results, the MLflow link and
the two baselines, read back from a real run; and the link opening under `make mlflow-ui`."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from typing import Any

import mlflow
import pytest
from dagster import AssetKey
from PIL import Image

from stock_assets.core.features import FEATURE_COLUMNS
from stock_assets.mlflow_ops.serving.server import sqlite_path
from tests.conftest import PROJECT_ROOT, env_for_subprocess, mlflow_run_for
from tests.support.processes import free_port, group_processes, stop_group

HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def materialization_metadata(result, asset: str) -> dict[str, Any]:
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey(asset)
    ]
    return event.materialization.metadata


@pytest.mark.slow
@pytest.mark.parametrize("asset", ["stock_data", "features"])
def test_previews_show_days_not_midnights(deployed, asset: str) -> None:
    result, _ = deployed
    metadata = materialization_metadata(result, asset)
    preview = metadata["preview"].md_str
    last_day = metadata["date_range"].value.split("..")[1]
    assert "00:00:00" not in preview, preview
    assert re.search(rf"^\| {last_day} \|", preview, re.M), preview


@pytest.mark.slow
def test_features_finite_says_what_it_checked(deployed) -> None:
    result, _ = deployed
    (evaluation,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_check_key.name == "features_finite"
    ]
    assert evaluation.passed
    metadata = {key: value.value for key, value in evaluation.metadata.items()}
    assert metadata == {"features_checked": len(FEATURE_COLUMNS), "non_finite_values": 0}


@pytest.mark.slow
def test_each_baseline_is_labelled_with_what_it_is_measured_on(deployed) -> None:
    """`baseline_accuracy` is on the test window (the run's description says so); the
    comparison chart's line is the fold mean on training dates, and its legend says that."""
    result, _ = deployed
    run = mlflow_run_for(result)
    note = run.data.tags["mlflow.note.content"]
    window = result.output_for_node("model").test_window
    test_window = str(window)  # first..last, the notation of every window
    assert re.search(rf"test window {window.first}(\.\.| to ){window.last} ", note), note
    assert "`baseline_accuracy`: always predicting the training majority class" in note
    assert "mean over the walk-forward validation folds, on the training dates" in note

    client = mlflow.MlflowClient()
    table = client.download_artifacts(run.info.run_id, "comparison/comparison.csv")
    fold_baseline = float(_csv_column(table, "baseline_accuracy_mean")[0])
    chart = Image.open(client.download_artifacts(run.info.run_id, "comparison/comparison.png"))
    assert chart.text["Title"] == "Candidates: walk-forward accuracy on the training dates"
    folds = run.data.params["cv_folds"]
    assert (
        f"majority-class baseline, mean of the {folds} folds = {fold_baseline:.3f}"
        in (chart.text["Description"])
    )
    assert run.data.metrics["baseline_accuracy"] != pytest.approx(fold_baseline, abs=5e-4)

    # The asset's page in Dagster labels both, next to the baseline_accuracy it shows.
    metadata = materialization_metadata(result, "model")
    baseline = run.data.metrics["baseline_accuracy"]
    assert metadata["baseline_accuracy"].value == pytest.approx(baseline, abs=1e-6)
    assert metadata["test_window"].value == test_window
    assert metadata["baselines"].value == (
        "baseline_accuracy: always the training majority class, scored on the test window "
        f"{test_window}; the comparison chart's line is that rule's mean over the walk-forward "
        "folds (training dates)"
    )


def _csv_column(path: str, name: str) -> list[str]:
    import csv

    with open(path, newline="") as handle:
        return [row[name] for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_mlflow_link_opens_while_make_mlflow_ui_runs(deployed, mlflow_store: str) -> None:
    """On the local store the model's link names `make mlflow-ui`; started the README's way
    (lean: the server and its launcher, nothing else), that UI serves the linked run."""
    result, _ = deployed
    link = materialization_metadata(result, "model")["mlflow_run"].md_str
    run = mlflow_run_for(result)
    target = f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert link.startswith(f"[MLflow run {run.info.run_id}]({target})"), link
    assert "opens while `make mlflow-ui` runs" in link

    database = sqlite_path(mlflow_store)
    port = free_port()
    process = subprocess.Popen(
        ["make", "-s", "mlflow-ui", f"MLFLOW_UI_PORT={port}"],
        cwd=PROJECT_ROOT,
        env=env_for_subprocess(STOCK_ASSETS_DATA_DIR=str(database.parent)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        answer = _get_when_up(f"{base}/ajax-api/2.0/mlflow/runs/get?run_id={run.info.run_id}")
        assert answer["run"]["info"]["run_id"] == run.info.run_id
        with HTTP.open(f"{base}/", timeout=10) as page:  # the page the link's fragment routes in
            assert page.status == 200 and b"<html" in page.read().lower()
        assert len(group_processes(process.pid)) <= 2, group_processes(process.pid)
    finally:
        stop_group(process)


def _get_when_up(url: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with HTTP.open(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
