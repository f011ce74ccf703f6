"""The MLflow run of a KFP run: found by its tag, its tasks' records, its end.

Every task of one KFP run logs to one MLflow run tagged ``kfp_run_id=<id>`` (or to the run the
platform names in ``MLFLOW_RUN_ID``). Each task records its start and outcome as a tag
``kfp_task.<task>``, so the exit task can tell what happened whatever state the backend hands
it (``exporters/kfp/outcome.py``). Plain functions taking an ``MlflowClient``.
"""

from __future__ import annotations

import os

from mlflow import MlflowClient

KFP_RUN_TAG = "kfp_run_id"
KFP_TASK_TAG = "kfp_task."


def find_run(client: MlflowClient, experiment_name: str, kfp_run_id: str) -> str | None:
    """The MLflow run of KFP run ``kfp_run_id`` (``MLFLOW_RUN_ID`` if injected), or None."""
    injected = os.environ.get("MLFLOW_RUN_ID")
    if injected:
        return injected
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    found = client.search_runs(
        [experiment.experiment_id],
        f"tags.{KFP_RUN_TAG} = '{kfp_run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return found[0].info.run_id if found else None


def record_task(client: MlflowClient, run_id: str, task: str, record: str) -> None:
    """Store ``record`` (JSON text) for ``task`` on the run, replacing any earlier one."""
    client.set_tag(run_id, f"{KFP_TASK_TAG}{task}", record)


def task_records(client: MlflowClient, run_id: str | None) -> dict[str, str]:
    """Every task's record on the run, by task."""
    tags = client.get_run(run_id).data.tags if run_id else {}
    return {k[len(KFP_TASK_TAG) :]: v for k, v in tags.items() if k.startswith(KFP_TASK_TAG)}
