"""The Definitions as Dagster's own tools see them: CLI validation, schedule, multiprocess runs."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from dagster import DagsterEventType, DagsterInstance, build_schedule_context, validate_run_config
from mlflow.tracking._tracking_service import utils as tracking_utils

from stock_assets.core.selection import DEFAULT_CANDIDATES
from stock_assets.definitions import defs
from stock_assets.defs.schedules import nightly_retrain
from tests.conftest import PROJECT_ROOT, env_for_subprocess

DAGSTER = str(Path(sys.executable).with_name("dagster"))

#: Each asset and the assets it reads: the graph the README draws and describes.
ASSET_GRAPH = {
    "stock_data": set(),
    "features": {"stock_data"},
    "model": {"features"},
    "deploy_decision": {"features", "model"},
    "deployed_model": {"deploy_decision"},
}


def test_the_asset_graph_has_the_assets_and_edges_the_readme_shows() -> None:
    graph = defs.resolve_asset_graph()
    edges = {
        key.to_user_string(): {parent.to_user_string() for parent in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert edges == ASSET_GRAPH
    order = [key.to_user_string() for key in graph.toposorted_asset_keys]
    assert order == list(ASSET_GRAPH)


@pytest.mark.slow
def test_definitions_validate_passes(tmp_path: Path) -> None:
    done = subprocess.run(
        [DAGSTER, "definitions", "validate", "-m", "stock_assets.definitions"],
        cwd=PROJECT_ROOT,
        env=env_for_subprocess(DAGSTER_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_nightly_schedule_passes_the_tick_date_as_end_date() -> None:
    assert nightly_retrain.cron_schedule == "0 2 * * *"
    assert nightly_retrain.execution_timezone == "UTC"
    tick = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
    request = nightly_retrain.evaluate_tick(
        build_schedule_context(scheduled_execution_time=tick)
    ).run_requests[0]
    assert request.run_config["ops"]["stock_data"]["config"]["end_date"] == "2026-11-27"
    assert request.run_key == "2026-11-27"
    job = defs.resolve_job_def(nightly_retrain.job_name)
    assert validate_run_config(job, request.run_config)
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert selected == {"stock_data", "features", "model", "deploy_decision", "deployed_model"}
    assert "execution" not in request.run_config  # the default executor: one process


@pytest.mark.slow
def test_cli_materialize_all_leaves_exactly_one_finished_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dagster asset materialize --select '*'`, multiprocess: one step per process."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "dagster_home").mkdir()
    multiprocess = '{"execution": {"config": {"multiprocess": {}}}}'
    done = subprocess.run(
        [DAGSTER, "asset", "materialize", "--select", "*", "-m", "stock_assets.definitions"]
        + ["--config-json", multiprocess],
        cwd=tmp_path,
        env=env_for_subprocess(
            MLFLOW_TRACKING_URI=uri,
            STOCK_ASSETS_DATA_DIR=str(tmp_path / "data"),
            DAGSTER_HOME=str(tmp_path / "dagster_home"),
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # mlflow.set_tracking_uri also sets $MLFLOW_TRACKING_URI: undone after the test, so no
    # later test (an export, say) inherits this store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    top_level = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    # the default candidates, nested under the pipeline's run
    assert len(runs) - len(top_level) == len(DEFAULT_CANDIDATES)
    assert len(top_level) == 1
    runs = top_level
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster_run_id"]
    assert {"data_source", "n_samples_train", "best_candidate"} <= set(run.data.params)
    assert {"accuracy", "baseline_accuracy", "f1"} <= set(run.data.metrics)
    assert run.data.tags["check.target_has_both_classes"] == "passed"
    client = mlflow.MlflowClient()
    files = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/confusion_matrix.png" in files
    assert mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )

    # The Dagster event log says what happened to the MLflow run in each step's process.
    instance = DagsterInstance.from_config(str(tmp_path / "dagster_home"))
    try:
        logs = instance.all_logs(run.data.tags["dagster_run_id"])
    finally:
        instance.dispose()
    # each candidate was scored in its own step, in its own process (the multiprocess executor)
    scored = {
        e.step_key: e.dagster_event.pid
        for e in logs
        if e.dagster_event is not None
        and e.dagster_event.event_type == DagsterEventType.STEP_SUCCESS
        and (e.step_key or "").startswith("model.score_candidate[")
    }
    assert len(scored) == len(DEFAULT_CANDIDATES) and len(set(scored.values())) == len(scored)
    lines = [e.user_message for e in logs if e.step_key and "score_candidate[" in e.step_key]
    assert len([m for m in lines if "walk-forward accuracy" in m]) == len(DEFAULT_CANDIDATES)
    said = [e.user_message for e in logs if "MLflow run" in e.user_message]
    created = [m for m in said if m.startswith(f"created MLflow run {run.info.run_id} ")]
    resumed = [m for m in said if m.startswith(f"resuming MLflow run {run.info.run_id} ")]
    steps = {e.step_key for e in logs if e.is_dagster_event and e.dagster_event.is_step_start}
    assert len(created) == 1, said
    # every other step that uses MLflow resumed the same run; planning and scoring candidates
    # do not touch MLflow
    tracked = {s for s in steps if not s.startswith(("model.plan_", "model.score_"))}
    assert len(resumed) == len(tracked) - 1 >= 4, said
    assert not [m for m in said if "Starting a new mlflow run" in m]
    (trained,) = [e.user_message for e in logs if "always-majority baseline" in e.user_message]
    window = run.data.tags["mlflow.note.content"].split("on the test window ")[1].split(" (")[0]
    assert f"(always-majority baseline on the same test window {window}: " in trained, trained
    assert f"{run.data.metrics['baseline_accuracy']:.4f}); backtest after " in trained, trained


def test_multiprocess_runs_fork_warm_workers_unless_told_otherwise() -> None:
    """Each step's process is forked from a server that has imported the project once."""
    from stock_assets.defs.executor import PRELOADED, with_warm_workers

    warm = {"forkserver": {"preload_modules": PRELOADED}}
    assert with_warm_workers({}) == {"multiprocess": {"start_method": warm}}
    assert with_warm_workers({"multiprocess": {"max_concurrent": 4}}) == {
        "multiprocess": {"max_concurrent": 4, "start_method": warm}
    }
    chosen = {"multiprocess": {"start_method": {"spawn": {}}}}
    assert with_warm_workers(chosen) == chosen
    assert with_warm_workers({"in_process": {}}) == {"in_process": {}}
    # the jobs use it, and a run config may still pick in_process or a start method
    job = defs.resolve_job_def("retrain")
    assert job.executor_def.name == "multi_or_in_process_warm"
    for execution in ({"in_process": {}}, {"multiprocess": {"max_concurrent": 1}}):
        assert validate_run_config(job, {"execution": {"config": execution}}) is not None
    resolved = validate_run_config(job, {})["execution"]["multi_or_in_process_warm"]
    assert resolved == {"in_process": {"retries": {"enabled": {}}}}  # the default: one process
    chosen = {"execution": {"config": {"multiprocess": {}}}}
    resolved = validate_run_config(job, chosen)["execution"]["multi_or_in_process_warm"]
    assert resolved["multiprocess"]["start_method"] == warm
    assert PRELOADED[0] == defs_module()


def defs_module() -> str:
    import tomllib

    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    return pyproject["tool"]["dagster"]["module_name"]
