"""A run killed mid-``model`` is marked FAILED, and no MLflow run stays RUNNING."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dagster import DagsterRunStatus, build_sensor_context

from stock_assets.definitions import defs
from stock_assets.defs.sensors import dead_runs
from tests.reliability.helpers import (
    DEPLOY_ALWAYS,
    FAST_MODEL,
    Sandbox,
    finish,
    kill_group,
    run_ids,
    wait_for_step,
)


def _kill_during_model(sandbox: Sandbox) -> str:
    known = run_ids(sandbox)
    # the reference pipeline's seven candidates: scoring them takes a while, the MLflow run open
    process = sandbox.materialize({"model": {"candidates": ["reference"]}})
    run_id = wait_for_step(sandbox, "model.plan_candidates", known)
    time.sleep(3)  # well inside the candidate comparison
    kill_group(process)
    return run_id


@pytest.mark.slow
def test_killed_run_is_failed_by_the_sensor_and_swept_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = Sandbox(tmp_path)
    for name, value in sandbox.env().items():  # the daemon's environment is the runs' one
        if name.startswith(("MLFLOW_", "STOCK_ASSETS_", "DAGSTER_HOME")):
            monkeypatch.setenv(name, value)

    # 1. The daemon's sensor, evaluated against the real instance, finds the dead run.
    first = _kill_during_model(sandbox)
    with sandbox.instance() as instance:
        assert instance.get_run_by_id(first).status == DagsterRunStatus.STARTED
        running = [r for r in sandbox.mlflow_runs() if r.info.status == "RUNNING"]
        assert [r.data.tags["dagster_run_id"] for r in running] == [first]
        resources = defs.get_repository_def().get_top_level_resources()  # the daemon's
        with build_sensor_context(instance=instance, resources=resources) as context:
            dead_runs(context)
        assert instance.get_run_by_id(first).status == DagsterRunStatus.FAILURE
    by_dagster = {r.data.tags["dagster_run_id"]: r.info.status for r in sandbox.mlflow_runs()}
    assert by_dagster[first] == "FAILED"

    # 2. Without the daemon: the next run's start closes the dead one.
    second = _kill_during_model(sandbox)
    assert finish(sandbox.materialize({"model": FAST_MODEL, "deploy_decision": DEPLOY_ALWAYS})) == 0
    runs = sandbox.mlflow_runs()
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    assert {r.data.tags["dagster_run_id"]: r.info.status for r in runs}[second] == "FAILED"
    with sandbox.instance() as instance:
        assert instance.get_run_by_id(second).status == DagsterRunStatus.FAILURE
