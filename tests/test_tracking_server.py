"""The pipeline against a real ``mlflow server`` (SQLite store, proxied local artifacts).

One server per module, started with ``stock-tracking-server`` on a free port of
127.0.0.1 with its own data directory, and killed (with its workers) afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
from dagster import ExecuteInProcessResult
from mlflow.tracking._tracking_service import utils as tracking_utils

from stock_assets.core.features import FEATURE_COLUMNS
from stock_assets.core.splits import labelled_rows_in
from stock_assets.defs.io_manager import latest_path
from stock_assets.defs.resources import EXPERIMENT_NAME, KFP_RUN_TAG
from stock_assets.defs.storage import read_value
from stock_assets.mlflow_ops.registry import REGISTERED_MODEL_NAME, production_version
from stock_assets.mlflow_ops.tracking_server import (
    ARTIFACTS_DIR,
    BACKEND_DB,
    LANDING_QUERY,
    build_server_command,
    wait_until_ready,
)
from tests.conftest import PROJECT_ROOT, failure_text, run_graph
from tests.kfp_helpers import export, run_yaml
from tests.support.processes import free_port, stop_group

APPROVE_ALL = {"deploy_decision": {"accuracy_threshold": 0.0}}
STARTUP_TIMEOUT = 90.0
DOWN_RUN_LIMIT = 60.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Server:
    """A running tracking server: its URL and the data directory it owns."""

    url: str
    data_dir: Path

    @property
    def artifacts(self) -> Path:
        return self.data_dir / ARTIFACTS_DIR

    def client(self) -> mlflow.MlflowClient:
        """A REST client of this server."""
        return mlflow.MlflowClient(tracking_uri=self.url, registry_uri=self.url)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``stock-tracking-server`` on a free port, in its own process group."""
    data = tmp_path_factory.mktemp("server-data")
    port = free_port()
    log = data.parent / f"{data.name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stock_assets.mlflow_ops.tracking_server",
                *("--port", str(port), "--data-dir", str(data), "--workers", "1"),
            ],
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url, STARTUP_TIMEOUT, process)
        except (TimeoutError, RuntimeError) as error:
            pytest.fail(f"{error}\n--- server log ---\n{log.read_text()[-4000:]}")
        yield Server(url=url, data_dir=data)
    finally:
        stop_group(process)


@pytest.fixture(scope="module")
def client_data(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The pipeline's environment for the module: tracking URI = the server, own data dir.

    MLflow's global tracking URI is restored afterwards so other modules are unaffected.
    """
    data = tmp_path_factory.mktemp("client-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
        patch.setenv("MLFLOW_TRACKING_URI", server.url)
        patch.setenv("STOCK_ASSETS_DATA_DIR", str(data))
        mlflow.set_tracking_uri(server.url)
        yield data


@pytest.fixture(scope="module")
def deployed(server: Server, client_data: Path) -> ExecuteInProcessResult:
    """The whole graph, threshold 0, tracked on the server: production is registered there."""
    result = run_graph(APPROVE_ALL)
    assert result.success, failure_text(result)
    return result


def _all_failure_text(result: ExecuteInProcessResult) -> str:
    """failure_text plus the run-level error chain.

    In process, a resource that fails to initialise fails the run before any step starts, so
    there is no step failure for failure_text to read.
    """
    parts = [failure_text(result)]
    run_failure = result.get_run_failure_event()
    error = run_failure.job_failure_data.error if run_failure else None
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(p for p in parts if p)


def _experiment_id(server: Server) -> str:
    experiment = server.client().get_experiment_by_name(EXPERIMENT_NAME)
    assert experiment is not None
    return experiment.experiment_id


def _runs(server: Server, filter_string: str = "") -> list[mlflow.entities.Run]:
    return server.client().search_runs([_experiment_id(server)], filter_string)


def _versions(server: Server) -> list[str]:
    found = server.client().search_model_versions(f"name = '{REGISTERED_MODEL_NAME}'")
    return sorted(v.version for v in found)


def test_server_command() -> None:
    command = build_server_command("127.0.0.1", 5001, "/srv/data")
    assert (
        Path(command[0]).name == "mlflow" and Path(command[0]).parent == Path(sys.executable).parent
    )
    assert command[1] == "server"
    flags = [a for a in command[2:] if a.startswith("--")]
    options = {a: command[command.index(a) + 1] for a in flags if a != "--serve-artifacts"}
    assert options["--host"] == "127.0.0.1" and options["--port"] == "5001"
    assert options["--backend-store-uri"] == f"sqlite:////srv/data/{BACKEND_DB}"
    assert options["--artifacts-destination"] == f"/srv/data/{ARTIFACTS_DIR}"
    assert "--serve-artifacts" in command and "--default-artifact-root" not in command


def test_wait_until_ready_times_out_with_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"{url} did not become ready within 1s"):
        wait_until_ready(url, 1.0)
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_graph_run_is_recorded_on_the_server(
    server: Server, client_data: Path, deployed: ExecuteInProcessResult, tmp_path: Path
) -> None:
    client = server.client()
    runs = _runs(server, f"tags.dagster_run_id = '{deployed.run_id}'")
    assert len(runs) == 1, f"expected one MLflow run for {deployed.run_id}, found {len(runs)}"
    run = runs[0]
    assert run.info.status == "FINISHED"
    for name in ("accuracy", "precision", "recall", "f1", "baseline_accuracy"):
        assert 0.0 <= run.data.metrics[name] <= 1.0
    assert run.data.tags["deploy_decision"] == "approved"
    # Artifacts go through the server's proxy, not to a path the client writes itself.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")

    local = Path(
        client.download_artifacts(run.info.run_id, "evaluation/confusion_matrix.png", str(tmp_path))
    )
    content = local.read_bytes()
    assert content.startswith(PNG_MAGIC)
    stored = list(server.artifacts.rglob("confusion_matrix.png"))
    assert len(stored) == 1 and stored[0].read_bytes() == content
    assert run.info.run_id in stored[0].parts
    # Nothing of MLflow's landed in the client's data dir (no local store, no artifacts).
    assert not list(client_data.rglob("*.png"))
    assert not list(client_data.rglob("MLmodel"))
    assert not (client_data / "mlflow.db").exists()
    assert not (client_data / "mlartifacts").exists()
    assert list(server.artifacts.rglob("MLmodel"))


@pytest.mark.slow
def test_logged_and_production_models_load_from_the_server(
    server: Server, client_data: Path, deployed: ExecuteInProcessResult
) -> None:
    model = deployed.output_for_node("model")
    table = read_value(latest_path(client_data, "features"))
    features = labelled_rows_in(table, model.test_window).tail(20)[FEATURE_COLUMNS]
    logged = mlflow.pyfunc.load_model(model.model_uri)
    expected = mlflow.sklearn.load_model(model.model_uri).predict(features)

    np.testing.assert_array_equal(np.asarray(logged.predict(features)), expected)

    version = production_version(server.client())
    assert version is not None
    assert deployed.output_for_node("deployed_model").version == version
    served = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL_NAME}@production")
    np.testing.assert_array_equal(served.predict(features)["direction"], expected)


@pytest.mark.slow
def test_registry_command_goes_through_the_server(
    server: Server, deployed: ExecuteInProcessResult
) -> None:
    version = deployed.output_for_node("deployed_model").version
    done = subprocess.run(
        [sys.executable, "-m", "stock_assets.mlflow_ops.registry_cli", "list"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "MLFLOW_TRACKING_URI": server.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert "production" in rows[version]


@pytest.mark.slow
def test_kfp_pipeline_is_recorded_on_the_server(
    server: Server, client_data: Path, deployed: ExecuteInProcessResult, tmp_path: Path
) -> None:
    package = tmp_path / "pipeline.yaml"
    # A loopback server: fine for kfp.local, which runs the tasks on this machine.
    done = export(package, "--allow-local-tracking-uri", MLFLOW_TRACKING_URI=server.url)
    assert done.returncode == 0, done.stderr
    assert server.url in package.read_text()
    kfp_runs = f"tags.{KFP_RUN_TAG} != ''"
    before = {r.info.run_id for r in _runs(server, kfp_runs)}
    production = production_version(server.client())

    succeeded, _ = run_yaml(
        package,
        tmp_path / "root",
        accuracy_threshold=1.0,
        days=200,
        model_type="random_forest",  # one model, no candidate comparison: faster
    )
    assert succeeded

    new = [r for r in _runs(server, kfp_runs) if r.info.run_id not in before]
    assert len(new) == 1, f"expected one MLflow run for the KFP run, got {len(new)}"
    run = new[0]
    assert run.data.tags[KFP_RUN_TAG]
    assert run.info.status == "FINISHED"
    assert run.data.tags["deploy_decision"] == "rejected"
    assert run.data.params["data_days"] == "200"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert list((server.artifacts).rglob(f"{run.info.run_id}/artifacts/evaluation/*.png"))
    assert production_version(server.client()) == production


@pytest.mark.slow
def test_server_down_fails_fast_naming_the_uri(
    server: Server,
    client_data: Path,
    deployed: ExecuteInProcessResult,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    production = production_version(server.client())
    versions = _versions(server)
    runs = {r.info.run_id for r in _runs(server)}
    assert production is not None

    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    monkeypatch.setenv("STOCK_ASSETS_DATA_DIR", str(tmp_path / "data"))
    started = time.monotonic()
    try:
        result = run_graph(APPROVE_ALL)
    finally:
        elapsed = time.monotonic() - started
        mlflow.set_tracking_uri(server.url)
    print(f"run_graph against {down} (nothing listening) failed after {elapsed:.1f}s")

    assert not result.success
    assert elapsed < DOWN_RUN_LIMIT, f"took {elapsed:.1f}s to fail"
    message = _all_failure_text(result)
    assert f"MLflow tracking server at {down} is not reachable" in message, message
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "deployed_model" not in materialised
    assert not (tmp_path / "data" / "mlflow.db").exists()  # no silent fallback to a local store
    # The working server's registry and runs are untouched.
    assert production_version(server.client()) == production
    assert _versions(server) == versions
    assert {r.info.run_id for r in _runs(server)} == runs


@pytest.mark.slow
def test_the_printed_address_opens_the_training_runs(server: Server, tmp_path: Path) -> None:
    """`make mlflow` prints the experiment's runs, and a browser lands there."""
    from tests.test_mlflow_ui import LANDING, RUN_NAME, check_landing_page

    log = server.data_dir.parent / f"{server.data_dir.name}.log"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not LANDING.search(log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.25)
    found = LANDING.search(log.read_text())
    assert found, log.read_text()[-4000:]
    client = server.client()
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    runs = f"/#/experiments/{experiment.experiment_id}/runs?{LANDING_QUERY}"
    assert found.group(1) == server.url + runs
    client.create_run(experiment.experiment_id, run_name=RUN_NAME)
    if not client.search_registered_models(f"name = '{REGISTERED_MODEL_NAME}'"):
        client.create_registered_model(REGISTERED_MODEL_NAME)
    landed = check_landing_page(found.group(1), tmp_path / "profile", tmp_path / "landing.png")
    assert f"/experiments/{experiment.experiment_id}/runs" in landed
    assert "StarletteDeprecationWarning" not in log.read_text()
