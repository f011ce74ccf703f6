"""The ``features`` asset: the 22 technical indicators and the next-day target."""

import pandas as pd
from dagster import AssetExecutionContext, Output, asset

from stock_assets.core.features import FEATURE_COLUMNS, TARGET_COLUMN, compute_features
from stock_assets.defs.constants import GROUP_NAME
from stock_assets.defs.lineage import table_lineage
from stock_assets.defs.metadata import frame_metadata
from stock_assets.defs.resources import MlflowTracking
from stock_assets.mlflow_ops.run_logging import log_params


@asset(
    group_name=GROUP_NAME,
    kinds={"pandas"},
    code_version="1",
    description=(
        "The reference pipeline's 22 technical indicators per ticker and Target (tomorrow's "
        "close above today's). Each ticker's last row has no Target: tomorrow is unknown."
    ),
)
def features(
    context: AssetExecutionContext, stock_data: pd.DataFrame, mlflow: MlflowTracking
) -> Output[pd.DataFrame]:
    """Compute the indicators, vectorised across tickers."""
    table = compute_features(stock_data)
    labelled = table[TARGET_COLUMN].notna()
    params = {"feature_rows": len(table), "feature_rows_labelled": int(labelled.sum())}
    with mlflow.reporting_errors():
        log_params(mlflow.client, mlflow.run_id, params)
    return table_lineage(context, table, mlflow).output(
        table,
        {
            **frame_metadata(
                table, ["Date", "Ticker", "Close", *FEATURE_COLUMNS[:6], TARGET_COLUMN]
            ),
            "n_features": len(FEATURE_COLUMNS),
            "share_up": float(table.loc[labelled, TARGET_COLUMN].astype(float).mean()),
        },
    )
