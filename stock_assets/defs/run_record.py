"""Which MLflow run records a Dagster run, and how it ends when the Dagster run ends.

The tracking resource tags the Dagster run with its MLflow run and store (``mlflow/run_id``,
``mlflow/tracking_uri``, credentials never included), so whoever sees the Dagster run end can
end the MLflow run alike, without the resource's config: the run's orchestrator (the executor
of :mod:`stock_assets.defs.executor`, in-process teardown under ``materialize()``), and the
daemon's sensors for runs that were killed or cancelled. The MLflow run carries the Dagster run
id and the orchestrator's host and pid, so the start of a later run can close the runs whose
Dagster run died or ended otherwise (:func:`sweep_orphans`).
"""

from __future__ import annotations

from dagster import DagsterEventType, DagsterInstance
from mlflow import MlflowClient
from mlflow.entities import Run

from stock_assets.defs import liveness
from stock_assets.mlflow_ops import run_status
from stock_assets.mlflow_ops.errors import bounded_http_retries
from stock_assets.mlflow_ops.pipeline_runs import KFP_RUN_TAG

MLFLOW_RUN_TAG = "mlflow/run_id"
MLFLOW_URI_TAG = "mlflow/tracking_uri"
#: The MLflow run's tag naming its Dagster run.
DAGSTER_RUN_TAG = "dagster_run_id"


def tag_dagster_run(
    instance: DagsterInstance, dagster_run_id: str, mlflow_run_id: str, tracking_uri: str
) -> None:
    """Name the MLflow run (and its store) on the Dagster run, once."""
    run = instance.get_run_by_id(dagster_run_id)
    if run is not None and run.tags.get(MLFLOW_RUN_TAG) != mlflow_run_id:
        instance.add_run_tags(
            dagster_run_id, {MLFLOW_RUN_TAG: mlflow_run_id, MLFLOW_URI_TAG: tracking_uri}
        )


def orchestrator_tags(instance: DagsterInstance, dagster_run_id: str) -> dict[str, str]:
    """The MLflow tags that let a sweep tell whether this Dagster run's process is alive."""
    pid = liveness.orchestrator_pid(instance, dagster_run_id)
    tags = {liveness.HOST_TAG: liveness.host_id()}
    run = instance.get_run_by_id(dagster_run_id)
    if run is not None and liveness.HOST_TAG not in run.tags:
        instance.add_run_tags(dagster_run_id, {liveness.HOST_TAG: liveness.host_id()})
    if pid is not None:
        tags[liveness.PID_TAG] = str(pid)
    return tags


def step_failed(instance: DagsterInstance, dagster_run_id: str) -> bool:
    """Whether any step of the Dagster run has failed."""
    return bool(
        instance.get_records_for_run(
            dagster_run_id, of_type=DagsterEventType.STEP_FAILURE, limit=1
        ).records
    )


def end_mlflow_run(instance: DagsterInstance, dagster_run_id: str, status: str) -> str | None:
    """End the MLflow run named on the Dagster run with ``status``; its id if it changed."""
    run = instance.get_run_by_id(dagster_run_id)
    if run is None or MLFLOW_RUN_TAG not in run.tags or MLFLOW_URI_TAG not in run.tags:
        return None
    mlflow_run_id = run.tags[MLFLOW_RUN_TAG]
    with bounded_http_retries():
        client = MlflowClient(tracking_uri=run.tags[MLFLOW_URI_TAG])
        return mlflow_run_id if run_status.end_run(client, mlflow_run_id, status) else None


def close_open_runs(
    client: MlflowClient, experiment_name: str, dagster_run_id: str, status: str = "FAILED"
) -> list[str]:
    """End the MLflow runs tagged with the Dagster run that are still RUNNING (its process died
    or it was cancelled), or FINISHED when ``status`` says it failed or was killed."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    return run_status.close_runs(
        client, experiment.experiment_id, DAGSTER_RUN_TAG, dagster_run_id, status
    )


def sweep_orphans(
    client: MlflowClient,
    instance: DagsterInstance,
    experiment_id: str,
    current_run_id: str | None = None,
) -> list[tuple[str, str]]:
    """End the MLflow runs of the experiment whose Dagster run ended otherwise or died.

    A RUNNING run whose Dagster run is not alive (finished, or its orchestrator process on
    this host is gone) ends with the Dagster run's outcome; a FINISHED run whose Dagster run
    (in ``instance``) failed or was cancelled is corrected. A run of a KFP run is left to its
    exit handler. Returns (MLflow run id, status set) pairs.
    """

    def skip(run: Run) -> bool:
        tags = run.data.tags
        return (
            run.info.run_id == current_run_id or DAGSTER_RUN_TAG not in tags or KFP_RUN_TAG in tags
        )

    def end_status_of(run: Run) -> str | None:
        dagster_run_id = run.data.tags[DAGSTER_RUN_TAG]
        if run.info.status == "RUNNING":
            return liveness.mlflow_end_status(instance, dagster_run_id, run.data.tags)
        dagster_run = instance.get_run_by_id(dagster_run_id)
        return liveness.END_STATUS.get(dagster_run.status) if dagster_run else None

    return run_status.sweep(client, experiment_id, end_status_of, skip)
