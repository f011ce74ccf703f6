"""The deploy gate (threshold, then champion/challenger) and the promotion it guards."""

from collections.abc import Iterator
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset
from mlflow import MlflowClient

from stock_assets.core.features import TARGET_COLUMN
from stock_assets.core.training import time_split
from stock_assets.defs.config import DeployDecisionConfig
from stock_assets.defs.constants import GROUP_NAME
from stock_assets.mlflow_ops.registry import (
    REGISTERED_MODEL_NAME,
    mark_staging,
    production_version,
    promote,
)


def score_production(
    client: MlflowClient, features: pd.DataFrame, model: dict[str, Any]
) -> tuple[str | None, float | None, str]:
    """The production version's accuracy on the new model's test window, and a note."""
    version = production_version(client)
    if version is None:
        return None, None, "no production model yet: nothing to beat"
    if version == model["registered_version"]:
        return version, None, f"version {version} is already production"
    import mlflow

    _, test_rows = time_split(features, model["test_size"])
    try:
        champion = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL_NAME}/{version}")
        predictions = champion.predict(test_rows[model["feature_columns"]])["direction"]
    except Exception as error:  # an incompatible old model must not block a good new one
        return version, None, f"production version {version} could not be scored ({error})"
    truth = test_rows[TARGET_COLUMN].astype(int).to_numpy()
    return version, float((predictions.to_numpy() == truth).mean()), ""


@asset(
    group_name=GROUP_NAME,
    kinds={"mlflow"},
    required_resource_keys={"mlflow"},
    description=(
        "Deploy yes/no: the model's real test accuracy against accuracy_threshold, then "
        "against the production model scored on the same test window."
    ),
)
def deploy_decision(
    context: AssetExecutionContext,
    config: DeployDecisionConfig,
    model: dict[str, Any],
    features: pd.DataFrame,
) -> Output[dict[str, Any]]:
    """Judge the model on measured figures (the seed read a placeholder 0.60)."""
    client = MlflowClient()
    accuracy = float(model["metrics"]["accuracy"])
    threshold = config.accuracy_threshold
    passes_threshold = accuracy >= threshold
    reasons = [
        f"test accuracy {accuracy:.4f} {'meets' if passes_threshold else 'is below'} "
        f"the threshold {threshold:.4f}"
    ]
    champion_version, champion_accuracy, note = score_production(client, features, model)
    beats_champion = True
    if config.challenge_production and champion_accuracy is not None:
        beats_champion = accuracy > champion_accuracy
        reasons.append(
            f"{'beats' if beats_champion else 'does not beat'} production version "
            f"{champion_version} ({champion_accuracy:.4f}) on the same test window"
        )
    elif not config.challenge_production:
        reasons.append("champion/challenger is off")
    elif note:
        reasons.append(note)
    deploy = passes_threshold and beats_champion
    if passes_threshold:
        mark_staging(client, model["registered_version"])
    reason = "; ".join(reasons)
    decision = {
        "deploy": deploy,
        "accuracy": accuracy,
        "baseline_accuracy": float(model["metrics"]["baseline_accuracy"]),
        "accuracy_threshold": threshold,
        "champion_version": champion_version,
        "champion_accuracy": champion_accuracy,
        "reason": reason,
        "model_type": model["model_type"],
        "model_uri": model["model_uri"],
        "registered_version": model["registered_version"],
    }
    mlflow = context.resources.mlflow
    mlflow.log_params(
        {"accuracy_threshold": threshold, "challenge_production": config.challenge_production}
    )
    if champion_accuracy is not None:
        mlflow.log_metric("champion_accuracy", champion_accuracy)
    mlflow.set_tags(
        {"deploy_decision": "approved" if deploy else "rejected", "deploy_reason": reason}
    )
    context.log.info(("Deploy: " if deploy else "Do not deploy: ") + reason)
    return Output(
        decision,
        metadata={
            "deploy": deploy,
            "reason": reason,
            "accuracy": MetadataValue.float(accuracy),
            "accuracy_threshold": MetadataValue.float(threshold),
            "baseline_accuracy": MetadataValue.float(decision["baseline_accuracy"]),
            "champion_version": str(champion_version),
            "champion_accuracy": MetadataValue.float(champion_accuracy)
            if champion_accuracy is not None
            else "-",
        },
    )


@asset(
    group_name=GROUP_NAME,
    kinds={"mlflow"},
    required_resource_keys={"mlflow"},
    output_required=False,
    # Read by the KFP exporter too: the task sits under dsl.If(deploy_decision.deploy == True).
    metadata={"kfp/run_if": "deploy_decision.deploy"},
    description=(
        f"The approved model: alias 'production' of '{REGISTERED_MODEL_NAME}' moves to its "
        "version. Not materialised when the decision rejects the model."
    ),
)
def deployed_model(
    context: AssetExecutionContext, deploy_decision: dict[str, Any]
) -> Iterator[Output[dict[str, Any]]]:
    """Promote in the registry, only when approved; otherwise production stays as it was."""
    if not deploy_decision["deploy"]:
        context.log.info(f"Skipped: {deploy_decision['reason']}; production is unchanged.")
        return
    promoted = promote(MlflowClient(), deploy_decision["registered_version"])
    context.resources.mlflow.set_tag("production_version", promoted["version"])
    yield Output(
        promoted,
        metadata={
            "registered_model": promoted["name"],
            "version": promoted["version"],
            "previous_production_version": str(promoted["previous_production_version"]),
            "model_uri": promoted["model_uri"],
        },
    )
