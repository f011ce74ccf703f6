"""The project's MLflow experiment, and finding a pipeline run's MLflow run in it.

Plain functions taking an ``MlflowClient``: the experiment is created on first use (tagged, with
its artifact location), a pipeline run's MLflow run is found by its tag or created, and the run's
address in the MLflow UI is spelled out.
"""

from __future__ import annotations

import getpass
import os

from mlflow import MlflowClient

from stock_assets.paths import LOCAL_MLFLOW_UI, default_artifact_location

EXPERIMENT_NAME = "stock-prediction"
EXPERIMENT_TAGS = {"project": "stock-prediction", "team": "ml"}
# MLflow 3's UI reads this experiment tag to choose the experiment's default page; the value
# for classic model training opens the runs list (values in the UI bundle and in
# mlflow/assistant/skills/mlflow-onboarding/SKILL.md: genai_development, custom_model_development).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def experiment_id(client: MlflowClient, name: str) -> str:
    """The experiment's id, creating it (tagged, with its artifact location) if missing.

    An existing experiment without the experiment-kind tag gets it.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        local = not client.tracking_uri.startswith(("http://", "https://", "databricks"))
        return client.create_experiment(
            name,
            artifact_location=default_artifact_location() if local else None,
            tags={**EXPERIMENT_TAGS, EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def tagged_run(
    client: MlflowClient,
    experiment: str,
    key: str,
    value: str,
    name: str,
    tags: dict[str, str],
) -> tuple[str, str, bool]:
    """The run tagged ``key=value`` in ``experiment``: its id, its name, and whether it is new.

    A new run is named ``name`` and tagged ``tags``. MLflow cannot create a run only if none
    exists: two steps that start at once may both create one. The earliest is kept and any other
    deleted, so a pipeline run is one run.
    """
    query = f"tags.{key} = '{value}'"
    order = ["attributes.start_time ASC"]
    found = client.search_runs([experiment], query, order_by=order, max_results=1)
    if found:
        return found[0].info.run_id, found[0].info.run_name, False
    created = client.create_run(experiment, run_name=name, tags={key: value, **tags}).info.run_id
    found = client.search_runs([experiment], query, order_by=order, max_results=1)
    if found and found[0].info.run_id != created:
        client.delete_run(created)
        return found[0].info.run_id, found[0].info.run_name, False
    return created, name, True


def run_url(client: MlflowClient, run_id: str) -> str:
    """The run in the MLflow UI: the tracking server's, or ``make mlflow-ui``'s."""
    experiment = client.get_run(run_id).info.experiment_id
    uri = client.tracking_uri
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_MLFLOW_UI
    return f"{base}/#/experiments/{experiment}/runs/{run_id}"


def author() -> str:
    """Who started the run: the ``author`` tag."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
