"""What the backtest adds to the MLflow run, and the production model's backtest for the gate.

The figures themselves are test metrics of the run (``model`` logs them with accuracy); here
go the settings they depend on (params), the daily returns and the two charts (artifacts
under ``backtest/``), logged to the run given by its id with an ``MlflowClient``, as in
:mod:`stock_assets.mlflow_ops.run_logging`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from stock_assets.core.backtest import Backtest
from stock_assets.core.signal_metrics import evaluate_signal
from stock_assets.mlflow_ops.registry import REGISTERED_MODEL_NAME, production_version
from stock_assets.mlflow_ops.run_logging import log_params

#: Artifact folder of the charts and the daily returns.
ARTIFACT_PATH = "backtest"


def log_backtest(
    client: MlflowClient, run_id: str, backtest: Backtest, n_trials: int
) -> dict[str, Path]:
    """Log the params, daily returns (CSV) and the equity and drawdown PNGs on run ``run_id``;
    return the PNGs' local paths."""
    from stock_assets.core.backtest_plots import drawdown_png, equity_png

    out = Path(tempfile.mkdtemp(prefix="stock-assets-backtest-"))
    pd.DataFrame(
        {
            "date": backtest.dates.strftime("%Y-%m-%d"),
            "strategy_net": backtest.net,
            "strategy_gross": backtest.gross,
            "buy_and_hold": backtest.benchmark,
            "turnover": backtest.turnover,
        }
    ).to_csv(out / "daily_returns.csv", index=False)
    figures = {
        "equity_curve": equity_png(backtest, out / "equity_curve.png"),
        "drawdown": drawdown_png(backtest, out / "drawdown.png"),
    }
    client.log_artifacts(run_id, str(out), artifact_path=ARTIFACT_PATH)
    log_params(
        client,
        run_id,
        {
            "backtest_cost_bps": float(backtest.cost_bps),
            "backtest_long_short": bool(backtest.long_short),
            "n_trials": int(n_trials),
        },
    )
    return figures


def production_signal(
    client: MlflowClient,
    test_rows: pd.DataFrame,
    next_return: np.ndarray,
    feature_columns: Sequence[str],
    challenger_version: str,
    metric: str,
    settings: tuple[float, bool, int],
) -> tuple[float | None, str]:
    """The production version's ``metric`` from the same backtest on the challenger's rows.

    ``settings`` are the challenger's (cost_bps, long_short, n_trials), so both are judged
    alike. Returns (value, note); value None when there is nothing to score or it failed.
    """
    version = production_version(client)
    if version is None or version == challenger_version:
        return None, ""
    cost_bps, long_short, n_trials = settings
    try:
        champion = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL_NAME}/{version}")
        scored = champion.predict(test_rows[list(feature_columns)])
        probability = scored["probability_up"].to_numpy(dtype=float)
        _, metrics = evaluate_signal(
            test_rows, probability, next_return, cost_bps, long_short, n_trials
        )
    except Exception as error:  # an incompatible old model must not block a good new one
        first = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        return None, f"production version {version} could not be backtested ({first})"
    return metrics[metric], ""
