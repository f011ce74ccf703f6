"""The deploy gate and the promotion it guards."""

from collections.abc import Iterator
from typing import Any

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from stock_assets.config import DeployDecisionConfig
from stock_assets.registry import promote
from stock_assets.tracking import REGISTERED_MODEL_NAME


@asset(
    group_name="stock_prediction",
    kinds={"mlflow"},
    required_resource_keys={"mlflow"},
    description="Deploy yes/no: the model's real test accuracy against accuracy_threshold.",
)
def deploy_decision(
    context: AssetExecutionContext, config: DeployDecisionConfig, model: dict[str, Any]
) -> Output[dict[str, Any]]:
    """Judge the model on its measured accuracy (the seed read a placeholder 0.60)."""
    accuracy = float(model["metrics"]["accuracy"])
    baseline = float(model["metrics"]["baseline_accuracy"])
    threshold = config.accuracy_threshold
    deploy = accuracy >= threshold
    verb = "meets" if deploy else "is below"
    reason = f"test accuracy {accuracy:.4f} {verb} the threshold {threshold:.4f}"
    decision = {
        "deploy": deploy,
        "accuracy": accuracy,
        "baseline_accuracy": baseline,
        "accuracy_threshold": threshold,
        "reason": reason,
        "model_type": model["model_type"],
        "model_uri": model["model_uri"],
    }
    mlflow = context.resources.mlflow
    mlflow.log_param("accuracy_threshold", threshold)
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
            "baseline_accuracy": MetadataValue.float(baseline),
        },
    )


@asset(
    group_name="stock_prediction",
    kinds={"mlflow"},
    required_resource_keys={"mlflow"},
    output_required=False,
    # Read by the KFP exporter too: the task sits under dsl.If(deploy_decision.deploy == True).
    metadata={"kfp/run_if": "deploy_decision.deploy"},
    description=(
        f"The approved model, registered as '{REGISTERED_MODEL_NAME}' with the alias "
        "'production'. Not materialised when the decision rejects the model."
    ),
)
def deployed_model(
    context: AssetExecutionContext, model: dict[str, Any], deploy_decision: dict[str, Any]
) -> Iterator[Output[dict[str, Any]]]:
    """Promote in the registry, only when approved; otherwise production stays as it was."""
    if not deploy_decision["deploy"]:
        context.log.info(f"Skipped: {deploy_decision['reason']}; production is unchanged.")
        return
    promoted = promote(
        model["model_uri"],
        tags={
            "accuracy": model["metrics"]["accuracy"],
            "model_type": model["model_type"],
            "mlflow_run_id": model["mlflow_run_id"],
        },
    )
    context.resources.mlflow.set_tag("registered_version", promoted["version"])
    yield Output(
        promoted,
        metadata={
            "registered_model": promoted["name"],
            "version": promoted["version"],
            "previous_production_version": str(promoted["previous_production_version"]),
            "model_uri": promoted["model_uri"],
        },
    )
