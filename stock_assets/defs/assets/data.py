"""The ``stock_data`` asset: daily OHLCV bars, synthetic or from the user's CSV."""

import pandas as pd
from dagster import AssetExecutionContext, Failure, Output, asset

from stock_assets.core.csv_input import load_ohlcv_csv
from stock_assets.core.data import DataValidationError, generate_gbm
from stock_assets.defs.config import StockDataConfig
from stock_assets.defs.constants import GROUP_NAME
from stock_assets.defs.lineage import table_lineage
from stock_assets.defs.metadata import frame_metadata
from stock_assets.defs.resources import MlflowTracking


@asset(
    group_name=GROUP_NAME,
    kinds={"pandas"},
    code_version="1",
    description="Daily OHLCV bars: a synthetic geometric Brownian motion, or your own CSV.",
)
def stock_data(
    context: AssetExecutionContext, config: StockDataConfig, mlflow: MlflowTracking
) -> Output[pd.DataFrame]:
    """Generate or load the bars, validated before anything is stored.

    A bad file fails the step with one line (file, line, column, what was expected; never the
    file's content), with no chained cause and no retry: the same input would fail the same way.
    """
    csv_path, end_date = config.csv_path, config.end_date
    try:
        if csv_path is not None:
            bars = load_ohlcv_csv(csv_path, end_date=end_date)
        else:
            bars = generate_gbm(
                days=config.days,
                seed=config.seed,
                tickers=config.tickers,
                end_date=end_date,
                process=config.process,
            )
    except DataValidationError as error:
        raise Failure(description=str(error), allow_retries=False) from None

    source = f"csv:{csv_path}" if csv_path is not None else "synthetic_gbm"
    mlflow.log_params(
        {
            "data_source": source,
            "data_days": config.days,
            "data_seed": config.seed,
            "data_tickers": "" if csv_path is not None else ",".join(config.tickers),
            "data_end_date": end_date or "",
            "data_process": "" if csv_path is not None else config.process,
            "data_rows": len(bars),
        }
    )
    return table_lineage(context, bars).output(bars, {"source": source, **frame_metadata(bars)})
