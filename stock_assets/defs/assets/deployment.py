"""The deploy gate (threshold, then champion/challenger) and the promotion it guards."""

from collections.abc import Iterator

import pandas as pd
from dagster import AssetExecutionContext, Output, asset

from stock_assets.core.decision import decide
from stock_assets.core.training import labelled_rows_in
from stock_assets.core.values import Decision, Promotion, TrainedModel
from stock_assets.defs.config import DeployDecisionConfig
from stock_assets.defs.constants import GROUP_NAME
from stock_assets.defs.metadata import decision_metadata
from stock_assets.defs.resources import MlflowTracking
from stock_assets.mlflow_ops.registry import REGISTERED_MODEL_NAME


@asset(
    group_name=GROUP_NAME,
    kinds={"mlflow"},
    description=(
        "Deploy yes/no: the model's real test accuracy against accuracy_threshold, then "
        "against the production model scored on the same test window."
    ),
)
def deploy_decision(
    context: AssetExecutionContext,
    config: DeployDecisionConfig,
    model: TrainedModel,
    features: pd.DataFrame,
    mlflow: MlflowTracking,
) -> Output[Decision]:
    """Judge the model on measured figures, never on a placeholder accuracy."""
    test_rows = labelled_rows_in(features, model.test_window)
    champion = mlflow.score_production(test_rows, model.feature_columns, model.registered_version)
    decision = decide(model, config.accuracy_threshold, champion, config.challenge_production)
    if decision.passes_threshold:
        mlflow.mark_staging(model.registered_version)
    mlflow.log_params(
        {
            "accuracy_threshold": config.accuracy_threshold,
            "challenge_production": config.challenge_production,
        }
    )
    if champion.accuracy is not None:
        mlflow.log_metric("champion_accuracy", champion.accuracy)
    verdict = "approved" if decision.deploy else "rejected"
    mlflow.set_tags(
        {
            "deploy_decision": verdict,
            "deploy_reason": decision.reason,
            "decided_version": decision.registered_version,  # the version this run judged
        }
    )
    context.log.info(("Deploy: " if decision.deploy else "Do not deploy: ") + decision.reason)
    return Output(decision, metadata=decision_metadata(decision))


@asset(
    group_name=GROUP_NAME,
    kinds={"mlflow"},
    output_required=False,
    # Read by the KFP exporter too: the task sits under dsl.If(deploy_decision.deploy == True).
    metadata={"kfp/run_if": "deploy_decision.deploy"},
    description=(
        f"The approved model: alias 'production' of '{REGISTERED_MODEL_NAME}' moves to its "
        "version. Not materialised when the decision rejects the model."
    ),
)
def deployed_model(
    context: AssetExecutionContext, deploy_decision: Decision, mlflow: MlflowTracking
) -> Iterator[Output[Promotion]]:
    """Promote in the registry, only when approved; otherwise production stays as it was."""
    if not deploy_decision.deploy:
        context.log.info(f"Skipped: {deploy_decision.reason}; production is unchanged.")
        return
    promoted = mlflow.promote(deploy_decision.registered_version)
    # Read back: a promotion by hand (stock-registry) or by another run may have raced this one,
    # and the run reports where production really is, not where it meant to put it.
    actual = mlflow.production_version()
    mlflow.set_tag("production_version", str(actual))
    if actual != promoted.version:
        context.log.warning(
            f"version {promoted.version} was promoted, but production now points at version "
            f"{actual}: another promotion happened at the same time"
        )
    yield Output(
        promoted,
        metadata={
            "registered_model": promoted.name,
            "version": promoted.version,
            "production_version_after": str(actual),
            "previous_production_version": str(promoted.previous_production_version),
            "model_uri": promoted.model_uri,
        },
    )
