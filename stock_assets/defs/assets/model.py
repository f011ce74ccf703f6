"""The ``model`` asset: compare candidates, train the best, test it on the held-out window."""

import pandas as pd
from dagster import AssetExecutionContext, Failure, Output, asset

from stock_assets.core.features import FEATURE_COLUMNS
from stock_assets.core.selection import choose_candidate
from stock_assets.core.training import TrainingError, time_split, train_and_evaluate
from stock_assets.core.values import TrainedModel
from stock_assets.defs.config import ModelConfig
from stock_assets.defs.constants import GROUP_NAME
from stock_assets.defs.lineage import stored_input
from stock_assets.defs.metadata import comparison_metadata, model_metadata
from stock_assets.defs.resources import MlflowTracking
from stock_assets.mlflow_ops.lineage import log_training_data


@asset(
    group_name=GROUP_NAME,
    kinds={"scikit-learn", "mlflow"},
    metadata={"kfp/metrics": "metrics"},
    op_tags={
        "dagster-k8s/config": {
            "container_config": {
                "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi"},
                    "limits": {"memory": "4Gi"},
                }
            }
        }
    },
    description=(
        "The classifier. Candidates are compared by walk-forward validation on the training "
        "dates; the best is refit and tested on the latest `test_size` of the dates, logged to "
        "MLflow and registered as a new version."
    ),
)
def model(
    context: AssetExecutionContext,
    config: ModelConfig,
    features: pd.DataFrame,
    mlflow: MlflowTracking,
) -> Output[TrainedModel]:
    """Choose, train, evaluate against the majority-class baseline, log and register."""
    try:
        split = time_split(features, config.test_size)  # once: the windows travel in the value
        chosen, comparison = choose_candidate(
            split.train,
            config.model_type,
            config.candidates,
            config.hyperparameter_overrides(),
            config.cv_folds,
            config.selection_metric,
            config.random_state,
        )
        result = train_and_evaluate(
            split, chosen.model_type, chosen.hyperparameters, config.random_state
        )
    except TrainingError as error:
        raise Failure(description=str(error)) from error

    chart = None
    if comparison is not None:
        chart = mlflow.log_comparison(comparison, config.cv_folds, config.selection_metric)
    logged = mlflow.log_training(result, split.train[FEATURE_COLUMNS].head(5))
    with mlflow.reporting_errors():
        lineage = log_training_data(features, split, stored_input(context, "features"))
    trained = mlflow.register_model(result, logged, lineage)
    window = trained.test_window
    context.log.info(
        f"{chosen.label}: test accuracy {trained.metrics['accuracy']:.4f} (always-majority "
        f"baseline on the same test window {window.first} to {window.last}: "
        f"{trained.metrics['baseline_accuracy']:.4f}), version {trained.registered_version}"
    )
    metadata = model_metadata(trained, result, logged.figures, mlflow.run_url())
    return Output(
        trained,
        metadata={**lineage, **metadata, **comparison_metadata(comparison, chart, config)},
    )
