"""The ``model`` asset: compare candidates, train the best, test it on the held-out window."""

from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, Failure, MetadataValue, Output, asset
from mlflow import MlflowClient

from stock_assets.core.features import FEATURE_COLUMNS
from stock_assets.core.selection import Candidate, compare_candidates, parse_candidates
from stock_assets.core.training import TrainingError, time_split, train_and_evaluate
from stock_assets.defs.config import ModelConfig
from stock_assets.defs.constants import GROUP_NAME
from stock_assets.defs.lineage import stored_input  # data lineage (issue 12)
from stock_assets.defs.metadata import png_markdown, run_link
from stock_assets.mlflow_ops.lineage import log_training_data  # data lineage (issue 12)
from stock_assets.mlflow_ops.registry import register_version
from stock_assets.mlflow_ops.run_logging import log_comparison, log_training


@asset(
    group_name=GROUP_NAME,
    kinds={"scikit-learn", "mlflow"},
    required_resource_keys={"mlflow"},
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
    context: AssetExecutionContext, config: ModelConfig, features: pd.DataFrame
) -> Output[dict[str, Any]]:
    """Choose, train, evaluate against the majority-class baseline, log and register."""
    mlflow = context.resources.mlflow
    metadata: dict[str, Any] = {}
    try:
        train_rows, _ = time_split(features, config.test_size)
        if config.model_type == "auto":
            table = compare_candidates(
                train_rows,
                parse_candidates(config.candidates),
                cv_folds=config.cv_folds,
                selection_metric=config.selection_metric,
                random_state=config.random_state,
            )
            chosen = parse_candidates([table["candidate"].iloc[0]])[0]
        else:
            table = None
            chosen = Candidate(config.model_type, config.hyperparameter_overrides())
        result = train_and_evaluate(
            features,
            model_type=chosen.model_type,
            hyperparameters=chosen.hyperparameters,
            test_size=config.test_size,
            random_state=config.random_state,
        )
    except TrainingError as error:
        raise Failure(description=str(error)) from error

    if table is not None:
        logged_comparison = log_comparison(table, config.cv_folds, config.selection_metric)
        metric = config.selection_metric
        shown = table[["rank", "candidate", f"{metric}_mean", f"{metric}_std"]]
        metadata["comparison"] = MetadataValue.md(
            shown.to_markdown(index=False, floatfmt=".4f")
            + "\n\n"
            + png_markdown(logged_comparison["chart"], "candidate scores")
        )
        metadata["selection"] = (
            f"best of {len(table)} by walk-forward {metric} ({config.cv_folds} folds, "
            "training dates only)"
        )
    logged = log_training(result, train_rows[FEATURE_COLUMNS].head(5))
    metrics = {name: round(float(value), 6) for name, value in result.metrics.items()}
    lineage = log_training_data(features, config.test_size, stored_input(context, "features"))
    metadata.update(lineage)  # data lineage (issue 12): digests, rows and windows
    version = register_version(
        MlflowClient(),
        logged["serving_model_uri"],
        mlflow.run_id,
        tags={"accuracy": metrics["accuracy"], "model_type": result.model_type, **lineage},
    )
    mlflow.set_tag("registered_version", version)
    trained = {
        "pipeline": result.pipeline,
        "model_type": result.model_type,
        "hyperparameters": result.hyperparameters,
        "feature_columns": list(result.feature_columns),
        "metrics": metrics,
        "test_size": config.test_size,
        "test_window": [f"{d:%Y-%m-%d}" for d in result.test_dates],
        "model_uri": logged["model_uri"],
        "serving_model_uri": logged["serving_model_uri"],
        "registered_version": version,
        "mlflow_run_id": mlflow.run_id,
    }
    metadata.update(
        {
            **{name: MetadataValue.float(value) for name, value in metrics.items()},
            "model_type": result.model_type,
            "hyperparameters": MetadataValue.json(result.hyperparameters),
            "n_samples_train": result.n_train,
            "n_samples_test": result.n_test,
            "test_window": " to ".join(trained["test_window"]),
            "registered_version": version,
            "mlflow_run": run_link(mlflow.run_id),
            "mlflow_run_id": mlflow.run_id,
            "plots": MetadataValue.md(
                "\n\n".join(png_markdown(path, name) for name, path in logged["figures"].items())
            ),
        }
    )
    if result.feature_importances is not None:
        metadata["top_features"] = MetadataValue.md(
            result.feature_importances.head(10)
            .rename("importance")
            .to_frame()
            .to_markdown(floatfmt=".4f")
        )
    context.log.info(
        f"{chosen.label}: test accuracy {metrics['accuracy']:.4f} "
        f"(always-majority baseline {metrics['baseline_accuracy']:.4f}), version {version}"
    )
    return Output(trained, metadata=metadata)
