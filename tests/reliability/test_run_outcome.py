"""The MLflow run ends as the Dagster run did, on every launch path.

Each step of a multiprocess run is a process of its own that opens the tracking resource; none
of them may end the MLflow run, since none knows the outcome. Real ``dagster`` processes, a real
SQLite store, a real full disk (a small tmpfs).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    build_run_status_sensor_context,
    build_sensor_context,
    job,
    op,
)

from stock_assets.definitions import defs
from stock_assets.defs.config import run_config
from stock_assets.defs.resources import MlflowTracking
from stock_assets.defs.run_record import MLFLOW_RUN_TAG
from stock_assets.defs.sensors import dead_runs, mlflow_run_on_cancel, mlflow_run_on_failure
from tests.conftest import failure_text, mlflow_run_for, run_graph
from tests.reliability.helpers import (
    BIN,
    FAST_MODEL,
    PROJECT_ROOT,
    Sandbox,
    finish,
    kill_group,
    run_ids,
    wait_for_step,
)

#: The model's first op, which uses no MLflow resource, fails after stock_data and features
#: (which do) succeeded in processes of their own.
SVM = {"stock_data": {"days": 300}, "model": {"model_type": "svm"}}


def _statuses(sandbox: Sandbox) -> dict[str, str]:
    return {r.data.tags["dagster_run_id"]: r.info.status for r in sandbox.mlflow_runs()}


@pytest.mark.slow
def test_a_failing_step_without_mlflow_fails_the_mlflow_run_under_the_cli(
    tmp_path: Path,
) -> None:
    sandbox = Sandbox(tmp_path)
    known = run_ids(sandbox)
    assert finish(sandbox.materialize(SVM, select="*", in_process=False)) != 0
    (run_id,) = run_ids(sandbox) - known
    with sandbox.instance() as instance:
        run = instance.get_run_by_id(run_id)
        assert run.status == DagsterRunStatus.FAILURE
    assert _statuses(sandbox) == {run_id: "FAILED"}
    assert run.tags[MLFLOW_RUN_TAG] == sandbox.mlflow_runs()[0].info.run_id  # named in Dagster


@pytest.mark.slow
def test_the_scheduled_job_ends_its_mlflow_run_with_its_outcome(tmp_path: Path) -> None:
    """``dagster job execute -j retrain``: the schedule's job and executor, multiprocess."""
    sandbox = Sandbox(tmp_path)

    def execute(ops: dict) -> int:
        config = tmp_path / f"config-{len(ops)}-{time.monotonic_ns()}.json"
        config.write_text(json.dumps(run_config(ops)))  # JSON is YAML
        command = [str(BIN / "dagster"), "job", "execute", "-m", "stock_assets.definitions"]
        command += ["-j", "retrain", "-c", str(config)]
        done = subprocess.run(
            command, cwd=PROJECT_ROOT, env=sandbox.env(), capture_output=True, timeout=400
        )
        return done.returncode

    known = run_ids(sandbox)
    assert execute({"model": FAST_MODEL, "deploy_decision": {"accuracy_threshold": 0.0}}) == 0
    (succeeded,) = run_ids(sandbox) - known
    assert execute(SVM) != 0
    (failed,) = run_ids(sandbox) - known - {succeeded}
    assert _statuses(sandbox) == {succeeded: "FINISHED", failed: "FAILED"}


@pytest.mark.slow
def test_materialize_in_process_fails_the_mlflow_run(data_dir: Path) -> None:
    result = run_graph({"stock_data": {"days": 300}, "model": {"model_type": "svm"}})
    assert not result.success
    assert "svm" in failure_text(result)
    assert mlflow_run_for(result).info.status == "FAILED"


@pytest.mark.slow
def test_a_killed_multiprocess_run_is_failed_not_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while scoring, after steps that used MLflow ended: the run is still RUNNING (it
    was FINISHED by the first step's teardown before), and the daemon's sensor fails it."""
    sandbox = Sandbox(tmp_path)
    for name, value in sandbox.env().items():  # the daemon's environment is the runs' one
        if name.startswith(("MLFLOW_", "STOCK_ASSETS_", "DAGSTER_HOME")):
            monkeypatch.setenv(name, value)
    known = run_ids(sandbox)
    process = sandbox.materialize({"model": {"candidates": ["reference"]}}, in_process=False)
    run_id = wait_for_step(sandbox, "model.plan_candidates", known, timeout=300)
    with sandbox.instance() as instance:  # a scoring step (no MLflow resource) has started
        deadline = time.monotonic() + 120
        while not [
            r
            for r in instance.get_records_for_run(
                run_id, of_type=DagsterEventType.STEP_START
            ).records
            if r.event_log_entry.step_key.startswith("model.score_candidate")
        ]:
            assert time.monotonic() < deadline, "no scoring step started"
            time.sleep(0.5)
    assert _statuses(sandbox) == {run_id: "RUNNING"}
    kill_group(process)
    with sandbox.instance() as instance:
        resources = defs.get_repository_def().get_top_level_resources()  # the daemon's
        with build_sensor_context(instance=instance, resources=resources) as context:
            dead_runs(context)
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
    assert _statuses(sandbox) == {run_id: "FAILED"}


@op
def boom() -> None:
    raise ValueError("boom")


@job
def failing() -> None:
    boom()


def _sensor(definitions: Definitions, name: str, instance: DagsterInstance, run_id: str):
    """Evaluate run status sensor ``name`` of ``definitions`` on ``run_id``'s last event, with
    the definitions' top-level resources, as the daemon's code server does."""
    event = {"mlflow_run_on_failure": "RUN_FAILURE", "mlflow_run_on_cancel": "RUN_CANCELED"}[name]
    (record,) = instance.get_records_for_run(run_id, of_type=DagsterEventType[event]).records
    repository = definitions.get_repository_def()
    with build_run_status_sensor_context(
        sensor_name=name,
        dagster_event=record.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run_id),
        resources=repository.get_top_level_resources(),
    ) as context:
        sensor = repository.get_sensor_def(name)
        return sensor(context.for_run_failure() if event == "RUN_FAILURE" else context)


@pytest.mark.slow
def test_the_failure_sensor_corrects_a_finished_mlflow_run(mlflow_store: str) -> None:
    """A Dagster run that failed while its MLflow run says FINISHED (as the step teardown of
    earlier versions left it) is corrected by the daemon's failure sensor."""
    instance = DagsterInstance.ephemeral()
    result = failing.execute_in_process(instance=instance, raise_on_error=False)
    client = mlflow.MlflowClient()
    tags = {"dagster_run_id": result.run_id}
    mlflow_run_id = client.create_run(MlflowTracking().experiment_id(), tags=tags).info.run_id
    client.set_terminated(mlflow_run_id, "FINISHED")

    _sensor(defs, "mlflow_run_on_failure", instance, result.run_id)
    assert client.get_run(mlflow_run_id).info.status == "FAILED"


@pytest.mark.slow
def test_the_sensors_act_on_the_store_the_definitions_configure(
    tmp_path: Path, mlflow_store: str
) -> None:
    """Definitions whose ``mlflow`` resource names a store other than the default one: the
    failure and cancel sensors end the MLflow runs in that store (runs not named on their
    Dagster run, so found by their ``dagster_run_id`` tag)."""
    configured = f"sqlite:///{tmp_path / 'configured.db'}"
    tracking = MlflowTracking(mlflow_tracking_uri=configured)
    assert tracking.tracking_uri != MlflowTracking().tracking_uri == mlflow_store
    definitions = Definitions(
        jobs=[failing],
        sensors=[mlflow_run_on_failure, mlflow_run_on_cancel],
        resources={"mlflow": tracking},
    )
    instance = DagsterInstance.ephemeral()
    failed = failing.execute_in_process(instance=instance, raise_on_error=False).run_id
    cancelled = instance.create_run_for_job(failing).run_id
    instance.report_run_canceled(instance.get_run_by_id(cancelled))
    client = mlflow.MlflowClient(tracking_uri=configured)
    runs = {
        dagster_run_id: client.create_run(
            tracking.experiment_id(), tags={"dagster_run_id": dagster_run_id}
        ).info.run_id
        for dagster_run_id in (failed, cancelled)
    }

    _sensor(definitions, "mlflow_run_on_failure", instance, failed)
    _sensor(definitions, "mlflow_run_on_cancel", instance, cancelled)
    assert client.get_run(runs[failed]).info.status == "FAILED"
    assert client.get_run(runs[cancelled]).info.status == "KILLED"


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs of its own, unmounted after."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    """Write a file into ``folder`` until its disk has no byte left."""
    with open(folder / "filler", "wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                pass


@pytest.mark.slow
def test_a_full_disk_is_named_not_called_an_unreachable_server(
    tmp_path: Path, full_disk: Path
) -> None:
    """The MLflow store on a full disk: the run fails saying so, and where."""
    sandbox = Sandbox(tmp_path / "box", tracking_uri=f"sqlite:///{full_disk / 'mlflow.db'}")
    mlflow.MlflowClient(tracking_uri=sandbox.tracking_uri).search_experiments()  # schema
    _fill(full_disk)
    log = tmp_path / "run.log"
    assert finish(sandbox.materialize({"model": FAST_MODEL}, log=log)) != 0
    text = log.read_text()
    assert f"the disk is full: MLflow could not write to {full_disk / 'mlflow.db'}" in text
    assert "not reachable" not in text
