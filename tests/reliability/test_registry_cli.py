"""Defect 6: the registry CLI normalises version strings and keeps tags, alias and history whole."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from stock_assets.mlflow_ops.registry import HISTORY_TAG, REGISTERED_MODEL_NAME, STAGE_TAG
from tests.reliability.helpers import BIN, Sandbox

pytestmark = pytest.mark.slow


def _registry(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "stock-registry"), *args], env=sandbox.env(), capture_output=True, text=True
    )


def _state(client: MlflowClient) -> tuple[str, dict[str, str], str]:
    model = client.get_registered_model(REGISTERED_MODEL_NAME)
    stages = {
        str(mv.version): mv.tags.get(STAGE_TAG, "")
        for mv in client.search_model_versions(f"name = '{REGISTERED_MODEL_NAME}'")
    }
    return str(model.aliases.get("production")), stages, model.tags.get(HISTORY_TAG, "")


def test_odd_version_strings_are_normalised_or_refused(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    sandbox.data.mkdir(parents=True)
    client = sandbox.client()  # a real SQLite store with three versions
    run = client.create_run(client.create_experiment("scratch"))
    client.create_registered_model(REGISTERED_MODEL_NAME)
    for _ in range(3):
        client.create_model_version(
            REGISTERED_MODEL_NAME, f"runs:/{run.info.run_id}/model", run.info.run_id
        )

    assert _registry(sandbox, "promote", "1").returncode == 0
    for odd in ("01", " 1"):
        done = _registry(sandbox, "promote", odd)
        assert done.returncode == 0 and "nothing changed" in done.stdout, (odd, done.stderr)
    assert _state(client) == ("1", {"1": "production", "2": "", "3": ""}, "1")

    assert _registry(sandbox, "promote", "002").returncode == 0
    assert _state(client) == ("2", {"1": "archived", "2": "production", "3": ""}, "1,2")

    for bad in ("x", "0"):
        done = _registry(sandbox, "promote", bad)
        assert done.returncode == 2, bad
        assert done.stderr.startswith("error: version") and "Traceback" not in done.stderr
    assert _state(client) == ("2", {"1": "archived", "2": "production", "3": ""}, "1,2")

    assert _registry(sandbox, "show", " 02").returncode == 0
    assert _registry(sandbox, "rollback").returncode == 0
    assert _state(client) == ("1", {"1": "production", "2": "archived", "3": ""}, "1")
