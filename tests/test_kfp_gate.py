"""A deflated-Sharpe gate under kfp.local: the emitted pipeline deploys the edge, not the walk.

The pipeline exported by the real CLI runs twice under ``kfp.local`` with the planted-edge
test's data (:mod:`tests.test_backtest_edge`: its tickers, days, seed and candidates), chosen
by pipeline arguments only (``process``, ``gate_metric``): on the planted edge the deploy branch
runs and production moves to the new version; on the random walk of the same seed the deploy
task is skipped and production stays. Both read back from the real MLflow store. Each run takes
40-90 s on two shared cores, mostly the ten task processes' start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pytest

from stock_assets.core.decision import DEFAULT_GATE_THRESHOLDS
from tests.conftest import production_version
from tests.kfp_helpers import executed_tasks, export, run_yaml
from tests.test_backtest_edge import CANDIDATES, DAYS, SEED, TICKERS, signal

GATE = {"gate_metric": "deflated_sharpe"}
DATA = {"tickers": TICKERS, "days": DAYS, "seed": SEED, "candidates": CANDIDATES}
THRESHOLD = DEFAULT_GATE_THRESHOLDS["deflated_sharpe"]


@pytest.fixture(scope="module")
def pipeline(mlflow_store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stock pipeline exported with this module's MLflow store as tracking URI."""
    path = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    done = export(path, "--allow-local-tracking-uri", MLFLOW_TRACKING_URI=mlflow_store)
    assert done.returncode == 0, done.stderr
    return path


def _kfp_run_ids() -> set[str]:
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.kfp_run_id != ''", output_format="list"
    )
    return {r.info.run_id for r in runs}


def run_process(pipeline: Path, root: Path, process: str) -> dict[str, Any]:
    """One kfp.local run on ``process``: success, tasks run, its MLflow run, production after."""
    before, production_before = _kfp_run_ids(), production_version()
    succeeded, run_dir = run_yaml(pipeline, root, process=process, **GATE, **DATA)
    (run_id,) = _kfp_run_ids() - before
    return {
        "succeeded": succeeded,
        "tasks": executed_tasks(run_dir),
        "run": mlflow.get_run(run_id),
        "production_before": production_before,
        "production_after": production_version(),
    }


@pytest.fixture(scope="module")
def edge(pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The planted edge, first: the store has no production model yet."""
    return run_process(pipeline, tmp_path_factory.mktemp("edge"), "planted_edge")


@pytest.fixture(scope="module")
def walk(
    edge: dict[str, Any], pipeline: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The random walk of the same seed, after the edge: production is the edge's model."""
    return run_process(pipeline, tmp_path_factory.mktemp("walk"), "random_walk")


@pytest.mark.slow
def test_the_data_task_takes_the_process_from_the_pipeline_arguments(
    edge: dict[str, Any], walk: dict[str, Any]
) -> None:
    for process, result in (("planted_edge", edge), ("random_walk", walk)):
        params = result["run"].data.params
        assert params["data_process"] == process
        assert params["data_seed"] == str(SEED) and params["data_days"] == str(DAYS)
        assert params["data_tickers"] == ",".join(TICKERS)
        assert params["n_trials"] == str(len(CANDIDATES))


@pytest.mark.slow
def test_a_deflated_sharpe_gate_deploys_the_planted_edge_under_kfp_local(
    edge: dict[str, Any],
) -> None:
    assert edge["succeeded"]
    assert "deployed-model" in edge["tasks"]
    run = edge["run"]
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    # The same figures as the plain functions (and Dagster, tests/test_backtest_edge.py) give.
    core = signal("planted_edge")
    assert {name: metrics[name] for name in core} == pytest.approx(core, abs=1e-6)
    assert metrics["deflated_sharpe"] > THRESHOLD
    assert metrics["accuracy"] < 0.55  # the default accuracy gate would have rejected it
    assert params["gate_metric"] == "deflated_sharpe"
    assert float(params["gate_threshold"]) == THRESHOLD
    assert tags["deploy_decision"] == "approved"
    assert tags["deploy_reason"].startswith("test deflated_sharpe ")
    assert f"meets the threshold {THRESHOLD:.4f}" in tags["deploy_reason"]
    version = tags["registered_version"]
    assert tags["decided_version"] == version
    assert edge["production_after"] == version != edge["production_before"]
    assert tags["production_version"] == version


@pytest.mark.slow
def test_the_same_gate_rejects_the_random_walk_under_kfp_local(
    edge: dict[str, Any], walk: dict[str, Any]
) -> None:
    assert walk["succeeded"]
    assert "deploy-decision" in walk["tasks"] and "deployed-model" not in walk["tasks"]
    run = walk["run"]
    metrics, tags = run.data.metrics, run.data.tags
    core = signal("random_walk")
    assert {name: metrics[name] for name in core} == pytest.approx(core, abs=1e-6)
    assert metrics["deflated_sharpe"] < THRESHOLD
    assert tags["deploy_decision"] == "rejected"
    assert tags["deploy_reason"].startswith("test deflated_sharpe ")
    assert f"is below the threshold {THRESHOLD:.4f}" in tags["deploy_reason"]
    # Production (the edge's model) was backtested on the walk's window with the same gate.
    assert "champion_deflated_sharpe" in metrics
    assert walk["production_before"] == edge["production_after"] == walk["production_after"]
    assert "production_version" not in tags
