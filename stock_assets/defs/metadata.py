"""Dagster metadata a person would rather look at: schemas, previews, date ranges."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from dagster import MetadataValue, TableColumn, TableSchema

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
    preview = (df[preview_columns] if preview_columns else df).tail(5)
    return {
        "dagster/row_count": len(df),
        "dagster/column_schema": table_schema(df),
        "date_range": f"{dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d}",
        "tickers": ", ".join(sorted(df["Ticker"].unique())[:20]),
        "n_tickers": int(df["Ticker"].nunique()),
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


LOCAL_MLFLOW_UI = "http://127.0.0.1:5000"  # where `make mlflow-ui` serves the local store


def run_link(run_id: str) -> MetadataValue:
    """The run in the MLflow UI: the tracking server's page, or, for the local SQLite store,
    the page `make mlflow-ui` serves, with a note that it opens only while that runs."""
    uri = mlflow.get_tracking_uri()
    run = mlflow.get_run(run_id)
    path = f"#/experiments/{run.info.experiment_id}/runs/{run_id}"
    if uri.startswith(("http://", "https://")):
        return MetadataValue.url(f"{uri.rstrip('/')}/{path}")
    return MetadataValue.md(
        f"[MLflow run {run_id}]({LOCAL_MLFLOW_UI}/{path}) (local store: the link opens while "
        "`make mlflow-ui` runs)"
    )
