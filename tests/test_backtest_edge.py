"""The backtest tells a planted edge from none, on data the project generates.

``generate_gbm(process="planted_edge")`` draws the random walk's numbers and makes each day's
return lean on yesterday's (lag-1 autocorrelation 0.15): a weak edge whose size is known. On it
the chosen model's IC is positive, its Sharpe after 5 bps beats buy-and-hold's and its deflated
Sharpe ratio is high; on the random walk of the same seed none of that holds, and a gate on the
deflated Sharpe deploys the first and rejects the second (real Dagster, real MLflow store).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from stock_assets.core import selection
from stock_assets.core.backtest import next_returns
from stock_assets.core.data import PLANTED_AUTOCORRELATION, generate_gbm
from stock_assets.core.features import compute_features
from stock_assets.core.signal_metrics import evaluate_signal
from stock_assets.core.splits import time_split
from stock_assets.core.training import train_and_evaluate
from tests.conftest import failure_text, mlflow_run_for, production_version, run_graph

#: Three candidates (the deflated Sharpe ratio's trials), quick to fit.
CANDIDATES = [
    "logistic: C=0.1, max_iter=1000",
    "logistic: C=1.0, max_iter=1000",
    "hist_gradient_boosting: max_iter=50, learning_rate=0.1, max_leaf_nodes=15",
]
TICKERS = [f"T{i}" for i in range(10)]
DAYS, SEED = 1500, 3  # about 290 test dates of 10 tickers


def bars(process: str):  # noqa: ANN201 - a frame
    return generate_gbm(DAYS, SEED, TICKERS, process=process)


@cache
def signal(process: str) -> dict[str, float]:
    """The pipeline's steps as plain functions: compare, refit, test, backtest at 5 bps."""
    features = compute_features(bars(process))
    split = time_split(features, 0.2)
    candidates = selection.parse_candidates(CANDIDATES)
    best = selection.compare_candidates(split.train, candidates, cv_folds=3).best
    result = train_and_evaluate(split, best.model_type, best.hyperparameters)
    returns = next_returns(features).loc[split.test.index].to_numpy()
    _, metrics = evaluate_signal(split.test, result.y_score, returns, 5.0, False, len(candidates))
    return metrics


def test_the_planted_edge_is_the_one_asked_for() -> None:
    returns = bars("planted_edge").groupby("Ticker")["Close"].pct_change()
    lagged = returns.groupby(bars("planted_edge")["Ticker"]).shift(1)
    assert returns.corr(lagged) == pytest.approx(PLANTED_AUTOCORRELATION, abs=0.03)
    walk = bars("random_walk")
    assert (walk["Date"] == bars("planted_edge")["Date"]).all()  # same dates, same tickers
    assert generate_gbm(DAYS, SEED, TICKERS).equals(walk)  # the default is the random walk


def test_a_planted_edge_is_found_and_survives_costs_and_deflation() -> None:
    metrics = signal("planted_edge")
    assert metrics["ic_mean"] > 0 and metrics["ic_tstat"] > 3
    assert metrics["sharpe"] > metrics["benchmark_sharpe"]
    assert metrics["excess_return"] > 0
    assert metrics["deflated_sharpe"] > 0.95
    assert metrics["n_trials"] == len(CANDIDATES)


def test_a_random_walk_shows_no_edge() -> None:
    metrics = signal("random_walk")
    assert metrics["ic_tstat"] < 2  # no significant information coefficient
    assert metrics["sharpe"] < metrics["benchmark_sharpe"]
    assert metrics["deflated_sharpe"] < 0.95


def run_on(process: str, tmp_path: Path):  # noqa: ANN201 - Dagster's result
    csv = tmp_path / f"{process}.csv"
    bars(process).to_csv(csv, index=False, date_format="%Y-%m-%d")
    return run_graph(
        {
            "stock_data": {"csv_path": str(csv)},
            "model": {"candidates": CANDIDATES},
            "deploy_decision": {"gate_metric": "deflated_sharpe"},
        }
    )


@pytest.mark.slow
def test_a_deflated_sharpe_gate_deploys_the_edge_and_rejects_the_walk(
    data_dir: Path, tmp_path: Path
) -> None:
    edge = run_on("planted_edge", tmp_path)
    assert edge.success, failure_text(edge)
    decision = edge.output_for_node("deploy_decision")
    model = edge.output_for_node("model")
    assert decision.deploy is True and decision.gate_metric == "deflated_sharpe"
    assert decision.gate_value == model.metrics["deflated_sharpe"] > decision.gate_threshold
    assert decision.accuracy < 0.55  # the default accuracy gate would have rejected it
    core = signal("planted_edge")  # the same figures as the plain functions give
    assert {name: model.metrics[name] for name in core} == pytest.approx(core, abs=1e-6)
    deployed = production_version()
    assert deployed == model.registered_version
    metadata = edge.asset_materializations_for_node("deploy_decision")[0].metadata
    assert metadata["gate_metric"].value == "deflated_sharpe"
    assert mlflow_run_for(edge).data.params["gate_metric"] == "deflated_sharpe"

    walk = run_on("random_walk", tmp_path)
    assert walk.success, failure_text(walk)
    decision = walk.output_for_node("deploy_decision")
    assert decision.deploy is False
    assert decision.reason.startswith("test deflated_sharpe ")
    assert "is below the threshold 0.9500" in decision.reason
    # production (the edge's model) was backtested on the walk's test window too
    assert decision.champion_gate_value is not None
    assert production_version() == deployed
