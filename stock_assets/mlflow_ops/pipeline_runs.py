"""The MLflow run of a KFP run: found by its tag, its tasks' records, its end.

Every task of one KFP run logs to one MLflow run tagged ``kfp_run_id=<id>`` (or to the run the
platform names in ``MLFLOW_RUN_ID``). Each task records its start and outcome as a tag
``kfp_task.<task>``, so the exit task can tell what happened whatever state the backend hands
it (``exporters/kfp/outcome.py``). Plain functions taking an ``MlflowClient``.
"""

from __future__ import annotations

import os

from mlflow import MlflowClient

from stock_assets.mlflow_ops import experiment
from stock_assets.mlflow_ops.run_status import END_STATUSES

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


def end(client: MlflowClient, experiment_name: str, kfp_run_id: str, status: str) -> str | None:
    """End the MLflow run of KFP run ``kfp_run_id`` with ``status``; its id, None if none."""
    if status not in END_STATUSES:
        raise ValueError(f"status={status!r}; expected one of {', '.join(END_STATUSES)}")
    run_id = find_run(client, experiment_name, kfp_run_id)
    if run_id:
        client.set_terminated(run_id, status=status)
    return run_id


def record(
    client: MlflowClient,
    experiment_name: str,
    kfp_run_id: str,
    task: str,
    record: str,
    tags: dict[str, str],
) -> None:
    """Record ``task``'s state on KFP run ``kfp_run_id``'s MLflow run, creating the run (named
    ``kfp-<id>``, tagged ``tags``) when this is the KFP run's first record."""
    run_id = find_run(client, experiment_name, kfp_run_id)
    if run_id is None:
        experiment_id = experiment.experiment_id(client, experiment_name)
        name = f"kfp-{kfp_run_id}"
        run_id = experiment.tagged_run(client, experiment_id, KFP_RUN_TAG, kfp_run_id, name, tags)[
            0
        ]
    record_task(client, run_id, task, record)


def record_task(client: MlflowClient, run_id: str, task: str, record: str) -> None:
    """Store ``record`` (JSON text) for ``task`` on the run, replacing any earlier one."""
    client.set_tag(run_id, f"{KFP_TASK_TAG}{task}", record)


def task_records(client: MlflowClient, run_id: str | None) -> dict[str, str]:
    """Every task's record on the run, by task."""
    tags = client.get_run(run_id).data.tags if run_id else {}
    return {k[len(KFP_TASK_TAG) :]: v for k, v in tags.items() if k.startswith(KFP_TASK_TAG)}
