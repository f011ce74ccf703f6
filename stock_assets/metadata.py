"""Dagster metadata a person would rather look at: schemas, previews, date ranges."""

from __future__ import annotations

from typing import Any

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
    preview = df[preview_columns] if preview_columns else df
    return {
        "dagster/row_count": len(df),
        "dagster/column_schema": table_schema(df),
        "date_range": f"{dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d}",
        "tickers": ", ".join(sorted(df["Ticker"].unique())[:20]),
        "n_tickers": int(df["Ticker"].nunique()),
        "preview": MetadataValue.md(preview.tail(5).to_markdown(index=False, floatfmt=".4g")),
    }
