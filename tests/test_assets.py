"""The asset graph run by real Dagster, recorded in a real MLflow store, read back."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey

from stock_assets.core.data import generate_gbm
from stock_assets.core.features import FEATURE_COLUMNS
from stock_assets.core.selection import DEFAULT_CANDIDATES
from stock_assets.core.splits import labelled_rows_in
from stock_assets.core.values import Decision, TrainedModel
from stock_assets.defs.io_manager import latest_path
from stock_assets.defs.storage import read_value
from tests.conftest import (
    APPROVE_ALL,
    failure_text,
    mlflow_run_for,
    production_version,
    run_graph,
)

REJECT_ALL = {"deploy_decision": {"accuracy_threshold": 1.0}}


@pytest.mark.slow
def test_graph_materialises_every_asset_and_check(deployed) -> None:
    result, data = deployed
    materialised = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialised == {
        AssetKey(k)
        for k in ("stock_data", "features", "model", "deploy_decision", "deployed_model")
    }
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "ohlc_consistent": True,
        "unique_sorted_bars": True,
        "features_finite": True,
        "target_has_both_classes": True,
    }
    # Stored as files that survive the process: Parquet frames, typed JSON values.
    stored = read_value(latest_path(data, "features"))
    assert list(stored.columns[7:29]) == FEATURE_COLUMNS
    decision = read_value(latest_path(data, "deploy_decision"))
    assert isinstance(decision, Decision) and decision.deploy is True
    model = read_value(latest_path(data, "model"))
    assert model == result.output_for_node("model") and isinstance(model, TrainedModel)


@pytest.mark.slow
def test_one_finished_mlflow_run_with_params_metrics_artifacts_and_model(deployed) -> None:
    result, _ = deployed
    run = mlflow_run_for(result)
    assert run.info.status == "FINISHED"
    best = run.data.params["best_candidate"]
    assert best.startswith(run.data.tags["model_type"] + ":")
    assert run.data.tags["environment"] == "development"
    assert run.data.tags["author"]
    params = run.data.params
    assert params["data_source"] == "synthetic_gbm"
    assert (params["data_days"], params["data_seed"], params["data_tickers"]) == (
        "500",
        "42",
        "SYNTH",
    )
    assert params["n_features"] == "22"
    assert int(params["n_samples_train"]) > int(params["n_samples_test"]) > 0
    for pair in best.split(":", 1)[1].split(","):  # the chosen candidate's hyperparameters
        name, value = pair.strip().split("=")
        assert params[f"hp_{name}"] == value
    metrics = run.data.metrics
    for name in ("accuracy", "precision", "recall", "f1", "baseline_accuracy"):
        assert 0.0 <= metrics[name] <= 1.0

    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {
        "evaluation/confusion_matrix.json",
        "evaluation/confusion_matrix.png",
        "evaluation/feature_importances.csv",
        "evaluation/roc_curve.png",
    } <= artifacts
    local = client.download_artifacts(run.info.run_id, "evaluation/confusion_matrix.json")
    matrix = np.array(json.loads(Path(local).read_text())["matrix"])
    assert matrix.sum() == int(params["n_samples_test"])

    assert {"comparison/comparison.csv", "comparison/comparison.png"} <= {
        a.path for a in client.list_artifacts(run.info.run_id, "comparison")
    }
    model_value = result.output_for_node("model")
    info = mlflow.models.get_model_info(model_value.model_uri)
    assert [c.name for c in info.signature.inputs.inputs] == FEATURE_COLUMNS
    assert info.saved_input_example_info is not None
    assert model_value.metrics["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert params["test_window"] == str(model_value.test_window)
    assert model_value.mlflow_run_id == run.info.run_id


@pytest.mark.slow
def test_the_experiment_opens_on_the_runs_list(deployed) -> None:
    result, _ = deployed
    experiment = mlflow.get_experiment(mlflow_run_for(result).info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert (experiment.tags["project"], experiment.tags["team"]) == ("stock-prediction", "ml")


@pytest.mark.slow
def test_candidates_are_nested_runs_chosen_on_training_dates_only(deployed) -> None:
    result, _ = deployed
    parent = mlflow_run_for(result)
    children = mlflow.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        output_format="list",
    )
    assert len(children) == len(DEFAULT_CANDIDATES)  # one per default candidate
    ranks = {c.data.params["candidate"]: int(c.data.tags["candidate_rank"]) for c in children}
    assert sorted(ranks.values()) == list(range(1, len(DEFAULT_CANDIDATES) + 1))
    best = min(ranks, key=ranks.get)
    assert parent.data.params["best_candidate"] == best
    scores = {c.data.params["candidate"]: c.data.metrics["cv_accuracy_mean"] for c in children}
    assert scores[best] == max(scores.values())
    comparison = result.asset_materializations_for_node("model")[0].metadata["comparison"]
    assert best in comparison.value and "data:image/png;base64," in comparison.value
    # Validation never used the test window: the model's test dates come after all of it.
    model_value = result.output_for_node("model")
    assert parent.data.params["train_window"].split("..")[1] < str(model_value.test_window.first)


@pytest.mark.slow
def test_registry_versions_stages_and_aliases(deployed) -> None:
    result, _ = deployed
    client = mlflow.MlflowClient()
    version = result.output_for_node("model").registered_version
    model_version = client.get_model_version("stock-prediction", version)
    assert model_version.tags["stage"] == "production"
    aliases = client.get_registered_model("stock-prediction").aliases
    assert aliases["production"] == aliases["staging"] == int(version)


@pytest.mark.slow
def test_production_alias_loads_and_predicts(deployed) -> None:
    result, data = deployed
    assert production_version() is not None
    served = mlflow.pyfunc.load_model("models:/stock-prediction@production")
    model = result.output_for_node("model")
    rows = labelled_rows_in(read_value(latest_path(data, "features")), model.test_window).tail(20)
    answer = served.predict(rows[FEATURE_COLUMNS])
    pipeline = mlflow.sklearn.load_model(model.model_uri)  # the estimator lives in MLflow
    np.testing.assert_array_equal(answer["direction"], pipeline.predict(rows[FEATURE_COLUMNS]))
    np.testing.assert_allclose(
        answer["probability_up"], pipeline.predict_proba(rows[FEATURE_COLUMNS])[:, 1]
    )
    # Positional rows (22 values in feature order, as the reference pipeline sent them) too.
    positional = served.predict(rows[FEATURE_COLUMNS].to_numpy())
    pd.testing.assert_frame_equal(positional, answer)


@pytest.mark.slow
def test_rejected_model_is_skipped_and_production_stays(deployed, data_dir: Path) -> None:
    before = production_version()
    result = run_graph(REJECT_ALL)
    assert result.success, failure_text(result)
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "deployed_model" not in materialised
    assert "deploy_decision" in materialised
    decision = result.output_for_node("deploy_decision")
    assert decision.deploy is False
    assert "below the threshold 1.0000" in decision.reason
    run = mlflow_run_for(result)
    assert run.info.status == "FINISHED"
    assert run.data.tags["deploy_decision"] == "rejected"
    assert production_version() == before
    assert not latest_path(data_dir, "deployed_model").exists()


@pytest.mark.slow
def test_each_materialisation_in_a_process_gets_its_own_run(deployed, data_dir: Path) -> None:
    selection = ["stock_data"]
    first = run_graph(selection=selection)
    second = run_graph(selection=selection)
    runs = [mlflow_run_for(first), mlflow_run_for(second)]
    assert runs[0].info.run_id != runs[1].info.run_id
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert mlflow.active_run() is None


@pytest.mark.slow
def test_same_config_gives_same_data_features_and_metrics(deployed, data_dir: Path) -> None:
    result, data = deployed
    again = run_graph(REJECT_ALL)
    for name in ("stock_data", "features"):
        pd.testing.assert_frame_equal(
            read_value(latest_path(data, name)),
            read_value(latest_path(data_dir, name)),
        )
    assert again.output_for_node("model").metrics == result.output_for_node("model").metrics


@pytest.mark.slow
def test_more_tickers_each_get_their_own_series(deployed, data_dir: Path) -> None:
    result = run_graph(
        {"stock_data": {"tickers": ["AAA", "BBB", "CCC"], "days": 300}}, selection=["stock_data"]
    )
    assert result.success, failure_text(result)
    bars = read_value(latest_path(data_dir, "stock_data"))
    assert sorted(bars["Ticker"].unique()) == ["AAA", "BBB", "CCC"]
    closes = bars.pivot(index="Date", columns="Ticker", values="Close")
    assert closes.shape == (300, 3)
    assert not np.allclose(closes["AAA"], closes["BBB"])


@pytest.mark.slow
def test_csv_source_with_extra_columns_and_mixed_case(
    deployed, data_dir: Path, tmp_path: Path
) -> None:
    bars = generate_gbm(days=200, seed=7).drop(columns="Ticker")
    bars = bars.rename(columns={"Open": "open", "Close": "CLOSE"}).assign(**{"Adj Close": 1.0})
    path = tmp_path / "acme.csv"
    bars.to_csv(path, index=False)
    result = run_graph({"stock_data": {"csv_path": str(path)}, **APPROVE_ALL})
    assert result.success, failure_text(result)
    stored = read_value(latest_path(data_dir, "stock_data"))
    assert list(stored.columns) == ["Date", "Ticker", "Open", "High", "Low", "Close", "Volume"]
    assert set(stored["Ticker"]) == {"ACME"}
    assert mlflow_run_for(result).data.params["data_source"] == f"csv:{path}"


@pytest.mark.slow
def test_end_date_ends_the_window(deployed, data_dir: Path) -> None:
    result = run_graph({"stock_data": {"end_date": "2026-11-27"}}, selection=["stock_data"])
    assert result.success, failure_text(result)
    bars = read_value(latest_path(data_dir, "stock_data"))
    assert bars["Date"].max() == pd.Timestamp("2026-11-27")
    assert len(bars) == 500


BACKTEST_METRICS = (
    "sharpe",
    "annual_return",
    "annual_volatility",
    "max_drawdown",
    "turnover",
    "hit_rate",
    "excess_return",
    "information_ratio",
    "annual_return_gross",
    "ic_mean",
    "ic_tstat",
    "icir",
    "deflated_sharpe",
    "returns_skewness",
    "returns_kurtosis",
)


@pytest.mark.slow
def test_the_backtest_is_in_dagster_and_mlflow_beside_accuracy(deployed) -> None:
    """The default run's backtest: its figures as Dagster metadata and MLflow metrics (equal),
    its two charts inline and as artifacts, and its daily returns give back its Sharpe."""
    from stock_assets.core.signal_metrics import sharpe_ratio

    result, _ = deployed
    run = mlflow_run_for(result)
    model_value = result.output_for_node("model")
    metadata = result.asset_materializations_for_node("model")[0].metadata
    for name in ("accuracy", *BACKTEST_METRICS):
        assert metadata[name].value == model_value.metrics[name]
        assert run.data.metrics[name] == pytest.approx(model_value.metrics[name], abs=1e-6)
    assert model_value.metrics["n_trials"] == len(DEFAULT_CANDIDATES) == model_value.n_trials
    assert run.data.params["n_trials"] == str(len(DEFAULT_CANDIDATES))
    assert run.data.params["backtest_cost_bps"] == "5.0"
    charts = metadata["backtest"].value
    assert charts.count("data:image/png;base64,") == 2 and "buy-and-hold" in charts

    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "backtest")}
    assert artifacts == {
        "backtest/equity_curve.png",
        "backtest/drawdown.png",
        "backtest/daily_returns.csv",
    }
    daily = pd.read_csv(client.download_artifacts(run.info.run_id, "backtest/daily_returns.csv"))
    assert daily["date"].iloc[0] == str(model_value.test_window.first)
    assert sharpe_ratio(daily["strategy_net"].to_numpy()) == pytest.approx(
        model_value.metrics["sharpe"], abs=1e-5
    )
    decision = result.asset_materializations_for_node("deploy_decision")[0].metadata
    assert decision["gate_metric"].value == "accuracy"
