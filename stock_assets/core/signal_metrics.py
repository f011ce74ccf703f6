"""How good a trading signal is: performance after costs, the information coefficient, and the
deflated Sharpe ratio (Bailey and López de Prado, 2014).

Pure (numpy, pandas and ``scipy.special`` for the normal distribution): no Dagster, KFP or
MLflow. Daily returns, 252 trading days a year, a zero risk-free rate. Every figure is finite
(a flat strategy has Sharpe 0), so it can be logged to MLflow and stored as JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from stock_assets.core.backtest import Backtest, run_backtest

__all__ = [
    "IC_BLOCK_DAYS",
    "PERIODS_PER_YEAR",
    "InformationCoefficient",
    "annual_return",
    "annual_volatility",
    "backtest_metrics",
    "deflated_sharpe_ratio",
    "drawdown",
    "evaluate_signal",
    "expected_max_sharpe",
    "information_coefficient",
    "kurtosis",
    "max_drawdown",
    "probabilistic_sharpe_ratio",
    "sharpe_ratio",
    "skewness",
]

PERIODS_PER_YEAR = 252
#: With fewer than 3 tickers the IC is taken over time, one Spearman correlation per block of
#: this many dates (about a month), so that it still has a mean, a spread and a t-statistic.
IC_BLOCK_DAYS = 21
#: The fewest tickers a date needs for a cross-sectional rank correlation.
MIN_CROSS_SECTION = 3


def annual_return(returns: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    """Compound annual growth rate of daily ``returns``."""
    r = np.asarray(returns, dtype=float)
    growth = float(np.prod(1.0 + r))
    return growth ** (periods / len(r)) - 1.0 if growth > 0 else -1.0


def annual_volatility(returns: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    """Sample standard deviation of daily ``returns`` times sqrt(periods)."""
    r = np.asarray(returns, dtype=float)
    return float(np.std(r, ddof=1) * math.sqrt(periods)) if len(r) > 1 else 0.0


def sharpe_ratio(returns: np.ndarray, periods: int = PERIODS_PER_YEAR) -> float:
    """Mean over sample standard deviation, times sqrt(periods) (1: per period); 0 if flat."""
    r = np.asarray(returns, dtype=float)
    sd = float(np.std(r, ddof=1)) if len(r) > 1 else 0.0
    return float(np.mean(r) / sd * math.sqrt(periods)) if sd > 1e-15 else 0.0


def drawdown(returns: np.ndarray) -> np.ndarray:
    """Each day's fall of the equity curve from its running peak (<= 0), the start being 1."""
    equity = np.cumprod(1.0 + np.asarray(returns, dtype=float))
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    return equity / peak - 1.0


def max_drawdown(returns: np.ndarray) -> float:
    """The deepest drawdown, as a negative fraction (-0.12: 12 % below the peak)."""
    return float(drawdown(returns).min())


def _central_moments(returns: np.ndarray) -> tuple[float, float, float]:
    r = np.asarray(returns, dtype=float)
    d = r - r.mean()
    return float(np.mean(d**2)), float(np.mean(d**3)), float(np.mean(d**4))


def skewness(returns: np.ndarray) -> float:
    """Sample skewness m3 / m2^1.5 (the biased estimator); 0 for constant returns."""
    m2, m3, _ = _central_moments(returns)
    return m3 / m2**1.5 if m2 > 1e-30 else 0.0


def kurtosis(returns: np.ndarray) -> float:
    """Sample kurtosis m4 / m2^2, not in excess (a normal distribution has 3); 3 if constant."""
    m2, _, m4 = _central_moments(returns)
    return m4 / m2**2 if m2 > 1e-30 else 3.0


@dataclass(frozen=True)
class InformationCoefficient:
    """Rank correlations of the signal with the next-day return, and their summary."""

    series: pd.Series  # one correlation per date (cross-section) or per block (over time)
    kind: str  # "cross_sectional" or "time_series"

    @property
    def mean(self) -> float:
        return float(self.series.mean()) if len(self.series) else 0.0

    @property
    def std(self) -> float:
        return float(self.series.std(ddof=1)) if len(self.series) > 1 else 0.0

    @property
    def icir(self) -> float:
        """Mean over standard deviation: the IC's consistency (0 with fewer than 2 values)."""
        return self.mean / self.std if self.std > 1e-15 else 0.0

    @property
    def tstat(self) -> float:
        """The mean's t-statistic, ICIR times sqrt(number of correlations)."""
        return self.icir * math.sqrt(len(self.series))


def _grouped_spearman(groups: np.ndarray, x: np.ndarray, y: np.ndarray) -> pd.Series:
    """Spearman correlation of x and y within each group (average ranks for ties)."""
    frame = pd.DataFrame({"g": groups, "x": x, "y": y})
    by = frame.groupby("g", sort=True)
    frame["rx"] = by["x"].rank()
    frame["ry"] = by["y"].rank()
    frame["rx"] -= frame.groupby("g")["rx"].transform("mean")
    frame["ry"] -= frame.groupby("g")["ry"].transform("mean")
    sums = (
        frame.assign(xy=frame.rx * frame.ry, xx=frame.rx**2, yy=frame.ry**2)
        .groupby("g", sort=True)[["xy", "xx", "yy"]]
        .sum()
    )
    valid = (sums.xx > 1e-12) & (sums.yy > 1e-12)  # a constant side has no rank correlation
    sums = sums.loc[valid]
    return (sums.xy / np.sqrt(sums.xx * sums.yy)).astype(float)


def information_coefficient(
    dates: np.ndarray | pd.Series,
    tickers: np.ndarray | pd.Series,
    probability: np.ndarray,
    next_return: np.ndarray,
) -> InformationCoefficient:
    """The signal's IC: each date's cross-sectional Spearman correlation with 3+ tickers,
    else one over time per block of :data:`IC_BLOCK_DAYS` dates."""
    d = pd.to_datetime(np.asarray(dates))
    p = np.asarray(probability, dtype=float)
    r = np.asarray(next_return, dtype=float)
    keep = np.isfinite(p) & np.isfinite(r)
    d, p, r = d[keep], p[keep], r[keep]
    if len(pd.unique(np.asarray(tickers, dtype=object)[keep])) >= MIN_CROSS_SECTION:
        return InformationCoefficient(_grouped_spearman(d, p, r), "cross_sectional")
    codes = pd.factorize(d, sort=True)[0] // IC_BLOCK_DAYS
    return InformationCoefficient(_grouped_spearman(codes, p, r), "time_series")


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """The expected largest of ``n_trials`` Sharpe estimates with no true edge (per period):
    sqrt(V) ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e))), g Euler's constant; 0 for N=1."""
    if n_trials <= 1:
        return 0.0
    g = np.euler_gamma
    return math.sqrt(sr_variance) * float(
        (1 - g) * ndtri(1 - 1 / n_trials) + g * ndtri(1 - 1 / (n_trials * math.e))
    )


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float, kurt: float
) -> float:
    """P(true Sharpe > ``sr_benchmark``) given a per-period estimate ``sr`` from ``n_obs``
    returns with skewness ``skew`` and (non-excess) kurtosis ``kurt``."""
    if n_obs < 2:
        return 0.5
    spread = max(1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2, 1e-12)
    return float(ndtr((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(spread)))


def deflated_sharpe_ratio(
    sr: float,
    n_obs: int,
    n_trials: int,
    skew: float,
    kurt: float,
    sr_variance: float | None = None,
) -> float:
    """The probabilistic Sharpe ratio against the best of ``n_trials`` luckless trials.

    ``sr`` is per period (not annualised). ``sr_variance`` is the variance of the trials' Sharpe
    estimates; unset, that of one estimate when the true Sharpe is 0, 1/(n_obs - 1): the trials
    are taken as independent and edgeless, which overstates the bar for correlated candidates.
    """
    if sr_variance is None:
        sr_variance = 1.0 / max(n_obs - 1, 1)
    benchmark = expected_max_sharpe(n_trials, sr_variance)
    return probabilistic_sharpe_ratio(sr, benchmark, n_obs, skew, kurt)


def backtest_metrics(
    backtest: Backtest, ic: InformationCoefficient, n_trials: int
) -> dict[str, float]:
    """Every figure of a backtest, after costs unless the name says gross or benchmark."""
    net, gross, bench = backtest.net, backtest.gross, backtest.benchmark
    active = net - bench
    skew, kurt = skewness(net), kurtosis(net)
    daily_sharpe = sharpe_ratio(net, periods=1)
    metrics = {
        "annual_return": annual_return(net),
        "annual_volatility": annual_volatility(net),
        "sharpe": sharpe_ratio(net),
        "max_drawdown": max_drawdown(net),
        "turnover": float(np.mean(backtest.turnover)),
        "hit_rate": backtest.hits / backtest.bets if backtest.bets else 0.0,
        "exposure": backtest.bets / max(len(net) * backtest.n_tickers, 1),
        "annual_return_gross": annual_return(gross),
        "sharpe_gross": sharpe_ratio(gross),
        "benchmark_annual_return": annual_return(bench),
        "benchmark_sharpe": sharpe_ratio(bench),
        "benchmark_max_drawdown": max_drawdown(bench),
        "excess_return": annual_return(net) - annual_return(bench),
        "information_ratio": sharpe_ratio(active),
        "ic_mean": ic.mean,
        "ic_tstat": ic.tstat,
        "icir": ic.icir,
        "returns_skewness": skew,
        "returns_kurtosis": kurt,
        "n_trials": float(n_trials),
        "deflated_sharpe": deflated_sharpe_ratio(daily_sharpe, len(net), n_trials, skew, kurt),
        "backtest_days": float(len(net)),
    }
    return {name: float(value) if math.isfinite(value) else 0.0 for name, value in metrics.items()}


def evaluate_signal(
    rows: pd.DataFrame,
    probability: np.ndarray,
    next_return: np.ndarray,
    cost_bps: float,
    long_short: bool = False,
    n_trials: int = 1,
) -> tuple[Backtest, dict[str, float]]:
    """Backtest the signal on ``rows`` (Date, Ticker) and compute :func:`backtest_metrics`."""
    dates = rows["Date"].to_numpy()
    tickers = rows["Ticker"].to_numpy() if "Ticker" in rows.columns else np.zeros(len(rows))
    backtest = run_backtest(dates, tickers, probability, next_return, cost_bps, long_short)
    ic = information_coefficient(dates, tickers, probability, next_return)
    return backtest, backtest_metrics(backtest, ic, n_trials)
