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
from mlflow.tracking._tracking_service import utils as tracking_utils

from tests.conftest import PROJECT_ROOT, env_for_subprocess
from tests.support.processes import free_port, stop_group

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


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`dagster dev` from the project root, on its own Dagster home, data dir and MLflow store."""
    tmp_path = tmp_path_factory.mktemp("dagster_dev")
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


SELECTOR = {
    "repositoryLocationName": "stock_assets",
    "repositoryName": "__repository__",
    "pipelineName": "__ASSET_JOB",
    "assetSelection": [{"path": [name]} for name in ASSETS],
}
VALID = """
query Valid($selector: PipelineSelector!, $config: RunConfigData) {
  isPipelineConfigValid(pipeline: $selector, mode: "default", runConfigData: $config) {
    __typename
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
STEP_FAILURES = """
query Failures($id: ID!) {
  logsForRun(runId: $id) {
    ... on EventConnection {
      events { ... on ExecutionStepFailureEvent { stepKey error { className message } } }
    }
  }
}
"""


def launchpad_defaults() -> dict[str, Any]:
    """The run config the launchpad opens with: every Config field at its default, unset
    (None) ones included, as the UI scaffolds it from the config schema."""
    from stock_assets.definitions import defs
    from stock_assets.defs.config import run_config

    config_by_asset = {}
    for key in defs.resolve_asset_graph().toposorted_asset_keys:
        for op_def in defs.get_assets_def(key).node_def.iterate_op_defs():  # model: its ops
            config_class = op_def.compute_fn.decorated_fn.__annotations__.get("config")
            if config_class is not None:
                fields = config_class.model_fields.items()
                config_by_asset[key.to_user_string()] = {
                    name: info.get_default(call_default_factory=True) for name, info in fields
                }
    ops = run_config(config_by_asset)["ops"]  # the model's fields at ops.model.ops.<op>
    return {"ops": ops}


def _launch(url: str, run_config: dict[str, Any]) -> str:
    params = {"selector": SELECTOR, "mode": "default", "runConfigData": run_config}
    launched = _graphql(url, LAUNCH, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _wait(url: str, run_id: str) -> str:
    deadline = time.monotonic() + 240
    status = "STARTING"
    while status not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(2)
        status = _graphql(url, STATUS, {"id": run_id})["runOrError"]["status"]
    return status


@pytest.mark.slow
def test_materialize_all_from_the_ui_finishes_one_mlflow_run(
    dagster_dev, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launchpad's defaults (nulls for the unset fields) with the README's one change."""
    url, uri = dagster_dev
    config = launchpad_defaults()
    assert config["ops"]["stock_data"]["config"]["end_date"] is None
    config["ops"]["deploy_decision"]["config"]["accuracy_threshold"] = 0.0
    run_id = _launch(url, config)
    assert _wait(url, run_id) == "SUCCESS"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # set_tracking_uri sets it too: undone after
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [r.data.tags["dagster_run_id"] for r in runs] == [run_id]
    assert runs[0].info.status == "FINISHED"
    version = mlflow.MlflowClient().get_model_version_by_alias("stock-prediction", "production")
    assert str(version.version) == runs[0].data.tags["registered_version"]


@pytest.mark.slow
def test_a_bad_value_fails_its_step_with_the_message_first(dagster_dev) -> None:
    """The launchpad checks types; a value's rule runs as the step starts, and the UI's step
    failure reads "Failure: <the message>" (no pydantic or Dagster wrapper in front)."""
    url, _ = dagster_dev
    config = launchpad_defaults()
    config["ops"]["stock_data"]["config"]["days"] = "ten"
    invalid = _graphql(url, VALID, {"selector": SELECTOR, "config": config})
    assert invalid["isPipelineConfigValid"]["__typename"] == "RunConfigValidationInvalid"
    assert "days" in invalid["isPipelineConfigValid"]["errors"][0]["message"]

    config["ops"]["stock_data"]["config"]["days"] = 10
    valid = _graphql(url, VALID, {"selector": SELECTOR, "config": config})
    assert valid["isPipelineConfigValid"]["__typename"] == "PipelineConfigValidationValid"
    run_id = _launch(url, config)
    assert _wait(url, run_id) == "FAILURE"
    events = _graphql(url, STEP_FAILURES, {"id": run_id})["logsForRun"]["events"]
    (failure,) = [e for e in events if e.get("stepKey")]
    assert failure["stepKey"] == "stock_data"
    assert failure["error"]["className"] == "Failure"
    first_line = failure["error"]["message"].splitlines()[0]
    assert first_line.split("Failure: ", 1)[1].startswith("days=10 is too small"), first_line


@pytest.mark.slow
def test_a_failing_step_without_mlflow_fails_the_mlflow_run_from_the_ui(
    dagster_dev, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``plan_candidates`` (no MLflow resource) fails after steps that used it succeeded, each
    in its own process: the run's MLflow run ends FAILED, not FINISHED."""
    url, uri = dagster_dev
    config = launchpad_defaults()
    config["ops"]["stock_data"]["config"]["days"] = 300
    config["ops"]["model"]["ops"]["plan_candidates"]["config"]["model_type"] = "svm"
    config["execution"] = {"config": {"multiprocess": {}}}  # each step in a process of its own
    run_id = _launch(url, config)
    assert _wait(url, run_id) == "FAILURE"

    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("stock-prediction").experiment_id],
        f"tags.dagster_run_id = '{run_id}'",
    )
    assert [r.info.status for r in runs] == ["FAILED"]
