"""The backtest and the signal metrics against reference computations (scipy, numpy, the paper)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stock_assets.core import signal_metrics as sm
from stock_assets.core.backtest import (
    BacktestError,
    check_cost_bps,
    next_returns,
    positions,
    run_backtest,
)
from stock_assets.core.data import generate_gbm
from stock_assets.core.features import compute_features

TOL = 1e-9
RNG = np.random.default_rng(7)
RETURNS = RNG.normal(0.0004, 0.012, 300) + 0.01 * RNG.standard_t(4, 300)
BENCH = RNG.normal(0.0003, 0.01, 300)


def panel(n_dates: int = 40, tickers: tuple[str, ...] = ("A", "B", "C", "D")) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2024-01-01", periods=n_dates)
    rows = pd.DataFrame(
        [(d, t) for d in dates for t in tickers], columns=["Date", "Ticker"]
    ).astype({"Ticker": object})
    rows["probability"] = rng.uniform(0.2, 0.8, len(rows))
    rows["ret"] = rng.normal(0.0005, 0.02, len(rows))
    return rows


def test_metrics_equal_numpy_and_scipy_references() -> None:
    r = RETURNS
    assert sm.annual_return(r) == pytest.approx(np.prod(1 + r) ** (252 / len(r)) - 1, abs=TOL)
    assert sm.annual_volatility(r) == pytest.approx(np.std(r, ddof=1) * np.sqrt(252), abs=TOL)
    assert sm.sharpe_ratio(r) == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252), abs=TOL)
    assert sm.skewness(r) == pytest.approx(stats.skew(r, bias=True), abs=TOL)
    assert sm.kurtosis(r) == pytest.approx(stats.kurtosis(r, fisher=False, bias=True), abs=TOL)
    equity = np.concatenate([[1.0], np.cumprod(1 + r)])
    reference = np.min(equity / np.maximum.accumulate(equity) - 1)
    assert sm.max_drawdown(r) == pytest.approx(reference, abs=TOL)
    active = r - BENCH
    assert sm.sharpe_ratio(active) == pytest.approx(
        active.mean() / active.std(ddof=1) * np.sqrt(252), abs=TOL
    )


def test_a_flat_strategy_has_finite_figures() -> None:
    flat = np.zeros(50)
    assert sm.sharpe_ratio(flat) == 0.0 and sm.skewness(flat) == 0.0 and sm.kurtosis(flat) == 3
    assert sm.max_drawdown(flat) == 0.0 and sm.annual_return(flat) == 0.0


def test_cross_sectional_ic_is_scipys_spearman_per_date() -> None:
    rows = panel()
    rows.loc[rows.index[:4], "probability"] = 0.5  # a date with a constant signal: no IC
    ic = sm.information_coefficient(rows.Date, rows.Ticker, rows.probability, rows.ret)
    assert ic.kind == "cross_sectional"
    reference = [
        stats.spearmanr(group.probability, group.ret).statistic
        for _, group in rows.groupby("Date")
        if group.probability.nunique() > 1
    ]
    assert len(ic.series) == len(reference) == rows.Date.nunique() - 1
    np.testing.assert_allclose(ic.series.to_numpy(), reference, rtol=0, atol=TOL)
    mean, sd = np.mean(reference), np.std(reference, ddof=1)
    assert ic.mean == pytest.approx(mean, abs=TOL)
    assert ic.icir == pytest.approx(mean / sd, abs=TOL)
    assert ic.tstat == pytest.approx(stats.ttest_1samp(reference, 0.0).statistic, abs=TOL)


def test_one_ticker_ic_is_taken_over_time_in_blocks() -> None:
    rows = panel(n_dates=100, tickers=("SYNTH",))
    ic = sm.information_coefficient(rows.Date, rows.Ticker, rows.probability, rows.ret)
    assert ic.kind == "time_series"
    blocks = np.arange(len(rows)) // sm.IC_BLOCK_DAYS
    reference = [
        stats.spearmanr(rows.probability[blocks == b], rows.ret[blocks == b]).statistic
        for b in np.unique(blocks)
    ]
    np.testing.assert_allclose(ic.series.to_numpy(), reference, rtol=0, atol=TOL)


def test_deflated_sharpe_reproduces_the_papers_worked_example() -> None:
    """Bailey and López de Prado (2014), section "A numerical example": 100 trials whose
    annualised Sharpe ratios vary by 1/2, 5 years of 250 daily returns, an annualised Sharpe
    of 2.5, skewness -3, kurtosis 10: SR0 = 0.1132 per day and DSR = 0.9004."""
    variance = 0.5 / 250
    assert sm.expected_max_sharpe(100, variance) == pytest.approx(0.1132, abs=5e-5)
    dsr = sm.deflated_sharpe_ratio(2.5 / math.sqrt(250), 1250, 100, -3.0, 10.0, variance)
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    # one trial: no selection to deflate for, the probabilistic Sharpe ratio against 0
    psr = sm.probabilistic_sharpe_ratio(0.05, 0.0, 500, 0.0, 3.0)
    assert sm.deflated_sharpe_ratio(0.05, 500, 1, 0.0, 3.0) == psr
    assert psr == pytest.approx(
        stats.norm.cdf(0.05 * math.sqrt(499 / (1 + 2 / 4 * 0.05**2))), abs=TOL
    )
    # more trials raise the bar
    assert sm.deflated_sharpe_ratio(0.05, 500, 20, 0.0, 3.0) < psr


def test_backtest_positions_costs_and_buy_and_hold_by_hand() -> None:
    """Two tickers, three dates: every daily figure worked out by hand."""
    dates = np.repeat(pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]), 2)
    tickers = np.array(["A", "B"] * 3, dtype=object)
    probability = np.array([0.7, 0.4, 0.6, 0.6, 0.3, 0.2])
    ret = np.array([0.01, -0.02, 0.03, 0.01, -0.01, 0.02])
    bt = run_backtest(dates, tickers, probability, ret, cost_bps=10, long_short=False)
    # weights: day 1 A 1/2; day 2 A, B 1/2 each; day 3 flat
    np.testing.assert_allclose(bt.gross, [0.005, 0.02, 0.0], atol=TOL)
    np.testing.assert_allclose(bt.turnover, [0.5, 0.5, 1.0], atol=TOL)
    np.testing.assert_allclose(bt.net, bt.gross - 0.001 * bt.turnover, atol=TOL)
    value = np.mean(np.cumprod(1 + ret.reshape(3, 2), axis=0), axis=1)
    expected = np.diff(np.concatenate([[1.0], value])) / np.concatenate([[1.0], value[:-1]])
    expected[0] -= 0.001
    np.testing.assert_allclose(bt.benchmark, expected, atol=TOL)
    assert (bt.bets, bt.hits) == (3, 3)

    short = run_backtest(dates, tickers, probability, ret, cost_bps=0, long_short=True)
    np.testing.assert_allclose(short.gross, [0.015, 0.02, -0.005], atol=TOL)
    np.testing.assert_allclose(short.turnover, [1.0, 1.0, 2.0], atol=TOL)
    assert positions(np.array([0.5, 0.51]), long_short=True).tolist() == [-1.0, 1.0]


def test_next_returns_are_the_target_s_move() -> None:
    features = compute_features(generate_gbm(120, 1, ["A", "B"]))
    returns = next_returns(features)
    labelled = features.Target.notna()
    assert returns[labelled].notna().all() and returns[~labelled].isna().all()
    assert ((returns[labelled] > 0).astype(int) == features.Target[labelled]).all()
    a = features[features.Ticker == "A"]
    assert returns[a.index[0]] == pytest.approx(a.Close.iloc[1] / a.Close.iloc[0] - 1, abs=TOL)


@pytest.mark.parametrize("bad", [-1.0, 1e4, float("nan"), float("inf")])
def test_costs_must_be_a_finite_number_of_bps(bad: float) -> None:
    with pytest.raises(BacktestError, match="cost_bps="):
        check_cost_bps(bad)


def test_metrics_of_a_backtest_are_all_finite_floats() -> None:
    rows = panel()
    bt, metrics = sm.evaluate_signal(rows, rows.probability, rows.ret, 5.0, False, 5)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert metrics["excess_return"] == pytest.approx(
        sm.annual_return(bt.net) - sm.annual_return(bt.benchmark), abs=TOL
    )
    assert metrics["n_trials"] == 5.0 and metrics["backtest_days"] == len(bt.net)
    assert 0 <= metrics["deflated_sharpe"] <= 1


@pytest.mark.parametrize(
    ("asset", "fields", "start"),
    [
        ("model", {"cost_bps": -2.0}, "cost_bps=-2.0 must lie in [0, 1000]"),
        ("model", {"embargo": 0}, "embargo=0 must be a whole number of dates >= 1"),
        ("deploy", {"gate_metric": "sortino"}, "gate_metric='sortino'; choose one of accuracy"),
        ("deploy", {"deflated_sharpe_threshold": 1.2}, "gate_threshold=1.2 for gate_metric="),
        ("data", {"process": "garch"}, "process='garch' is not a synthetic process"),
    ],
)
def test_a_bad_backtest_or_gate_setting_names_the_field(
    asset: str, fields: dict, start: str
) -> None:
    from dagster import Failure

    from stock_assets.defs.config import DeployDecisionConfig, ModelConfig, StockDataConfig

    config_class = {"model": ModelConfig, "deploy": DeployDecisionConfig}.get(
        asset, StockDataConfig
    )
    with pytest.raises(Failure) as error:
        config_class(**fields)
    assert error.value.description.startswith(start), error.value.description
    assert "\n" not in error.value.description


def test_the_gate_threshold_follows_the_gate_metric() -> None:
    from stock_assets.defs.config import DeployDecisionConfig

    assert DeployDecisionConfig().threshold() == 0.55  # accuracy_threshold
    assert DeployDecisionConfig(gate_metric="deflated_sharpe").threshold() == 0.95
    assert DeployDecisionConfig(gate_metric="sharpe", sharpe_threshold=1.0).threshold() == 1.0
