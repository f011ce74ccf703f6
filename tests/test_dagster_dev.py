"""`dagster dev` as a user starts it, and "Materialize all" launched the way the UI does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from benchmarks.processes import free_port, stop_group
from tests.conftest import PROJECT_ROOT, env_for_subprocess

pytestmark = pytest.mark.slow

ASSETS = ["stock_data", "features", "model", "deploy_decision", "deployed_model"]

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def _graphql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def dagster_dev(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`dagster dev` from the project root, on its own Dagster home, data dir and MLflow store."""
    port = free_port()
    home = tmp_path / "dagster_home"
    home.mkdir()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = (tmp_path / "dagster-dev.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env=env_for_subprocess(
            DAGSTER_HOME=str(home),
            STOCK_ASSETS_DATA_DIR=str(tmp_path / "data"),
            MLFLOW_TRACKING_URI=uri,
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_default_signals,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _graphql(url, "{ version }", {})
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "dagster-dev.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "dagster dev did not answer within 90 s"
                time.sleep(1)
        yield url, uri
    finally:
        stop_group(process, grace=30)
        log.close()


def test_materialize_all_from_the_ui_finishes_one_mlflow_run(dagster_dev) -> None:
    url, uri = dagster_dev
    params = {
        "selector": {
            "repositoryLocationName": "stock_assets",
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": [name]} for name in ASSETS],
        },
        "mode": "default",
        "runConfigData": {"ops": {"deploy_decision": {"config": {"accuracy_threshold": 0.0}}}},
    }
    launched = _graphql(url, LAUNCH, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline = time.monotonic() + 240
    status = "STARTING"
    while status not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(2)
        status = _graphql(url, STATUS, {"id": run_id})["runOrError"]["status"]
    assert status == "SUCCESS"

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [r.data.tags["dagster_run_id"] for r in runs] == [run_id]
    assert runs[0].info.status == "FINISHED"
    version = mlflow.MlflowClient().get_model_version_by_alias("stock-prediction", "production")
    assert str(version.version) == runs[0].data.tags["registered_version"]
