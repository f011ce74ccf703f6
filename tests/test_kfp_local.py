"""The emitted pipeline.yaml, loaded from file and executed by kfp.local, read back."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from exporters.kfp.runtime import read_value as read_artifact
from stock_assets.core.selection import DEFAULT_CANDIDATES, parse_candidates
from stock_assets.defs.io_manager import latest_path
from stock_assets.defs.storage import read_value
from tests.conftest import failure_text, production_version, run_graph
from tests.kfp_helpers import executed_tasks, export, run_yaml

ASSET_TASKS = {
    "stock-data",
    "features",
    "model-plan-candidates",  # the graph-backed model: one task per op, the candidates'
    "model-train-best",  # scoring in ParallelFor iterations (for-loop-*-iteration-*)
    "deploy-decision",
    "deployed-model",
}
PLUMBING = {"resolve-scheduled-dates", "end-tracking-run"}


@pytest.fixture(scope="module")
def pipeline(mlflow_store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stock pipeline exported with this module's MLflow store as tracking URI."""
    path = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    done = export(path, "--allow-local-tracking-uri", MLFLOW_TRACKING_URI=mlflow_store)
    assert done.returncode == 0, done.stderr
    assert mlflow_store in path.read_text()
    return path


def _kfp_runs() -> list[mlflow.entities.Run]:
    return mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.kfp_run_id != ''", output_format="list"
    )


def _run(pipeline: Path, root: Path, **arguments):
    before = {r.info.run_id for r in _kfp_runs()}
    succeeded, run_dir = run_yaml(pipeline, root, **arguments)
    new = [r for r in _kfp_runs() if r.info.run_id not in before]
    assert len(new) == 1, f"expected one MLflow run for the KFP run, got {len(new)}"
    return succeeded, run_dir, new[0]


@pytest.mark.slow
def test_rejected_run_skips_deploy_and_keeps_production(pipeline: Path, tmp_path: Path) -> None:
    """Also a recurring run's tick: KFP 2.14/2.15 pass the macro through unsubstituted.

    (backend/src/crd/controller/scheduledworkflow/util/scheduled_workflow.go formats only Argo
    workflow arguments, not a v2 pipeline's runtime config; see exporters/kfp/schedule.py.)
    """
    before = production_version()
    days = {str(dt.datetime.now(dt.UTC).date())}
    succeeded, run_dir, run = _run(
        pipeline,
        tmp_path / "root",
        accuracy_threshold=1.0,
        end_date="[[ScheduledTime.2006-01-02]]",
    )
    days.add(str(dt.datetime.now(dt.UTC).date()))
    assert succeeded
    assert executed_tasks(run_dir) == ASSET_TASKS - {"deployed-model"} | PLUMBING
    assert run.data.params["data_end_date"] in days  # resolved once, by the first task
    assert run.info.status == "FINISHED"
    # kfp.local has no pods and no pipeline/runid label: the run is named by its folder.
    assert run.data.tags["kfp_run_id"] == run_dir.name
    assert run.info.run_name == f"kfp-{run.data.tags['kfp_run_id']}"
    assert run.data.tags["deploy_decision"] == "rejected"
    assert production_version() == before


@pytest.mark.slow
def test_approved_run_matches_dagster_and_moves_production(
    pipeline: Path, tmp_path: Path, data_dir: Path
) -> None:
    before = production_version()
    succeeded, run_dir, run = _run(pipeline, tmp_path / "root", accuracy_threshold=0.0)
    assert succeeded
    assert executed_tasks(run_dir) == ASSET_TASKS | PLUMBING
    assert run.info.status == "FINISHED"
    # Every task logged into the one run: data params, training metrics, the registry tag.
    assert {"data_source", "feature_rows", "n_samples_train", "accuracy_threshold"} <= set(
        run.data.params
    )
    version = run.data.tags["registered_version"]
    assert production_version() == version != before

    # Same parameters in Dagster: identical features, equal metrics.
    dagster = run_graph({"deploy_decision": {"accuracy_threshold": 0.0}})
    assert dagster.success, failure_text(dagster)
    pd.testing.assert_frame_equal(
        read_value(run_dir / "features" / "features"),
        read_value(latest_path(data_dir, "features")),
    )
    dagster_model = dagster.output_for_node("model")
    kfp_model = read_value(run_dir / "model-train-best" / "model__train_best")
    assert (kfp_model.model_type, kfp_model.hyperparameters, kfp_model.metrics) == (
        dagster_model.model_type,
        dagster_model.hyperparameters,
        dagster_model.metrics,
    )
    assert run.data.metrics["accuracy"] == pytest.approx(dagster_model.metrics["accuracy"])
    # The backtest's figures too (logged, in the value and in the task's KFP Metrics output).
    assert kfp_model.n_trials == dagster_model.n_trials == len(DEFAULT_CANDIDATES)
    output = json.loads((run_dir / "model-train-best" / "executor_output.json").read_text())
    (kfp_metrics,) = output["artifacts"]["metrics"]["artifacts"]
    for name in ("sharpe", "excess_return", "ic_mean", "deflated_sharpe", "max_drawdown"):
        assert run.data.metrics[name] == pytest.approx(dagster_model.metrics[name], abs=1e-6)
        assert kfp_metrics["metadata"][name] == dagster_model.metrics[name]

    # Each default candidate was scored in its own ParallelFor iteration, with Dagster's scores.
    scored = [
        read_value(path)
        for path in run_dir.glob("for-loop-*-iteration-*/model-score-candidate/*score_candidate")
    ]
    dagster_scores = dagster.output_for_node("model.score_candidate")  # by mapping key
    assert sorted(s.plan.label for s in scored) == sorted(
        c.label for c in parse_candidates(DEFAULT_CANDIDATES)
    )
    assert {s.plan.mapping_key: s.folds for s in scored} == {
        key: score.folds for key, score in dagster_scores.items()
    }


@pytest.mark.slow
def test_failed_task_fails_the_mlflow_run_and_leaves_production(
    pipeline: Path, tmp_path: Path
) -> None:
    before = production_version()
    succeeded, run_dir, run = _run(
        pipeline,
        tmp_path / "root",
        csv_path=str(tmp_path / "missing.csv"),
        accuracy_threshold=0.0,
    )
    assert not succeeded
    assert executed_tasks(run_dir) == PLUMBING  # stock-data failed before output
    assert not (run_dir / "stock-data" / "stock_data").exists()
    assert run.info.status == "FAILED"
    assert production_version() == before


@pytest.mark.slow
def test_another_graph_runs_under_kfp_local(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "fan_in.yaml"
    done = export(path, "--module", "tests.graphs.fan_in", "--allow-local-tracking-uri")
    assert done.returncode == 0, done.stderr
    succeeded, run_dir = run_yaml(path, tmp_path / "root", negate=True, scale=2.0)
    assert succeeded
    assert executed_tasks(run_dir) == {"left", "right", "combined", "summary", "notice"}
    summary = read_artifact(run_dir / "summary" / "summary")  # the runtime's default storage
    # left: 0, 2, 4, 6 (scale 2.0); right: 0, -10, -20 (negated)
    assert summary == {"rows": 7, "total": -18.0}
