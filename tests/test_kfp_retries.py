"""A RetryPolicy is KFP's to apply: inside a task the asset or op runs once, never retried."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from exporters.kfp.runtime import read_value
from tests.graphs import flaky
from tests.kfp_helpers import all_tasks, export, load_spec
from tests.kfp_tasks import run_exported_task


@pytest.fixture
def attempts_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "attempts"
    path.mkdir()
    monkeypatch.setenv(flaky.ATTEMPTS_DIR, str(path))
    return path


def test_dagster_itself_retries_each_flaky_step(attempts_dir: Path) -> None:
    """The control: the policies are real, and a Dagster run gets past each first failure."""
    result = materialize(flaky.defs.assets, instance=DagsterInstance.ephemeral())
    assert result.success
    assert flaky.attempts("flaky_asset") == 2
    assert flaky.attempts("flaky_op") == 2


@pytest.mark.slow
def test_the_exported_tasks_carry_the_retry_policies(tmp_path: Path) -> None:
    path = tmp_path / "flaky.yaml"
    done = export(path, "--module", "tests.graphs.flaky", "--allow-local-tracking-uri")
    assert done.returncode == 0, done.stderr
    tasks = all_tasks(load_spec(path))
    assert tasks["flaky-asset"]["retryPolicy"]["maxRetryCount"] == 2
    assert tasks["flaky-graph-flaky-op"]["retryPolicy"]["maxRetryCount"] == 2


def test_an_asset_task_runs_its_asset_once(attempts_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "flaky_asset"
    with pytest.raises(Exception, match="first attempt fails"):
        run_exported_task("tests.graphs.flaky", "flaky_asset", flaky_asset=str(output))
    assert flaky.attempts("flaky_asset") == 1  # not retried inside the task
    assert not output.exists()
    run_exported_task("tests.graphs.flaky", "flaky_asset", flaky_asset=str(output))  # KFP's retry
    assert flaky.attempts("flaky_asset") == 2
    assert read_value(output) == 1


def test_an_op_task_runs_its_op_once(attempts_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "flaky_op"
    task = "flaky_graph__flaky_op"
    with pytest.raises(Exception, match="first attempt fails"):
        run_exported_task("tests.graphs.flaky", task, **{task: str(output)})
    assert flaky.attempts("flaky_op") == 1
    run_exported_task("tests.graphs.flaky", task, **{task: str(output)})
    assert flaky.attempts("flaky_op") == 2
    assert read_value(output) == 2
