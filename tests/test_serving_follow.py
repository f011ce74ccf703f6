"""``stock-serve`` follows the production alias: after ``stock-registry
promote`` or ``rollback`` the real server, within a few intervals and without a restart, answers
with the version the alias names (``/version``, the ``X-Model-Version`` header and the
predictions agree), no request fails during the swap, a version that fails to load never
replaces the working one, and a server pinned to a version never changes."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.dummy import DummyRegressor

from stock_assets.mlflow_ops.registry import REGISTERED_MODEL_NAME
from stock_assets.mlflow_ops.serving.follow import DEFAULT_INTERVAL, Follower
from stock_assets.mlflow_ops.serving.server import build_serve_command, parse_args
from tests.conftest import PROJECT_ROOT, env_for_subprocess
from tests.support.processes import free_port, stop_group

BIN = Path(sys.executable).parent
ROW = [1.0] * 22
#: Seconds within which every worker serves the version the alias names (interval 1 s).
FOLLOW_BOUND_S = 30.0


# --- options ------------------------------------------------------------------------------------


def test_follow_options_are_read_and_checked(capsys: pytest.CaptureFixture) -> None:
    assert parse_args([]).follow_interval == DEFAULT_INTERVAL == 30
    assert parse_args(["--follow-interval", "0"]).follow_interval == 0
    assert parse_args(["--model-version", "03"]).model_version == "3"
    for option, expected in (
        ("--follow-interval=-1", "expected seconds >= 0 (0 = off), got '-1'"),
        ("--model-version=x", "expected a version number (1, 2, ...), got 'x'"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse_args([option])
        assert exit_info.value.code == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last == f"stock-serve: error: argument {option.split('=')[0]}: {expected}"
    _, env = build_serve_command(
        "h", 1, "sqlite:///x.db", follow_interval=1.5, model_version="3", bin_dir="/b", environ={}
    )
    assert env["STOCK_SERVE_FOLLOW_INTERVAL"] == "1.5"
    assert env["STOCK_SERVE_MODEL_URI"] == "models:/stock-prediction/3"


# --- a real store with two small models ---------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLite store holding versions 1 and 2, constant models answering 1.0 and 2.0; 1 in
    production."""
    folder = tmp_path_factory.mktemp("follow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("follow", artifact_location=(folder / "a").as_uri())
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        for answer in (1.0, 2.0):
            with mlflow.start_run(experiment_id=experiment):
                model = DummyRegressor(strategy="constant", constant=answer)
                model.fit(np.zeros((2, 22)), [answer, answer])
                info = mlflow.sklearn.log_model(
                    model, name="model", serialization_format="cloudpickle"
                )
            mlflow.register_model(info.model_uri, REGISTERED_MODEL_NAME)
    finally:
        mlflow.set_tracking_uri(previous)
    assert registry(uri, "promote", "1").returncode == 0
    yield uri


def registry(uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``stock-registry`` command on ``uri``."""
    done = subprocess.run(
        [str(BIN / "stock-registry"), *args],
        env=env_for_subprocess(MLFLOW_TRACKING_URI=uri),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


@dataclass
class Server:
    port: int
    log: Path
    process: subprocess.Popen = field(repr=False)

    def log_text(self) -> str:
        return self.log.read_text()


@pytest.fixture
def start(store: str, tmp_path: Path) -> Iterator:
    """Starts ``stock-serve`` on ``store`` with the given options; stops every one started."""
    started: list[Server] = []

    def run(*options: str) -> Server:
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [str(BIN / "stock-serve"), "--port", str(port), *options],
                cwd=PROJECT_ROOT,
                env=env_for_subprocess(MLFLOW_TRACKING_URI=store, PYTHONUNBUFFERED="1"),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(port, log, process)
        started.append(server)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, server.log_text()
            try:
                if get_version(port) is not None:
                    return server
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"stock-serve did not answer:\n{server.log_text()}")

    yield run
    for server in started:
        stop_group(server.process)


def get_version(port: int) -> str | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/version")
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.status == 200, body
        assert response.getheader("X-Model-Version") == body["version"]
        return body["version"]
    finally:
        connection.close()


def predict(port: int) -> tuple[int, str | None, str]:
    """One ``/invocations`` on a new connection: status, X-Model-Version, the version the
    prediction comes from (the constant model's answer)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps({"inputs": [ROW]})
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            return response.status, response.getheader("X-Model-Version"), str(answer)
        return 200, response.getheader("X-Model-Version"), f"{answer['predictions'][0]:g}"
    finally:
        connection.close()


def wait_for(port: int, version: str, log: str = "") -> float:
    """Seconds until ``/version`` and 20 answers in a row (both workers) name ``version``."""
    started = time.monotonic()
    streak = 0
    while time.monotonic() - started < FOLLOW_BOUND_S:
        status, header, predicted = predict(port)
        assert status == 200, (status, predicted)
        streak = streak + 1 if header == predicted == version else 0
        if streak >= 20 and get_version(port) == version:
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"still not serving version {version} after {FOLLOW_BOUND_S:g} s\n{log}")


class Load:
    """Requests sent without pause from two threads; every answer kept."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers: list[tuple[int, str | None, str]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run) for _ in range(2)]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.answers.append(predict(self.port))
            except Exception as error:  # noqa: BLE001 - a failed request is what we count
                self.errors.append(repr(error))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


@pytest.mark.slow
def test_serving_follows_promote_and_rollback_without_failing_a_request(store, start) -> None:
    registry(store, "promote", "1")
    server = start("--follow-interval", "1")
    assert wait_for(server.port, "1") < FOLLOW_BOUND_S
    with Load(server.port) as load:
        assert "production: version 2 (was 1)" in registry(store, "promote", "2").stdout
        wait_for(server.port, "2", server.log_text())
        assert "production: version 1 (was 2)" in registry(store, "rollback").stdout
        wait_for(server.port, "1", server.log_text())
    assert load.errors == []
    assert len(load.answers) > 50
    assert {status for status, _, _ in load.answers} == {200}, load.answers
    # The header always names the model that answered: the swap is one step.
    assert all(header == predicted for _, header, predicted in load.answers)
    assert {header for _, header, _ in load.answers} == {"1", "2"}
    log = server.log_text()
    assert "production: version 1 -> version 2 (models:/stock-prediction@production" in log
    assert "production: version 2 -> version 1 (models:/stock-prediction@production" in log
    assert "Traceback" not in log


@pytest.mark.slow
def test_a_version_that_fails_to_load_never_replaces_the_served_one(store, start) -> None:
    registry(store, "promote", "2")
    server = start("--follow-interval", "1")
    wait_for(server.port, "2")
    client = MlflowClient(tracking_uri=store)
    broken = client.create_model_version(REGISTERED_MODEL_NAME, source="file:///nowhere/model")
    registry(store, "promote", str(broken.version))
    deadline = time.monotonic() + FOLLOW_BOUND_S
    while server.log_text().count(f"version {broken.version} failed to load") < 2:
        assert time.monotonic() < deadline, server.log_text()
        assert predict(server.port) == (200, "2", "2")
        time.sleep(0.2)
    time.sleep(3)  # three more look-ups: still no new line, still version 2
    assert predict(server.port) == (200, "2", "2") and get_version(server.port) == "2"
    log = server.log_text()
    assert log.count(f"version {broken.version} failed to load") == 2, log  # once per worker
    assert "still serving version 2" in log and "Traceback" not in log
    registry(store, "promote", "1")  # a working version is followed again
    wait_for(server.port, "1", server.log_text())


@pytest.mark.slow
def test_a_server_pinned_to_a_version_never_changes(store, start) -> None:
    registry(store, "promote", "2")
    server = start("--model-version", "1", "--follow-interval", "1", "--workers", "1")
    assert predict(server.port) == (200, "1", "1")
    registry(store, "promote", "1")
    registry(store, "promote", "2")
    time.sleep(3)
    assert predict(server.port) == (200, "1", "1") and get_version(server.port) == "1"
    assert "serving models:/stock-prediction/1 from" in server.log_text()


def test_no_follower_thread_for_a_pinned_version() -> None:
    """A version URI is never looked up again, whatever the interval."""
    asked: list[str] = []

    def lookup(name: str, alias: str) -> str | None:
        asked.append(alias)
        return "1"

    pinned = Follower("models:/m/4", 1.0, lookup=lookup, load=lambda uri: uri)
    assert (pinned.current.version, pinned.current.app, pinned.following) == (
        "4",
        "models:/m/4",
        False,
    )
    assert asked == []
    following = Follower("models:/m@production", 1.0, lookup=lookup, load=lambda uri: uri)
    assert following.current.app == "models:/m/1" and following.following


@pytest.mark.slow
def test_a_registry_that_cannot_be_read_is_logged_once_and_the_model_kept(
    store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The real MLflow client against a tracking server that is down, then back: one warning,
    one line when it answers again, the served model kept throughout."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    where = [store]

    def lookup(name: str, alias: str) -> str | None:
        return MlflowClient(tracking_uri=where[0]).get_registered_model(name).aliases.get(alias)

    registry(store, "promote", "1")
    follower = Follower(
        "models:/stock-prediction@production", 1.0, lookup=lookup, load=lambda uri: uri
    )
    assert follower.current.version == "1"
    where[0] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level("INFO", logger="uvicorn.error"):
        for _ in range(3):
            assert follower.check() is False
        assert follower.current.app == "models:/stock-prediction/1"
        where[0] = store
        assert follower.check() is False
        registry(store, "promote", "2")
        assert follower.check() is True
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3, messages
    assert messages[0].startswith("the registry could not be read (")
    assert "still serving version 1, asking again every 1 s" in messages[0]
    assert messages[1].startswith("the registry answers and 'production' names version 1")
    assert messages[2].startswith("production: version 1 -> version 2")
    assert follower.current.app == "models:/stock-prediction/2"
