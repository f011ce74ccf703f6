"""The MLflow model registry: register a version and point the ``production`` alias at it."""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from stock_assets.tracking import PRODUCTION_ALIAS, REGISTERED_MODEL_NAME


def production_version(client: MlflowClient, name: str = REGISTERED_MODEL_NAME) -> str | None:
    """The version the ``production`` alias points at, or None."""
    try:
        return str(client.get_model_version_by_alias(name, PRODUCTION_ALIAS).version)
    except MlflowException:
        return None


def promote(
    model_uri: str, tags: dict[str, Any], name: str = REGISTERED_MODEL_NAME
) -> dict[str, Any]:
    """Register ``model_uri`` as a new version and move ``production`` to it."""
    client = MlflowClient()
    previous = production_version(client, name)
    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    client.set_registered_model_alias(name, PRODUCTION_ALIAS, version.version)
    return {
        "name": name,
        "version": str(version.version),
        "alias": PRODUCTION_ALIAS,
        "previous_production_version": previous,
        "model_uri": f"models:/{name}@{PRODUCTION_ALIAS}",
        "source": model_uri,
    }
