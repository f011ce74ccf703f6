"""Shared fixtures: an isolated data directory and MLflow store, and graph runners."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# OpenMP threads (scikit-learn's histogram gradient boosting) sleep rather than spin while they
# wait: on a machine whose cores are busy (other tests' processes, anything else), spinning
# threads made a one-second fit take five. Read once, when the OpenMP runtime loads, which is
# after this line; same threads, same results; inherited by the processes the tests start.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import mlflow
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult, materialize
from mlflow.tracking._tracking_service import utils as tracking_utils

from stock_assets.definitions import defs
from stock_assets.defs.config import run_config

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def restore_mlflow_tracking_uri() -> Iterator[None]:
    """Undo a test's ``mlflow.set_tracking_uri``, which MLflow 3 also writes to
    ``os.environ["MLFLOW_TRACKING_URI"]``: no test inherits another's store."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    uri = tracking_utils._tracking_uri
    yield
    tracking_utils._tracking_uri = uri
    if env is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = env


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLite MLflow store shared by one test module, set through MLFLOW_TRACKING_URI."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("STOCK_ASSETS_DATA_DIR", str(root / "data"))
        mlflow.set_tracking_uri(uri)
        yield uri


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_store: str) -> Path:
    """A fresh data directory for one test (asset files), on the module's MLflow store."""
    path = tmp_path / "data"
    monkeypatch.setenv("STOCK_ASSETS_DATA_DIR", str(path))
    return path


APPROVE_ALL = {"deploy_decision": {"accuracy_threshold": 0.0}}


@pytest.fixture(scope="module")
def deployed(
    mlflow_store: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ExecuteInProcessResult, Path]:
    """The whole graph with defaults and threshold 0: production points at its model."""
    with pytest.MonkeyPatch.context() as patch:
        data = tmp_path_factory.mktemp("deployed")
        patch.setenv("STOCK_ASSETS_DATA_DIR", str(data))
        result = run_graph(APPROVE_ALL)
    assert result.success, failure_text(result)
    return result, data


def run_graph(
    ops_config: dict[str, dict[str, Any]] | None = None, selection: Any = None
) -> ExecuteInProcessResult:
    """Materialise the whole graph (or ``selection``) in process, as a test of real Dagster.

    ``ops_config`` is each asset's config by asset name (:func:`run_config` places ``model``'s).
    """
    return materialize(
        [*defs.assets, *defs.asset_checks],
        resources=defs.resources,
        run_config=run_config(ops_config or {}),
        selection=selection,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def failure_text(result: ExecuteInProcessResult) -> str:
    """Every step failure's message and causes, and failed checks' descriptions, as one string."""
    parts = [
        f"{e.asset_check_key.name}: {e.description}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    errors = [event.step_failure_data.error for event in result.get_step_failure_events()]
    run_failure = result.get_run_failure_event()
    if run_failure is not None and run_failure.job_failure_data.error is not None:
        errors.append(run_failure.job_failure_data.error)  # e.g. a resource that failed to start
    for error in errors:
        while error is not None:
            parts.append(error.message)
            error = error.cause
    return "\n".join(parts)


def mlflow_run_for(result: ExecuteInProcessResult) -> mlflow.entities.Run:
    """The one MLflow run tagged with this Dagster run's id (asserts there is exactly one)."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.dagster_run_id = '{result.run_id}'",
        output_format="list",
    )
    assert len(runs) == 1, f"expected one MLflow run for {result.run_id}, found {len(runs)}"
    return runs[0]


def production_version() -> str | None:
    """The registry version behind ``stock-prediction@production``, or None."""
    from stock_assets.mlflow_ops.registry import production_version as lookup

    return lookup(mlflow.MlflowClient())


def env_for_subprocess(**overrides: str) -> dict[str, str]:
    """The current environment plus ``overrides``, for CLI tests."""
    env = dict(os.environ)
    env.update(overrides)
    return env
