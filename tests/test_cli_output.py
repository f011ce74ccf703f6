"""What `dagster asset materialize` prints on the project's instance (dagster_instance.yaml, as
`make dev` and `make test` install it): the steps' messages, warnings and failures, no framework
DEBUG events (about 120 lines a run before) and no artifact download bars."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stock_assets.defs.config import run_config
from tests.conftest import PROJECT_ROOT, env_for_subprocess

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def _materialize(tmp_path: Path, ops: dict) -> subprocess.CompletedProcess[str]:
    """The whole graph through the CLI on the sandbox's instance, data dir and MLflow store."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "dagster_instance.yaml", home / "dagster.yaml")
    return subprocess.run(
        [DAGSTER, "asset", "materialize", "--select", "*", "-m", "stock_assets.definitions"]
        + ["--config-json", json.dumps(run_config(ops))],
        cwd=PROJECT_ROOT,
        env=env_for_subprocess(
            MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
            STOCK_ASSETS_DATA_DIR=str(tmp_path / "data"),
            DAGSTER_HOME=str(home),
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_a_cli_run_prints_its_steps_not_dagster_debug_events(tmp_path: Path) -> None:
    done = _materialize(tmp_path, {"deploy_decision": {"accuracy_threshold": 0.0}})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    lines = output.splitlines()
    assert not [line for line in lines if " - DEBUG - " in line], output[-3000:]
    assert "Downloading artifacts" not in output and "%|" not in output
    infos = [line for line in lines if " - INFO - " in line]
    assert any("model.train_best" in line and "test accuracy" in line for line in infos)
    assert any("deploy_decision" in line and "Deploy" in line for line in infos)
    assert len(lines) < 40, f"{len(lines)} lines:\n{output}"


@pytest.mark.slow
def test_a_failing_step_and_warnings_still_show(tmp_path: Path) -> None:
    """A value's rule fails ``stock_data``: the failure and its message reach the terminal."""
    done = _materialize(tmp_path, {"stock_data": {"days": 10}})
    output = done.stdout + done.stderr
    assert done.returncode != 0
    errors = [line for line in output.splitlines() if " - ERROR - " in line]
    assert any("stock_data" in line and "STEP_FAILURE" in line for line in errors), output[-3000:]
    assert "days=10 is too small" in output
    assert not [line for line in output.splitlines() if " - DEBUG - " in line]
