"""The ``stock_data`` asset: daily OHLCV bars, synthetic or from the user's CSV."""

import pandas as pd
from dagster import AssetExecutionContext, Failure, Output, asset

from stock_assets.core.csv_input import load_ohlcv_csv
from stock_assets.core.data import DataValidationError, generate_gbm
from stock_assets.core.history import bars_problem
from stock_assets.defs.config import StockDataConfig
from stock_assets.defs.constants import GROUP_NAME
from stock_assets.defs.lineage import table_lineage
from stock_assets.defs.metadata import frame_metadata
from stock_assets.defs.resources import MlflowTracking
from stock_assets.mlflow_ops.run_logging import log_params


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
    short = bars_problem(bars)  # the stated minimum, checked before the model's steps
    if short:
        where = f"{csv_path}" if csv_path is not None else f"days={config.days}"
        raise Failure(description=f"{where}: {short}", allow_retries=False)

    source = f"csv:{csv_path}" if csv_path is not None else "synthetic_gbm"
    synthetic = csv_path is None
    params = {
        "data_source": source,
        "data_days": config.days if synthetic else rows_per_ticker(bars),
        "data_seed": config.seed if synthetic else "",
        "data_tickers": ticker_list(bars),
        "data_dates": date_span(bars),
        "data_end_date": end_date or "",
        "data_process": config.process if synthetic else "",
        "data_rows": len(bars),
    }
    with mlflow.reporting_errors():
        log_params(mlflow.client, mlflow.run_id, params)
    return table_lineage(context, bars, mlflow).output(
        bars, {"source": source, **frame_metadata(bars)}
    )


#: MLflow keeps a parameter's first 6,000 characters: a longer ticker list is cut, and says so.
MAX_PARAM_CHARS = 6000


def rows_per_ticker(bars: pd.DataFrame) -> str:
    """Rows per ticker, ``120``, or ``105..250`` when the tickers differ."""
    counts = bars.groupby("Ticker", sort=False).size()
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}..{high}"


def ticker_list(bars: pd.DataFrame) -> str:
    """The bars' tickers, sorted and comma-separated (cut with a count past MLflow's limit)."""
    names = sorted(str(t) for t in bars["Ticker"].unique())
    text = ",".join(names)
    if len(text) <= MAX_PARAM_CHARS:
        return text
    suffix = f",... ({len(names)} tickers)"
    return text[: MAX_PARAM_CHARS - len(suffix)].rsplit(",", 1)[0] + suffix


def date_span(bars: pd.DataFrame) -> str:
    """The first and last date of the bars, ``YYYY-MM-DD..YYYY-MM-DD``."""
    dates = bars["Date"]
    return f"{dates.min():%Y-%m-%d}..{dates.max():%Y-%m-%d}"
