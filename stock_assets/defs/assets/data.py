"""The ``stock_data`` asset: daily OHLCV bars, synthetic or from the user's CSV."""

import pandas as pd
from dagster import AssetExecutionContext, Failure, Output, asset

from stock_assets.core.data import DataValidationError, generate_gbm, load_ohlcv_csv
from stock_assets.defs.config import StockDataConfig
from stock_assets.defs.constants import GROUP_NAME
from stock_assets.defs.lineage import table_lineage  # data lineage (issue 12)
from stock_assets.defs.metadata import frame_metadata


@asset(
    group_name=GROUP_NAME,
    kinds={"pandas"},
    required_resource_keys={"mlflow"},
    code_version="1",
    description="Daily OHLCV bars: the seed's geometric Brownian motion, or your own CSV.",
)
def stock_data(context: AssetExecutionContext, config: StockDataConfig) -> Output[pd.DataFrame]:
    """Generate or load the bars, validated before anything is stored."""
    end_date = config.end_date or None
    try:
        if config.csv_path:
            bars = load_ohlcv_csv(config.csv_path, end_date=end_date)
        else:
            bars = generate_gbm(
                days=config.days, seed=config.seed, tickers=config.tickers, end_date=end_date
            )
    except DataValidationError as error:
        raise Failure(description=str(error)) from error

    source = f"csv:{config.csv_path}" if config.csv_path else "synthetic_gbm"
    context.resources.mlflow.log_params(
        {
            "data_source": source,
            "data_days": config.days,
            "data_seed": config.seed,
            "data_tickers": ",".join(config.tickers) if not config.csv_path else "",
            "data_end_date": config.end_date,
            "data_rows": len(bars),
        }
    )
    lineage = table_lineage(context, bars)  # data lineage (issue 12)
    return Output(
        bars,
        metadata={"source": source, **frame_metadata(bars), **lineage.metadata},
        data_version=lineage.data_version,
    )
