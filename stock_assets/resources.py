"""MLflow tracking through dagster-mlflow, with a run lifecycle that holds on every launch path.

dagster-mlflow's ``mlflow_tracking`` resource shares one MLflow run per Dagster run (found by the
``dagster_run_id`` tag) but only ends it through a job hook, so "Materialize all", the CLI and
``materialize()`` leave it RUNNING. This resource wraps the same ``MlFlow`` class and ends the run
when the resource is torn down: FAILED if any step of the Dagster run has failed so far, FINISHED
otherwise. With the multiprocess executor that happens after every step; the next step resumes the
run, and a failure is never overwritten. When ``mlflow_run_id`` is given (the KFP runtime passes
the pipeline run's id) the run belongs to the caller and is left open.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from typing import Any

import mlflow
from dagster import (
    DagsterEventType,
    Failure,
    Field,
    InitResourceContext,
    Noneable,
    ResourceDefinition,
)
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from stock_assets.paths import default_artifact_location, default_tracking_uri

EXPERIMENT_NAME = "stock-prediction"
EXPERIMENT_TAGS = {"project": "stock-prediction", "team": "ml"}
KFP_RUN_TAG = "kfp_run_id"

# Bounded retries against an HTTP tracking server, so a server that is down fails the run in
# seconds rather than after MLflow's default back-off of several minutes.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}

TRACKING_CONFIG_SCHEMA = {
    **CONFIG_SCHEMA,
    "experiment_name": Field(
        str, default_value=EXPERIMENT_NAME, description="MLflow experiment for every run."
    ),
    "mlflow_tracking_uri": Field(
        Noneable(str),
        default_value=None,
        is_required=False,
        description="Tracking URI; default MLFLOW_TRACKING_URI, else sqlite in the data dir.",
    ),
    "kfp_run_id": Field(
        Noneable(str),
        default_value=None,
        is_required=False,
        description=(
            "Set by the KFP runtime: share the MLflow run tagged kfp_run_id=<id> across the "
            "pipeline's tasks and leave it open for the exit handler to end."
        ),
    ),
    "environment": Field(
        str, default_value="development", description="Value of the run's 'environment' tag."
    ),
}


def ensure_experiment(tracking_uri: str, name: str = EXPERIMENT_NAME) -> str:
    """Create the experiment (tagged as in the seed) if missing; return its id."""
    mlflow.set_tracking_uri(tracking_uri)
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        local_store = not tracking_uri.startswith(("http://", "https://", "databricks"))
        return mlflow.create_experiment(
            name,
            artifact_location=default_artifact_location() if local_store else None,
            tags=EXPERIMENT_TAGS,
        )
    except MlflowException as error:
        raise Failure(
            f"MLflow tracking server at {tracking_uri} is not reachable or refused the request "
            f"({error.__class__.__name__}: {str(error).splitlines()[0]}). Start it (make mlflow) "
            "or unset MLFLOW_TRACKING_URI to use the local SQLite store."
        ) from error


class PipelineMlFlow(MlFlow):
    """dagster-mlflow's MlFlow, with readable run names and an explicit end of run."""

    def __init__(self, context: InitResourceContext) -> None:
        self._kfp_run_id = context.resource_config.get("kfp_run_id")
        self._owns_run = (
            context.resource_config.get("mlflow_run_id") is None and self._kfp_run_id is None
        )
        self._instance = context.instance
        self._environment = context.resource_config["environment"]
        super().__init__(context)

    def _setup(self) -> None:
        job = self.run_name
        self.run_name = f"dagster-{self.dagster_run_id[:8]}"
        if job and not job.startswith("__"):
            self.run_name = f"{job}-{self.dagster_run_id[:8]}"
        if self._kfp_run_id:
            self.run_name = f"kfp-{self._kfp_run_id}"
            if self.mlflow_run_id is None:
                self.mlflow_run_id = pipeline_run_id(
                    self._kfp_run_id, self.experiment.experiment_id
                )
        super()._setup()
        # dagster-mlflow leaves mlflow_run_id unset when it has just created the run.
        self.mlflow_run_id = mlflow.active_run().info.run_id
        tags = {"environment": self._environment, "author": _author()}
        if self._kfp_run_id:  # also on a run the platform injected through MLFLOW_RUN_ID
            tags[KFP_RUN_TAG] = self._kfp_run_id
        mlflow.set_tags(tags)

    def _set_all_tags(self) -> None:
        if self._owns_run:
            super()._set_all_tags()
        elif self.extra_tags:
            mlflow.set_tags(self.extra_tags)

    @property
    def run_id(self) -> str:
        """The MLflow run this Dagster run logs to."""
        return self.mlflow_run_id

    def finish(self) -> None:
        """End the shared run: FAILED once any step of the Dagster run failed, else FINISHED."""
        if mlflow.active_run() is None:
            return
        if not self._owns_run:
            # The pipeline's run stays open for its exit handler; only detach this process.
            # (end_run also drops MLFLOW_RUN_ID from the environment: keep the platform's.)
            injected = os.environ.get("MLFLOW_RUN_ID")
            mlflow.end_run(status=RunStatus.to_string(RunStatus.RUNNING))
            if injected:
                os.environ["MLFLOW_RUN_ID"] = injected
            return
        failed = self._dagster_run_has_failed() or self._status() == "FAILED"
        mlflow.end_run(
            status=RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED)
        )

    def _dagster_run_has_failed(self) -> bool:
        if self._instance is None:
            return False
        records = self._instance.get_records_for_run(
            self.dagster_run_id, of_type=DagsterEventType.STEP_FAILURE, limit=1
        ).records
        return bool(records)

    def _status(self) -> str:
        return self.tracking_client.get_run(self.mlflow_run_id).info.status


def pipeline_run_id(kfp_run_id: str, experiment_id: str) -> str:
    """The MLflow run shared by every task of one KFP run, created by the first task to ask.

    ``MLFLOW_RUN_ID``, when the platform injects it, wins. Two tasks starting at once may both
    create a run; the earliest is kept and the other deleted, so one KFP run is one MLflow run.
    """
    injected = os.environ.get("MLFLOW_RUN_ID")
    if injected:
        return injected
    client = mlflow.MlflowClient()
    query = f"tags.{KFP_RUN_TAG} = '{kfp_run_id}'"
    found = client.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"])
    if found:
        return found[0].info.run_id
    created = client.create_run(
        experiment_id, run_name=f"kfp-{kfp_run_id}", tags={KFP_RUN_TAG: kfp_run_id}
    ).info.run_id
    found = client.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"])
    winner = found[0].info.run_id if found else created
    if winner != created:
        client.delete_run(created)
    return winner


def end_pipeline_run(
    kfp_run_id: str, succeeded: bool, config: dict[str, Any] | None = None, status: str = ""
) -> str | None:
    """End the MLflow run of a KFP run: ``status``, else FINISHED if it succeeded, else FAILED."""
    config = config or {}
    tracking_uri = config.get("mlflow_tracking_uri") or default_tracking_uri()
    experiment_id = ensure_experiment(
        tracking_uri, config.get("experiment_name") or EXPERIMENT_NAME
    )
    run_id = os.environ.get("MLFLOW_RUN_ID") or pipeline_run_id(kfp_run_id, experiment_id)
    status = status or RunStatus.to_string(RunStatus.FINISHED if succeeded else RunStatus.FAILED)
    mlflow.MlflowClient().set_terminated(run_id, status=status)
    return run_id


def close_open_runs(dagster_run_id: str, status: str = "FAILED") -> list[str]:
    """End any MLflow run of this Dagster run still RUNNING (its process died or was cancelled)."""
    client = mlflow.MlflowClient(tracking_uri=default_tracking_uri())
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.dagster_run_id = '{dagster_run_id}' and attributes.status = 'RUNNING'",
    )
    for run in runs:
        client.set_terminated(run.info.run_id, status=status)
    return [run.info.run_id for run in runs]


def _author() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _mlflow_tracking(context: InitResourceContext) -> Iterator[PipelineMlFlow]:
    """dagster-mlflow's tracking resource with a default local store and a reliable run end."""
    config: dict[str, Any] = dict(context.resource_config)
    config["mlflow_tracking_uri"] = config.get("mlflow_tracking_uri") or default_tracking_uri()
    ensure_experiment(config["mlflow_tracking_uri"], config["experiment_name"])
    tracker = PipelineMlFlow(context.replace_config(config))
    try:
        yield tracker
    finally:
        tracker.finish()


class _TrackingResourceDefinition(ResourceDefinition):
    """The resource definition, with the KFP exporter's end-of-run hook (its tracking protocol)."""

    def end_pipeline_run(self, kfp_run_id: str, status: str) -> str | None:
        return end_pipeline_run(kfp_run_id, succeeded=status == "FINISHED", status=status)


mlflow_tracking = _TrackingResourceDefinition(
    resource_fn=_mlflow_tracking,
    config_schema=TRACKING_CONFIG_SCHEMA,
    description="One MLflow run per Dagster run (dagster-mlflow), ended FINISHED or FAILED.",
)
