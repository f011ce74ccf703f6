"""A backtest of the model's signal on its test window: positions, costs, buy-and-hold.

Pure (numpy and pandas): no Dagster, KFP or MLflow. Each ticker-day's predicted probability of
"up" sets a position (long above 0.5, else flat, or short with ``long_short``), entered at that
day's close and held to the next close: the return the ``Target`` describes, so nothing of the
future is used. The tickers are equally weighted among those with a row that day; costs are
``cost_bps`` basis points per unit of turnover (the sum of absolute weight changes, the first
day's entry included). The benchmark holds every ticker in equal parts from the first day
(buy-and-hold, its entry paying the same costs). Weights are the targets set each close; their
drift within a day is not modelled (a day's move is small beside a daily rebalance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stock_assets.core.features import TARGET_COLUMN

__all__ = [
    "DEFAULT_COST_BPS",
    "MAX_COST_BPS",
    "Backtest",
    "BacktestError",
    "check_cost_bps",
    "next_returns",
    "positions",
    "run_backtest",
]

#: A realistic few basis points per unit of turnover (liquid large caps, commission + spread).
DEFAULT_COST_BPS = 5.0
#: A cost above 10 % of the traded value is a typo, not a market.
MAX_COST_BPS = 1000.0


class BacktestError(ValueError):
    """The inputs cannot give a backtest (bad costs, misaligned or empty rows)."""


def check_cost_bps(cost_bps: float) -> float:
    """``cost_bps`` if it is a finite cost in basis points, from 0 to :data:`MAX_COST_BPS`."""
    if not (isinstance(cost_bps, int | float) and math.isfinite(cost_bps)):
        raise BacktestError(f"cost_bps={cost_bps!r} must be a finite number of basis points")
    if not 0 <= cost_bps <= MAX_COST_BPS:
        raise BacktestError(
            f"cost_bps={cost_bps} must lie in [0, {MAX_COST_BPS:g}] basis points per unit of "
            "turnover (5 = 0.05 % of the value traded)"
        )
    return float(cost_bps)


def positions(probability: np.ndarray, long_short: bool = False) -> np.ndarray:
    """+1 where the probability of up exceeds 0.5, else 0 (flat) or -1 (``long_short``)."""
    p = np.asarray(probability, dtype=float)
    return np.where(p > 0.5, 1.0, -1.0 if long_short else 0.0)


def next_returns(features: pd.DataFrame) -> pd.Series:
    """Each row's next-close return, ``Close[t+1] / Close[t] - 1`` within its ticker.

    Aligned with ``features``' index; NaN on a ticker's last row (the Target's <NA>). Its sign
    is the ``Target``: up (1) exactly when the return is positive.
    """
    close = features["Close"].astype("float64")
    keys = features["Ticker"] if "Ticker" in features.columns else None
    order = features.sort_values(
        ["Ticker", "Date"] if keys is not None else ["Date"], kind="stable"
    ).index
    ordered = close.loc[order]
    if keys is not None:
        following = ordered.groupby(keys.loc[order]).shift(-1)
    else:
        following = ordered.shift(-1)
    returns = (following / ordered - 1.0).reindex(features.index)
    if TARGET_COLUMN in features.columns:  # a dropped row in between would break the pairing
        target = features[TARGET_COLUMN]
        known = target.notna() & returns.notna()
        disagree = known & ((returns > 0).astype(int) != target.fillna(0).astype(int))
        returns[disagree] = np.nan
    return returns.rename("next_return")


@dataclass(frozen=True)
class Backtest:
    """Daily portfolio returns of the strategy and the benchmark, one entry per test date."""

    dates: pd.DatetimeIndex
    gross: np.ndarray  # the strategy before costs
    net: np.ndarray  # the strategy after costs
    benchmark: np.ndarray  # equal-weight buy-and-hold, its entry cost paid
    turnover: np.ndarray  # sum of absolute weight changes at each close
    bets: int  # ticker-days with a position
    hits: int  # of which the position's sign matched the next-day return's
    n_tickers: int
    cost_bps: float
    long_short: bool


def run_backtest(
    dates: pd.Series | np.ndarray,
    tickers: pd.Series | np.ndarray,
    probability: np.ndarray,
    next_return: np.ndarray,
    cost_bps: float = DEFAULT_COST_BPS,
    long_short: bool = False,
) -> Backtest:
    """Backtest ticker-day rows (one per ticker and date) of probability and next return."""
    check_cost_bps(cost_bps)
    rows = pd.DataFrame(
        {
            "date": pd.to_datetime(np.asarray(dates)),
            "ticker": np.asarray(tickers, dtype=object),
            "position": positions(probability, long_short),
            "ret": np.asarray(next_return, dtype=float),
        }
    )
    if rows.empty:
        raise BacktestError("no test rows to backtest")
    if rows.duplicated(["date", "ticker"]).any():
        raise BacktestError("backtest rows repeat a (date, ticker) pair; expected one row each")
    rows = rows.loc[np.isfinite(rows["ret"].to_numpy())]
    if rows.empty:
        raise BacktestError("no test row has a known next-day return")
    ret = rows.pivot(index="date", columns="ticker", values="ret").sort_index()
    pos = rows.pivot(index="date", columns="ticker", values="position").reindex_like(ret)
    present = ret.notna().to_numpy()
    r = ret.to_numpy(dtype=float)
    r0 = np.where(present, r, 0.0)
    n_present = present.sum(axis=1, keepdims=True)
    weights = np.where(present, pos.to_numpy(dtype=float), 0.0) / n_present
    gross = (weights * r0).sum(axis=1)
    previous = np.vstack([np.zeros((1, weights.shape[1])), weights[:-1]])
    turnover = np.abs(weights - previous).sum(axis=1)
    cost = cost_bps / 10_000.0
    net = gross - cost * turnover

    value = np.cumprod(1.0 + r0, axis=0).mean(axis=1)  # each ticker bought for 1/N at the start
    benchmark = np.diff(np.concatenate([[1.0], value])) / np.concatenate([[1.0], value[:-1]])
    benchmark[0] -= cost  # buying the whole book once: turnover 1

    signed = rows["position"].to_numpy() * rows["ret"].to_numpy()
    bets = rows["position"].to_numpy() != 0
    return Backtest(
        dates=pd.DatetimeIndex(ret.index),
        gross=gross,
        net=net,
        benchmark=benchmark,
        turnover=turnover,
        bets=int(bets.sum()),
        hits=int((signed[bets] > 0).sum()),
        n_tickers=int(ret.shape[1]),
        cost_bps=float(cost_bps),
        long_short=bool(long_short),
    )
