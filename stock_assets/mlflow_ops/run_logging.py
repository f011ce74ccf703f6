"""What the pipeline records in its MLflow run: params, metrics, plots and the model itself.

Plain functions taking an ``MlflowClient`` and the run's id. The models are the exception: MLflow
logs a model (and links it to its run) only through its fluent API, to the active run, which is
the run the ``MlflowTracking`` resource attached the step to; :func:`active` checks that it is.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from stock_assets.mlflow_ops.serving.schema import SERVING_METADATA

if TYPE_CHECKING:
    from stock_assets.core.selection import Comparison
    from stock_assets.core.training import TrainingResult

#: The most params or tags MLflow takes in one batch.
BATCH = 100


@dataclass(frozen=True)
class LoggedModel:
    """Where the trained model and its plots went."""

    model_uri: str  # sklearn flavour, skops-serialised
    serving_model_uri: str  # the pyfunc served and registered
    figures: dict[str, Path]  # local copies of the PNGs, for Dagster metadata


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    """Log ``params`` on the run, as strings."""
    items = [Param(key, str(value)) for key, value in params.items()]
    for start in range(0, len(items), BATCH):
        client.log_batch(run_id, params=items[start : start + BATCH])


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set ``tags`` on the run, as strings."""
    items = [RunTag(key, str(value)) for key, value in tags.items()]
    for start in range(0, len(items), BATCH):
        client.log_batch(run_id, tags=items[start : start + BATCH])


def log_metrics(
    client: MlflowClient, run_id: str, metrics: Mapping[str, float], first_model: bool = False
) -> None:
    """Log ``metrics`` on the run at step 0, linked as MLflow's fluent API links them.

    A metric logged after a model was logged at the same step belongs to that model too (to
    each such model, or with ``first_model`` to the first only, as ``mlflow.log_metric`` does),
    so the model's page lists it.
    """
    run = client.get_run(run_id)
    outputs = run.outputs.model_outputs if run.outputs else []
    models: list[str | None] = [output.model_id for output in outputs if output.step == 0]
    models = (models[:1] if first_model else models) or [None]
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[
            Metric(key, value, now, 0, model_id=model, run_id=run_id)
            for key, value in metrics.items()
            for model in models
        ],
    )


def log_metric(client: MlflowClient, run_id: str, name: str, value: float) -> None:
    """Log one metric on the run (see :func:`log_metrics`)."""
    log_metrics(client, run_id, {name: value}, first_model=True)


@contextmanager
def active(run_id: str) -> Iterator[None]:
    """Check that ``run_id`` is MLflow's active run, where a model logged now goes."""
    current = mlflow.active_run()
    if current is None or current.info.run_id != run_id:
        found = current.info.run_id if current else "none"
        raise RuntimeError(f"MLflow's active run is {found}, not the step's run {run_id}")
    yield


def log_training(
    client: MlflowClient, run_id: str, result: TrainingResult, train_example: pd.DataFrame
) -> LoggedModel:
    """Log params, metrics, evaluation plots, the sklearn model and the served pyfunc."""
    from mlflow.models import infer_signature

    from stock_assets.core import plots

    client.set_tag(run_id, "model_type", result.model_type)
    client.set_tag(run_id, "mlflow.note.content", metrics_note(result))  # the run's Description
    log_params(
        client,
        run_id,
        {
            "model_type": result.model_type,
            "n_samples_train": result.n_train,
            "n_samples_test": result.n_test,
            "n_features": len(result.feature_columns),
            "random_state": result.random_state,
            "train_window": str(result.train_window),
            "test_window": str(result.test_window),
            **{f"hp_{key}": value for key, value in result.hyperparameters.items()},
        },
    )
    log_metrics(client, run_id, result.metrics)

    out = Path(tempfile.mkdtemp(prefix="stock-assets-plots-"))
    (out / "confusion_matrix.json").write_text(
        json.dumps({"labels": ["down", "up"], "matrix": result.confusion_matrix}, indent=2)
    )
    figures = {
        "confusion_matrix": plots.confusion_matrix_png(
            result.confusion_matrix, out / "confusion_matrix.png"
        )
    }
    if len(set(result.y_test.tolist())) == 2:
        figures["roc_curve"] = plots.roc_curve_png(
            result.y_test, result.y_score, out / "roc_curve.png"
        )
    if result.feature_importances is not None:
        result.feature_importances.rename("importance").rename_axis("feature").to_csv(
            out / "feature_importances.csv"
        )
        figures["feature_importances"] = plots.feature_importance_png(
            result.feature_importances, out / "feature_importances.png"
        )
    client.log_artifacts(run_id, str(out), artifact_path="evaluation")

    signature = infer_signature(train_example, result.pipeline.predict(train_example))
    requirements = pinned_requirements("scikit-learn", "skops", "pandas", "numpy", "mlflow")
    with active(run_id):
        model_info = mlflow.sklearn.log_model(
            result.pipeline,
            name="model",
            signature=signature,
            input_example=train_example.head(5),
            serialization_format="skops",
            skops_trusted_types=trusted_types(result.pipeline),
            pip_requirements=requirements,
        )
        served = log_serving_model(result.pipeline, list(train_example.columns), train_example)
    return LoggedModel(model_info.model_uri, served, figures)


def log_serving_model(pipeline: Any, columns: list[str], example: pd.DataFrame) -> str:
    """Log the self-contained pyfunc that is registered and served; returns its model URI.

    MLflow's "models from code": ``model_code.py`` is copied into the model and imports only
    MLflow, NumPy, pandas and SciPy; the pipeline goes with it as plain arrays (the feature
    order included), nothing is pickled. Read back and compared with the pipeline before it
    is used: :class:`~stock_assets.mlflow_ops.serving.model.ExportError` if it differs.
    """
    from stock_assets.mlflow_ops.serving import model as portable

    with tempfile.TemporaryDirectory(prefix="stock-assets-serving-") as folder:
        arrays = portable.write_portable(pipeline, columns, Path(folder))
        served = mlflow.pyfunc.log_model(
            name="serving_model",
            python_model=str(Path(__file__).parent / "serving" / "model_code.py"),
            artifacts={"model": str(arrays)},
            # What model_code.py imports; no input example: it would infer a named signature.
            pip_requirements=pinned_requirements("mlflow", "numpy", "pandas", "scipy"),
            metadata=SERVING_METADATA,  # the schema, as no signature can carry it (see the model)
        )
    rows = portable.probe_rows(pipeline, example)
    portable.check_same_answers(
        mlflow.pyfunc.load_model(served.model_uri).predict(rows), pipeline, rows
    )
    return served.model_uri


def metrics_note(result: TrainingResult) -> str:
    """The run's description: what the test metrics and the two baselines are measured on."""
    test = str(result.test_window)
    majority = "up" if result.baseline_class == 1 else "down"
    return (
        f"Test metrics (accuracy, precision, recall, f1, roc_auc) of the chosen "
        f"{result.model_type}, on the test window {test} ({result.n_test} rows).\n\n"
        f"`baseline_accuracy`: always predicting the training majority class ({majority}), "
        "scored on the same test window.\n\n"
        "The baseline line of `comparison/comparison.png` is another figure: the same rule's "
        "mean over the walk-forward validation folds, on the training dates."
    )


def log_comparison(
    client: MlflowClient, run_id: str, comparison: Comparison, folds: int, metric: str
) -> Path:
    """One nested run per candidate, plus the comparison table and chart on the run.

    Returns the chart's local path. The nested runs are started with MLflow's fluent API,
    which gives them the parent's source and user tags, under the active run ``run_id``.
    """
    from stock_assets.core import plots

    table = comparison.table
    for row in table.to_dict("records"):
        with (
            active(run_id),
            mlflow.start_run(run_name=row["candidate"], nested=True, parent_run_id=run_id) as child,
        ):
            nested = child.info.run_id
            set_tags(
                client, nested, {"candidate_rank": row["rank"], "model_type": row["model_type"]}
            )
            log_params(client, nested, {"candidate": row["candidate"], "cv_folds": folds})
            log_metrics(
                client,
                nested,
                {f"cv_{k}": v for k, v in row.items() if k.endswith(("_mean", "_std"))},
            )
    out = Path(tempfile.mkdtemp(prefix="stock-assets-comparison-"))
    table.to_csv(out / "comparison.csv", index=False)
    chart = plots.scores_bar_png(
        table.set_index("candidate")[f"{metric}_mean"],
        out / "comparison.png",
        metric=metric,
        baseline=float(table["baseline_accuracy_mean"].iloc[0]) if metric == "accuracy" else None,
        # Not the run's baseline_accuracy metric, which is scored on the test window.
        baseline_label=f"majority-class baseline, mean of the {folds} folds",
        title=f"Candidates: walk-forward {metric} on the training dates",
        xlabel=f"{metric}, mean of {folds} walk-forward validation folds",
    )
    client.log_artifacts(run_id, str(out), artifact_path="comparison")
    log_params(
        client,
        run_id,
        {
            "selection_metric": metric,
            "cv_folds": folds,
            "best_candidate": comparison.best.label,
        },
    )
    return chart


def pinned_requirements(*packages: str) -> list[str]:
    """``name==version`` of the installed packages, so MLflow need not infer them (slow)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in packages]


def trusted_types(pipeline: Any) -> list[str]:
    """The scikit-learn internals skops must be told to trust when loading this pipeline.

    Only types from scikit-learn and numpy are accepted; anything else is left untrusted, so
    loading fails loudly instead of executing unknown code.
    """
    import skops.io as sio

    found = sio.get_untrusted_types(data=sio.dumps(pipeline))
    return [name for name in found if name.startswith(("sklearn.", "numpy."))]
