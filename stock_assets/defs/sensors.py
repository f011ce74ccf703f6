"""A backstop for the MLflow run lifecycle: runs that never reached their teardown.

The tracking resource ends the MLflow run itself on success and failure. A Dagster run that is
cancelled from the UI, or whose process is killed, never tears its resources down; these sensors
(run by the daemon in ``dagster dev``) mark its MLflow run KILLED or FAILED instead of leaving it
RUNNING forever.
"""

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunStatusSensorContext,
    run_failure_sensor,
    run_status_sensor,
)

from stock_assets.defs.resources import MlflowTracking


@run_failure_sensor(
    default_status=DefaultSensorStatus.RUNNING,
    description="Mark the MLflow run of a failed Dagster run FAILED if it is still RUNNING.",
)
def mlflow_run_on_failure(context: RunFailureSensorContext) -> None:
    closed = MlflowTracking().close_open_runs(context.dagster_run.run_id, "FAILED")
    if closed:
        context.log.info(f"marked MLflow run(s) {', '.join(closed)} FAILED")


@run_status_sensor(
    run_status=DagsterRunStatus.CANCELED,
    default_status=DefaultSensorStatus.RUNNING,
    description="Mark the MLflow run of a cancelled Dagster run KILLED.",
)
def mlflow_run_on_cancel(context: RunStatusSensorContext) -> None:
    closed = MlflowTracking().close_open_runs(context.dagster_run.run_id, "KILLED")
    if closed:
        context.log.info(f"marked MLflow run(s) {', '.join(closed)} KILLED")
