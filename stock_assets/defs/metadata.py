"""Dagster metadata a person would rather look at: schemas, previews, date ranges."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from dagster import MetadataValue, TableColumn, TableSchema

from stock_assets.paths import LOCAL_MLFLOW_UI

if TYPE_CHECKING:
    from stock_assets.core.selection import Comparison
    from stock_assets.core.training import TrainingResult
    from stock_assets.core.values import Decision, TrainedModel

_DTYPE_NAMES = {"datetime64[ns]": "date", "object": "string", "Int8": "int (nullable)"}


def table_schema(df: pd.DataFrame) -> TableSchema:
    """The frame's columns and types, for the ``dagster/column_schema`` entry."""
    return TableSchema(
        columns=[
            TableColumn(name=str(name), type=_DTYPE_NAMES.get(str(dtype), str(dtype)))
            for name, dtype in df.dtypes.items()
        ]
    )


def frame_metadata(df: pd.DataFrame, preview_columns: list[str] | None = None) -> dict[str, Any]:
    """Row count, date range, tickers, schema and a markdown preview of the last rows."""
    dates = pd.to_datetime(df["Date"])
    last_rows = df.tail(5)  # before selecting columns: a column list copies every row
    preview = last_rows[preview_columns] if preview_columns else last_rows
    tickers = sorted(t for t in df["Ticker"].unique() if not pd.isna(t))  # one pass over rows
    return {
        "dagster/row_count": len(df),
        "dagster/column_schema": table_schema(df),
        "date_range": f"{dates.min():%Y-%m-%d}..{dates.max():%Y-%m-%d}",
        "tickers": ", ".join(tickers[:20]),
        "n_tickers": len(tickers),
        "preview": MetadataValue.md(
            dates_as_days(preview).to_markdown(index=False, floatfmt=".4g")
        ),
    }


def dates_as_days(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose datetime columns read ``YYYY-MM-DD`` (daily bars have no time of day)."""
    out = df.copy()
    for name in out.columns[[pd.api.types.is_datetime64_any_dtype(t) for t in out.dtypes]]:
        out[name] = out[name].dt.strftime("%Y-%m-%d")
    return out


def png_markdown(path: Path, alt: str) -> str:
    """A markdown image with the PNG inlined, for Dagster's metadata panel."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{encoded})"


def comparison_metadata(
    comparison: Comparison | None, chart: Path | None, metric: str, cv_folds: int
) -> dict[str, Any]:
    """The candidate table and chart, and how the best was chosen (nothing without a comparison)."""
    if comparison is None or chart is None:
        return {}
    shown = comparison.table[["rank", "candidate", f"{metric}_mean", f"{metric}_std"]]
    return {
        "comparison": MetadataValue.md(
            shown.to_markdown(index=False, floatfmt=".4f")
            + "\n\n"
            + png_markdown(chart, "candidate scores")
        ),
        "selection": f"best of {len(shown)} by walk-forward {metric} ({cv_folds} folds, "
        "training dates only)",
    }


def model_metadata(
    trained: TrainedModel,
    result: TrainingResult,
    figures: dict[str, Path],
    run_url: str,
) -> dict[str, Any]:
    """The model's metrics, plots and registry version, for the asset's page."""
    test_window = str(trained.test_window)  # first..last, as every window
    metadata: dict[str, Any] = {}
    metadata.update(
        {
            **{name: MetadataValue.float(value) for name, value in trained.metrics.items()},
            "baselines": baselines_label(test_window),
            "model_type": trained.model_type,
            "hyperparameters": MetadataValue.json(trained.hyperparameters),
            "n_samples_train": result.n_train,
            "n_samples_test": result.n_test,
            "test_window": test_window,
            "registered_version": trained.registered_version,
            "mlflow_run": mlflow_run_link(trained.mlflow_run_id, run_url),
            "mlflow_run_id": trained.mlflow_run_id,
            "plots": MetadataValue.md(
                "\n\n".join(png_markdown(path, name) for name, path in figures.items())
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
    return metadata


def baselines_label(test_window: str) -> str:
    """What each of the two majority-class baselines is measured on (they differ)."""
    return (
        "baseline_accuracy: always the training majority class, scored on the test window "
        f"{test_window}; the comparison chart's line is that rule's mean over the walk-forward "
        "folds (training dates)"
    )


def backtest_metadata(trained: TrainedModel, figures: dict[str, Path]) -> dict[str, Any]:
    """The backtest's charts and how to read its figures (the figures are in the metrics)."""
    kind = "long or short" if trained.long_short else "long or flat"
    how = (
        f"Each test day the model's probability of up sets each ticker's position ({kind}), "
        "entered at the close and held to the next close, tickers equally weighted, "
        f"{trained.cost_bps:g} bps per unit of turnover. Benchmark: equal-weight buy-and-hold. "
        "`sharpe`, `annual_return`, `max_drawdown`, `excess_return`, `information_ratio` are "
        "after costs (`*_gross`: before); `ic_mean`: rank correlation of the probability with "
        f"the next-day return; `deflated_sharpe`: probability that the Sharpe beats the best "
        f"of {trained.n_trials} luckless trial(s) (above 0.95: an edge)."
    )
    return {
        "backtest": MetadataValue.md(
            how + "\n\n" + "\n\n".join(png_markdown(p, n) for n, p in figures.items())
        ),
        "backtest_settings": (
            f"{kind}, {trained.cost_bps:g} bps, {trained.n_trials} trial(s) compared"
        ),
    }


def decision_metadata(decision: Decision) -> dict[str, Any]:
    """The verdict, its reason and the figures it compared (the gate metric's first)."""
    champion = decision.champion_accuracy
    theirs = decision.champion_gate_value
    return {
        "deploy": decision.deploy,
        "reason": decision.reason,
        "registered_version": decision.registered_version,
        "gate_metric": decision.gate_metric,
        "gate_value": _float_or_dash(decision.gate_value),
        "gate_threshold": _float_or_dash(decision.gate_threshold),
        "champion_gate_value": _float_or_dash(theirs),
        "accuracy": MetadataValue.float(decision.accuracy),
        "accuracy_threshold": MetadataValue.float(decision.accuracy_threshold),
        "baseline_accuracy": MetadataValue.float(decision.baseline_accuracy),
        "champion_version": none_as_dash(decision.champion_version),
        "champion_accuracy": _float_or_dash(champion),
    }


#: How metadata shows a figure or version that does not exist (no production model yet).
NONE_SHOWN = "-"


def none_as_dash(value: object) -> str:
    """``value`` as text, ``-`` for None (never the word None)."""
    return NONE_SHOWN if value is None else str(value)


def _float_or_dash(value: float | None) -> MetadataValue | str:
    return MetadataValue.float(value) if value is not None else NONE_SHOWN


def mlflow_run_link(run_id: str, run_url: str) -> MetadataValue:
    """The run in the MLflow UI: a plain link to a tracking server's page or, for the local
    store, the page ``make mlflow-ui`` serves, with a note that it opens only while that runs."""
    if run_url.startswith(LOCAL_MLFLOW_UI):
        return MetadataValue.md(
            f"[MLflow run {run_id}]({run_url}) (local store: the link opens while "
            "`make mlflow-ui` runs)"
        )
    return MetadataValue.url(run_url)
