"""A RetryPolicy is KFP's to apply: inside a task the asset or op runs once, never retried."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from exporters.kfp.runtime import materialize_asset, materialize_op, read_value
from tests.graphs import flaky
from tests.kfp_helpers import all_tasks, export, load_spec

pytestmark = pytest.mark.slow


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


def test_the_exported_tasks_carry_the_retry_policies(tmp_path: Path) -> None:
    path = tmp_path / "flaky.yaml"
    done = export(path, "--module", "tests.graphs.flaky", "--allow-local-tracking-uri")
    assert done.returncode == 0, done.stderr
    tasks = all_tasks(load_spec(path))
    assert tasks["flaky-asset"]["retryPolicy"]["maxRetryCount"] == 2
    assert tasks["flaky-graph-flaky-op"]["retryPolicy"]["maxRetryCount"] == 2


def test_an_asset_task_runs_its_asset_once(attempts_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "flaky_asset"
    task = dict(module="tests.graphs.flaky", asset="flaky_asset", inputs={}, config={})
    with pytest.raises(Exception, match="first attempt fails"):
        materialize_asset(**task, output=str(output))
    assert flaky.attempts("flaky_asset") == 1  # not retried inside the task
    assert not output.exists()
    materialize_asset(**task, output=str(output))  # KFP's retry: the task again
    assert flaky.attempts("flaky_asset") == 2
    assert read_value(output) == 1


def test_an_op_task_runs_its_op_once(attempts_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "flaky_op"
    task = dict(
        module="tests.graphs.flaky",
        asset="flaky_graph",
        op="flaky_op",
        assets={},
        ops={},
        collected={},
        items=None,
        loop_item="",
        config={},
    )
    with pytest.raises(Exception, match="first attempt fails"):
        materialize_op(**task, output=str(output))
    assert flaky.attempts("flaky_op") == 1
    materialize_op(**task, output=str(output))
    assert flaky.attempts("flaky_op") == 2
    assert read_value(output) == 2
