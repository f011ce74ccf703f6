"""A backstop for the MLflow run lifecycle: runs that never reached their teardown.

The tracking resource ends the MLflow run itself on success and failure. A Dagster run that is
cancelled from the UI, or whose process is killed, never tears its resources down; these sensors
(run by the daemon in ``dagster dev``) mark its MLflow run KILLED or FAILED instead of leaving it
RUNNING forever. ``dead_runs`` finds the killed ones: Dagster's default run launcher cannot check
a run worker's health, so it checks each unfinished run's process on this host
(:mod:`stock_assets.defs.liveness`) and marks a dead run FAILED, which fires the failure sensor.
Each sensor takes the configured ``mlflow`` resource, so a run not yet named on its Dagster run is
looked up in the store the definitions configure.
"""

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunsFilter,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from stock_assets.defs import liveness, run_record
from stock_assets.defs.resources import MlflowTracking
from stock_assets.mlflow_ops.errors import bounded_http_retries

#: How often the daemon looks for dead runs.
DEAD_RUN_INTERVAL_SECONDS = 30


@run_failure_sensor(
    default_status=DefaultSensorStatus.RUNNING,
    description="Mark the MLflow run of a failed Dagster run FAILED (if RUNNING or FINISHED).",
)
def mlflow_run_on_failure(context: RunFailureSensorContext, mlflow: MlflowTracking) -> None:
    closed = end_mlflow_runs(context.instance, mlflow, context.dagster_run.run_id, "FAILED")
    if closed:
        context.log.info(f"marked MLflow run(s) {', '.join(closed)} FAILED")


@run_status_sensor(
    run_status=DagsterRunStatus.CANCELED,
    default_status=DefaultSensorStatus.RUNNING,
    description="Mark the MLflow run of a cancelled Dagster run KILLED.",
)
def mlflow_run_on_cancel(context: RunStatusSensorContext, mlflow: MlflowTracking) -> None:
    closed = end_mlflow_runs(context.instance, mlflow, context.dagster_run.run_id, "KILLED")
    if closed:
        context.log.info(f"marked MLflow run(s) {', '.join(closed)} KILLED")


def end_mlflow_runs(
    instance: DagsterInstance, mlflow: MlflowTracking, dagster_run_id: str, status: str
) -> list[str]:
    """End the Dagster run's MLflow run with ``status`` (RUNNING, or FINISHED when worse).

    The run and its store are the ones the resource named on the Dagster run; a run not named
    there (it died before, or predates the naming) is looked up by its ``dagster_run_id`` tag in
    the store of ``mlflow``, the configured resource.
    """
    run = instance.get_run_by_id(dagster_run_id)
    if run is not None and run_record.MLFLOW_RUN_TAG in run.tags:
        ended = run_record.end_mlflow_run(instance, dagster_run_id, status)
        return [ended] if ended else []
    with bounded_http_retries():
        return run_record.close_open_runs(
            mlflow.client, mlflow.experiment_name, dagster_run_id, status
        )


def fail_dead_runs(instance: DagsterInstance, mlflow: MlflowTracking) -> list[str]:
    """Mark every unfinished run whose process on this host is gone FAILED; their ids."""
    dead = []
    runs = instance.get_runs(filters=RunsFilter(statuses=list(liveness.UNFINISHED)))
    for run in runs:
        if liveness.is_dead(instance, run):
            liveness.mark_failed(instance, run)
            end_mlflow_runs(instance, mlflow, run.run_id, "FAILED")
            dead.append(run.run_id)
    return dead


@sensor(
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=DEAD_RUN_INTERVAL_SECONDS,
    description=(
        "Mark a run FAILED when its process on this host is gone (killed or crashed), and end "
        "its MLflow run FAILED."
    ),
)
def dead_runs(context: SensorEvaluationContext, mlflow: MlflowTracking) -> SkipReason:
    dead = fail_dead_runs(context.instance, mlflow)
    if dead:
        context.log.info(f"marked dead run(s) {', '.join(dead)} FAILED")
    return SkipReason(f"{len(dead)} dead run(s) marked FAILED" if dead else "no dead run")
