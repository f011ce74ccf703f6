"""Which MLflow run records a Dagster run, and how it ends when the Dagster run ends.

The tracking resource tags the Dagster run with its MLflow run and store (``mlflow/run_id``,
``mlflow/tracking_uri``, credentials never included), so whoever sees the Dagster run end can
end the MLflow run alike, without the resource's config: the run's orchestrator (the executor
of :mod:`stock_assets.defs.executor`, in-process teardown under ``materialize()``), and the
daemon's sensors for runs that were killed or cancelled.
"""

from __future__ import annotations

from dagster import DagsterEventType, DagsterInstance
from mlflow import MlflowClient

from stock_assets.mlflow_ops.errors import bounded_http_retries
from stock_assets.mlflow_ops.run_status import end_run

MLFLOW_RUN_TAG = "mlflow/run_id"
MLFLOW_URI_TAG = "mlflow/tracking_uri"


def tag_dagster_run(
    instance: DagsterInstance, dagster_run_id: str, mlflow_run_id: str, tracking_uri: str
) -> None:
    """Name the MLflow run (and its store) on the Dagster run, once."""
    run = instance.get_run_by_id(dagster_run_id)
    if run is not None and run.tags.get(MLFLOW_RUN_TAG) != mlflow_run_id:
        instance.add_run_tags(
            dagster_run_id, {MLFLOW_RUN_TAG: mlflow_run_id, MLFLOW_URI_TAG: tracking_uri}
        )


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
        return mlflow_run_id if end_run(client, mlflow_run_id, status) else None
