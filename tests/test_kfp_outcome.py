"""A KFP run's MLflow run ends FINISHED after success and FAILED after a failed task, whatever
state string the exit task is handed.

The exit task of a KFP backend receives the MLMD state of the exit handler's DAG
(backend/src/v2/driver/resolve.go at 2.14.0, PipelineTaskFinalStatus). Up to 2.16 the launcher
updates only a task's direct parent DAG (backend/src/v2/metadata/client.go
UpdateDAGExecutionsState, called from backend/src/v2/component/launcher_v2.go, at 2.14.0), so
our group, which holds a ParallelFor and a dsl.If, is still RUNNING after a success and after a
failure inside them; 2.17.0 propagates (kubeflow/pipelines#13322) and hands COMPLETE or FAILED;
kfp.local hands SUCCEEDED or FAILED; CANCELED means "not triggered" in MLMD (metadata/client.go
CreateExecution). Each pipeline below really runs under kfp.local; then the exit task's own
code, read from the YAML, is called again with every one of those strings.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import mlflow
import pytest
import yaml

from exporters.kfp.outcome import decide
from tests.kfp_helpers import executed_tasks, export, run_yaml

MODULE = "stock_assets.definitions"
STATES = ["COMPLETE", "RUNNING", "FAILED", "CANCELED", "SUCCEEDED", "CACHED", "NEW", ""]


@pytest.fixture(scope="module")
def pipeline(mlflow_store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    done = export(
        path, "--module", MODULE, "--allow-local-tracking-uri", MLFLOW_TRACKING_URI=mlflow_store
    )
    assert done.returncode == 0, done.stderr
    return path


def exit_task(package: Path) -> Any:
    """The exit task's function, from the Python source the YAML gives its executor."""
    spec = next(d for d in yaml.safe_load_all(package.read_text()) if d)
    source = spec["deploymentSpec"]["executors"]["exec-end-tracking-run"]["container"]["command"]
    namespace: dict[str, Any] = {}
    exec(compile(source[-1], "ephemeral_component.py", "exec"), namespace)  # noqa: S102
    return namespace["end_tracking_run"]


def _run_of(kfp_run_id: str) -> mlflow.entities.Run:
    (run,) = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.kfp_run_id = '{kfp_run_id}'",
        output_format="list",
    )
    return run


def _statuses_per_state(package: Path, kfp_run_id: str) -> dict[str, str]:
    """The MLflow run's status read back after the exit task ran with each state string."""
    end = exit_task(package)
    client = mlflow.MlflowClient()
    run_id = _run_of(kfp_run_id).info.run_id
    found = {}
    for state in STATES:
        client.update_run(run_id, status="RUNNING")
        end(status=SimpleNamespace(state=state), run_name=kfp_run_id)
        found[state] = client.get_run(run_id).info.status
    return found


@pytest.mark.slow
def test_a_deployed_run_ends_finished_whatever_the_state(pipeline: Path, tmp_path: Path) -> None:
    succeeded, run_dir = run_yaml(pipeline, tmp_path / "root", accuracy_threshold=0.0)
    assert succeeded and "deployed-model" in executed_tasks(run_dir)
    assert _run_of(run_dir.name).info.status == "FINISHED"  # kfp.local handed SUCCEEDED
    records = _run_of(run_dir.name).data.tags
    assert records["kfp_task.deploy-decision"] == '{"gate": true, "state": "succeeded"}'
    assert sum(k.startswith("kfp_task.model-score-candidate/") for k in records) == 5
    assert _statuses_per_state(pipeline, run_dir.name) == dict.fromkeys(STATES, "FINISHED")


@pytest.mark.slow
def test_a_run_whose_deploy_was_skipped_ends_finished(pipeline: Path, tmp_path: Path) -> None:
    succeeded, run_dir = run_yaml(pipeline, tmp_path / "root", accuracy_threshold=1.0)
    assert succeeded and "deployed-model" not in executed_tasks(run_dir)
    assert _statuses_per_state(pipeline, run_dir.name) == dict.fromkeys(STATES, "FINISHED")


@pytest.mark.slow
def test_a_run_with_a_failed_task_ends_failed(pipeline: Path, tmp_path: Path) -> None:
    succeeded, run_dir = run_yaml(
        pipeline, tmp_path / "root", csv_path=str(tmp_path / "missing.csv")
    )
    assert not succeeded
    assert _run_of(run_dir.name).info.status == "FAILED"  # kfp.local handed FAILED
    record = _run_of(run_dir.name).data.tags["kfp_task.stock-data"]
    assert re.match(r'\{"error": ".*missing\.csv.*", "state": "failed"\}', record), record
    assert _statuses_per_state(pipeline, run_dir.name) == dict.fromkeys(STATES, "FAILED")


#: The stock pipeline's plan, as the exporter embeds it in the exit task (a ParallelFor over the
#: candidates, cached scoring, a dsl.If around the deploy).
PLAN = [
    {"task": "stock-data", "after": [], "gates": [], "loop": None, "cache": True},
    {"task": "features", "after": ["stock-data"], "gates": [], "loop": None, "cache": True},
    {"task": "plan", "after": ["features"], "gates": [], "loop": None, "cache": False},
    {"task": "score", "after": ["plan"], "gates": [], "loop": "plan", "cache": True},
    {"task": "train", "after": ["score"], "gates": [], "loop": None, "cache": False},
    {"task": "decide", "after": ["train"], "gates": [], "loop": None, "cache": False},
    {"task": "deploy", "after": ["decide"], "gates": ["decide"], "loop": None, "cache": False},
]
OK = '{"state": "succeeded"}'


def _records(**overrides: str | None) -> dict[str, str]:
    records = {
        "stock-data": OK,
        "features": OK,
        "plan": '{"items": 2, "state": "succeeded"}',
        "score/a": OK,
        "score/b": OK,
        "train": OK,
        "decide": '{"gate": true, "state": "succeeded"}',
        "deploy": OK,
    }
    records.update(overrides)  # type: ignore[arg-type]
    return {k: v for k, v in records.items() if v is not None}


@pytest.mark.parametrize(
    ("records", "status"),
    [
        (_records(), "FINISHED"),
        # Cached tasks leave no record; a task after them ran, so they succeeded.
        (_records(**{"stock-data": None, "features": None, "score/a": None}), "FINISHED"),
        (_records(decide='{"gate": false, "state": "succeeded"}', deploy=None), "FINISHED"),
        (_records(**{"score/b": '{"state": "started"}', "train": None}), "FAILED"),  # killed
        (_records(**{"score/b": None, "train": None, "decide": None, "deploy": None}), "FAILED"),
        (_records(deploy=None), "FAILED"),  # the gate said true and deploy never ran
        (_records(train=None, decide=None, deploy=None), "FAILED"),
        ({}, "FAILED"),  # nothing ran (terminated before the first task)
    ],
)
@pytest.mark.parametrize("state", STATES)
def test_the_outcome_follows_the_records(records: dict[str, str], status: str, state: str) -> None:
    assert decide(PLAN, records, state).status == status
