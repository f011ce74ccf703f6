"""The ``model`` asset: a scikit-learn pipeline on a time-ordered split, logged to MLflow."""

from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, Failure, MetadataValue, Output, asset

from stock_assets.config import ModelConfig
from stock_assets.core.features import FEATURE_COLUMNS
from stock_assets.core.training import TrainingError, time_split, train_and_evaluate
from stock_assets.tracking import log_training, png_markdown, run_link


@asset(
    group_name="stock_prediction",
    kinds={"scikit-learn", "mlflow"},
    required_resource_keys={"mlflow"},
    metadata={"kfp/metrics": "metrics"},
    description=(
        "StandardScaler + classifier trained on the earliest dates and tested on the latest "
        "`test_size` of them; metrics, plots and the model are logged to MLflow."
    ),
)
def model(
    context: AssetExecutionContext, config: ModelConfig, features: pd.DataFrame
) -> Output[dict[str, Any]]:
    """Train, evaluate against the majority-class baseline, and log everything to MLflow."""
    overrides = config.hyperparameter_overrides()
    try:
        result = train_and_evaluate(
            features,
            model_type=config.model_type,
            hyperparameters=overrides,
            test_size=config.test_size,
            random_state=config.random_state,
        )
    except TrainingError as error:
        raise Failure(description=str(error)) from error

    mlflow = context.resources.mlflow
    train_rows, _ = time_split(features, config.test_size)
    logged = log_training(result, train_rows[FEATURE_COLUMNS].head(50))
    metrics = {name: round(float(value), 6) for name, value in result.metrics.items()}
    trained = {
        "pipeline": result.pipeline,
        "model_type": result.model_type,
        "hyperparameters": result.hyperparameters,
        "feature_columns": list(result.feature_columns),
        "metrics": metrics,
        "test_window": [f"{d:%Y-%m-%d}" for d in result.test_dates],
        "model_uri": logged["model_uri"],
        "mlflow_run_id": mlflow.run_id,
    }
    importances = result.feature_importances
    metadata: dict[str, Any] = {
        **{name: MetadataValue.float(value) for name, value in metrics.items()},
        "model_type": result.model_type,
        "hyperparameters": MetadataValue.json(result.hyperparameters),
        "n_samples_train": result.n_train,
        "n_samples_test": result.n_test,
        "test_window": " to ".join(trained["test_window"]),
        "mlflow_run": run_link(mlflow.run_id),
        "model_uri": logged["model_uri"],
        "confusion_matrix": MetadataValue.md(
            png_markdown(logged["figures"]["confusion_matrix"], "confusion matrix")
        ),
    }
    if importances is not None:
        metadata["top_features"] = MetadataValue.md(
            importances.head(10).rename("importance").to_frame().to_markdown(floatfmt=".4f")
        )
    context.log.info(
        f"{result.model_type}: accuracy {metrics['accuracy']:.4f} "
        f"(always-majority baseline {metrics['baseline_accuracy']:.4f})"
    )
    return Output(trained, metadata=metadata)
