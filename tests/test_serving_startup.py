"""How ``stock-serve`` starts: the uvicorn command it builds, its refusal when no model is there."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from stock_assets.mlflow_ops.serving.server import (
    build_serve_command,
    missing_model_reason,
    sqlite_path,
)
from tests.conftest import PROJECT_ROOT, env_for_subprocess
from tests.support.processes import free_port


def serving_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "stock_assets.mlflow_ops.serving.server", *args]


def test_build_serve_command_is_uvicorn_on_the_guarded_app_with_the_store() -> None:
    environ = {"PATH": "/usr/bin", "MLFLOW_TRACKING_URI": "sqlite:///elsewhere.db", "KEEP": "1"}
    argv, env = build_serve_command(
        "127.0.0.1",
        5002,
        "sqlite:////data/mlflow.db",
        python="/venv/bin/python",
        bin_dir="/venv/bin",
        environ=environ,
    )
    assert argv == [
        "/venv/bin/python",
        "-m",
        "uvicorn",
        "--factory",
        "stock_assets.mlflow_ops.serving.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        "5002",
        "--workers",
        "2",
        "--http",
        "stock_assets.mlflow_ops.serving.protocol:GuardedProtocol",
        "--limit-concurrency",
        "64",
        "--timeout-keep-alive",
        "5",
        "--no-access-log",
    ]
    assert env == {
        "PATH": f"/venv/bin{os.pathsep}/usr/bin",
        "MLFLOW_TRACKING_URI": "sqlite:////data/mlflow.db",
        "KEEP": "1",
    }
    assert environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"  # not mutated
    argv, env = build_serve_command(
        "0.0.0.0",
        8080,
        "http://127.0.0.1:5000",
        workers=3,
        max_request_bytes=1000,
        read_timeout=2.5,
        max_waiting=8,
        bin_dir="/b",
        environ={},
    )
    assert argv[0] == sys.executable
    assert argv[argv.index("--workers") + 1] == "3"
    assert env == {
        "PATH": "/b",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "STOCK_SERVE_MAX_REQUEST_BYTES": "1000",
        "STOCK_SERVE_READ_TIMEOUT": "2.5",
        "STOCK_SERVE_MAX_WAITING": "8",
    }


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:////abs/mlflow.db") == Path("/abs/mlflow.db")
    assert sqlite_path("sqlite:///rel/mlflow.db?timeout=5") == Path("rel/mlflow.db")
    assert sqlite_path("http://127.0.0.1:5000") is None


def run_serving_expecting_refusal(env: dict[str, str], tracking_uri: str, reason: str) -> None:
    """``stock-serve`` exits 1 at once, explaining what is missing and why."""
    started = time.monotonic()
    proc = subprocess.run(
        serving_command("--port", "1"),  # never bound: it must stop before serving
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - started < 30
    assert proc.stdout == ""
    for expected in (
        "no production model to serve",
        "registered model 'stock-prediction'",
        "alias 'production'",
        tracking_uri,
        reason,
        "accuracy_threshold",
        "dagster asset materialize --select 'stock_data*' -m stock_assets.definitions",
        '{"ops": {"deploy_decision": {"config": {"accuracy_threshold": 0.0}}}}',
        "stock-registry promote N",
    ):
        assert expected in proc.stderr, f"{expected!r} not in:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_without_a_store_it_exits_1_and_says_what_to_do(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = env_for_subprocess(MLFLOW_TRACKING_URI=uri, STOCK_ASSETS_DATA_DIR=str(tmp_path))
    run_serving_expecting_refusal(env, uri, f"there is no MLflow store yet at {tmp_path}")
    assert not (tmp_path / "mlflow.db").exists()  # checking did not create one


def test_an_unreachable_tracking_server_is_reported_at_once() -> None:
    before = dict(os.environ)
    started = time.monotonic()
    reason = missing_model_reason(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert time.monotonic() - started < 15
    assert reason is not None and reason.startswith("the store could not be read")
    assert "Connection refused" in reason
    assert dict(os.environ) == before  # the fail-fast HTTP settings were undone


@pytest.mark.slow
def test_without_the_alias_it_exits_1_and_says_what_to_do(tmp_path: Path) -> None:
    """A store of its own: a registered version, none carrying the alias."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    client.search_experiments()  # creates the store
    assert missing_model_reason(uri) == "no model named 'stock-prediction' is registered"
    client.create_registered_model("stock-prediction")
    client.create_model_version("stock-prediction", source="file:///nowhere/model")
    run_serving_expecting_refusal(
        env_for_subprocess(MLFLOW_TRACKING_URI=uri), uri, "none carries the alias 'production'"
    )
