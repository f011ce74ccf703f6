"""A promotion by hand while a run deploys. The run reports the real state.

The race is made deterministic, with real parts only: the run's own promotion goes through the
real registry, then a real ``stock-registry promote`` process moves production back to the
earlier version before ``deployed_model`` reads the registry again. The run must not claim its
own version as production when the registry ended elsewhere.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from dagster import DagsterInstance, materialize
from mlflow import MlflowClient

from stock_assets.core.values import Promotion
from stock_assets.definitions import defs
from stock_assets.mlflow_ops import registry
from stock_assets.mlflow_ops.registry import promote as registry_promote
from tests.conftest import PROJECT_ROOT, env_for_subprocess, failure_text, mlflow_run_for

APPROVE_ALWAYS = {
    "deploy_decision": {"config": {"accuracy_threshold": 0.0, "challenge_production": False}}
}


def promoted_then_raced(client: MlflowClient, version: str) -> Promotion:
    """The registry's promotion; right after it, a real CLI promotes version 1."""
    promoted = registry_promote(client, version)
    racer = subprocess.run(
        [sys.executable, "-m", "stock_assets.mlflow_ops.registry_cli", "promote", "1"],
        cwd=PROJECT_ROOT,
        env=env_for_subprocess(MLFLOW_TRACKING_URI=client.tracking_uri),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert racer.returncode == 0, racer.stderr
    return promoted


@pytest.mark.slow
def test_a_run_reports_where_production_really_is_after_a_racing_promotion(
    data_dir: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = materialize(
        [*defs.assets, *defs.asset_checks],
        resources=defs.resources,
        run_config={"ops": APPROVE_ALWAYS},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert first.success, failure_text(first)
    monkeypatch.setattr(registry, "promote", promoted_then_raced)
    second = materialize(
        [*defs.assets, *defs.asset_checks],
        resources=defs.resources,
        run_config={"ops": APPROVE_ALWAYS},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert second.success, failure_text(second)

    registered = second.output_for_node("model").registered_version
    assert registered != "1"
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("stock-prediction", "production").version) == "1"
    # The run says what the registry says, not what it meant to do.
    run = mlflow_run_for(second)
    assert run.data.tags["production_version"] == "1"
    (event,) = second.asset_materializations_for_node("deployed_model")
    assert event.metadata["production_version_after"].value == "1"
    assert event.metadata["version"].value == registered
