"""The registry command line on a real MLflow store: list, promote, roll back, bad versions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.tracking._tracking_service import utils as tracking_utils
from sklearn.linear_model import LogisticRegression

from stock_assets.mlflow_ops.registry import promote, register_version
from tests.conftest import PROJECT_ROOT, env_for_subprocess


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A store with three registered versions of small real models, the first in production."""
    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(
        "registry-cli-test", artifact_location=(folder / "artifacts").as_uri()
    )
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    made = []
    try:
        for c in (0.1, 1.0, 10.0):
            with mlflow.start_run(experiment_id=experiment_id) as run:
                model = LogisticRegression(C=c).fit(np.array([[0.0], [1.0]]), [0, 1])
                info = mlflow.sklearn.log_model(
                    model, name="model", serialization_format="cloudpickle"
                )
                made.append(
                    register_version(client, info.model_uri, run.info.run_id, {"accuracy": c / 10})
                )
    finally:
        mlflow.set_tracking_uri(previous)
    promote(client, made[0])
    return folder / "mlflow.db", made


@pytest.fixture
def store(template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A copy of the template store for this test alone: no test sees another's promotions."""
    database = tmp_path / "mlflow.db"
    shutil.copyfile(template[0], database)
    uri = f"sqlite:///{database}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    mlflow.set_tracking_uri(uri)
    return uri


@pytest.fixture
def versions(template, store: str) -> list[str]:
    """The three versions, the first in production."""
    return template[1]


def cli(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stock_assets.mlflow_ops.registry_cli", *args],
        cwd=PROJECT_ROOT,
        env=env_for_subprocess(MLFLOW_TRACKING_URI=store),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _aliases() -> dict[str, int]:
    return dict(MlflowClient().get_registered_model("stock-prediction").aliases)


@pytest.mark.slow
def test_promote_archives_the_old_version_and_is_safe_to_repeat(store, versions) -> None:
    first, second, _ = versions
    done = cli(store, "promote", second)
    assert done.returncode == 0, done.stderr
    assert f"production: version {second} (was {first})" in done.stdout
    assert _aliases()["production"] == int(second)
    client = MlflowClient()
    assert client.get_model_version("stock-prediction", first).tags["stage"] == "archived"
    assert client.get_model_version("stock-prediction", second).tags["stage"] == "production"
    again = cli(store, "promote", second)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert _aliases()["production"] == int(second)

    listing = cli(store, "list")
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert "production" in lines[second] and "archived" in lines[first]
    assert lines[versions[2]].split()[1] == "none"


@pytest.mark.slow
def test_rollback_walks_back_then_says_there_is_nothing_left(store, versions) -> None:
    first, second, third = versions
    assert cli(store, "promote", second).returncode == 0
    assert cli(store, "promote", third).returncode == 0
    back = cli(store, "rollback")
    assert back.returncode == 0, back.stderr
    assert _aliases()["production"] == int(second)
    assert MlflowClient().get_model_version("stock-prediction", third).tags["stage"] == "archived"
    assert cli(store, "rollback").returncode == 0
    assert _aliases()["production"] == int(first)
    last = cli(store, "rollback")
    assert last.returncode == 2
    assert "no earlier one to roll back to" in last.stderr
    assert _aliases()["production"] == int(first)


@pytest.mark.slow
def test_bad_version_is_a_clear_error_and_changes_nothing(store, versions) -> None:
    before = _aliases()
    done = cli(store, "promote", "99")
    assert done.returncode == 2
    assert "version '99' of stock-prediction does not exist" in done.stderr
    assert ", ".join(versions) in done.stderr
    assert _aliases() == before


@pytest.mark.slow
def test_show_a_version_without_data_lineage(store, versions) -> None:
    done = cli(store, "show", versions[2])
    assert done.returncode == 0, done.stderr
    run_id = MlflowClient().get_model_version("stock-prediction", versions[2]).run_id
    assert run_id in done.stdout
    data = done.stdout.split("data (content digest, rows, dates):\n")[1].splitlines()[0]
    assert data.strip() == "none recorded (registered before data lineage was recorded)"
    assert done.stdout.rstrip().splitlines()[-1].split()[-1] == _stage(versions[2])


def _stage(version: str) -> str:
    return MlflowClient().get_model_version("stock-prediction", version).tags["stage"]


@pytest.mark.slow
def test_the_library_module_run_as_a_command_names_the_command() -> None:
    """``python -m ...registry`` is the library, not the CLI: it says so, rather than nothing."""
    done = subprocess.run(
        [sys.executable, "-m", "stock_assets.mlflow_ops.registry", "list"],
        cwd=PROJECT_ROOT,
        env=env_for_subprocess(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: the registry's command is stock-registry "
        "(python -m stock_assets.mlflow_ops.registry_cli)"
    )
