"""`make dev` as a user runs it in a terminal: Ctrl+C stops every process it started.

A terminal's Ctrl+C is SIGINT to the foreground process group: make, the recipe's command and
all they started. The test starts `make dev` leading a group of its own, launches a run (each
step in a process of its own, as at scale) and sends SIGINT to the group while a step runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, env_for_subprocess
from tests.support.processes import free_port, group_processes
from tests.test_dagster_dev import STATUS, _graphql, _launch, launchpad_defaults

#: What a user may wait after Ctrl+C for the terminal to come back.
STOP_WITHIN = 15.0


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _members(pgid: int) -> list[str]:
    """Every live process of the group, make included (group_processes leaves make out)."""
    names = group_processes(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return names
    make = subprocess.run(["ps", "-o", "stat=,comm=", "-g", str(pgid)], capture_output=True)
    rows = [line.split() for line in make.stdout.decode().splitlines()]
    return names + [comm for stat, comm in rows if comm == "make" and not stat.startswith("Z")]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTP address that accepts connections and never answers: a hung tracking server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def tracking_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The MLflow store of `make dev`: a SQLite file unless the test asks for a hung server."""
    if "silent_server" in request.fixturenames:
        return request.getfixturevalue("silent_server")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def make_dev(tmp_path: Path, tracking_uri: str) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    """`make dev` on a free port, its own Dagster home, data dir and MLflow store."""
    port = free_port()
    log_path = tmp_path / "make-dev.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "dev", f"DAGSTER_PORT={port}"],
            cwd=PROJECT_ROOT,
            env=env_for_subprocess(
                DAGSTER_HOME=str(tmp_path / "dagster_home"),
                STOCK_ASSETS_DATA_DIR=str(tmp_path / "data"),
                MLFLOW_TRACKING_URI=tracking_uri,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a group of its own, as a terminal's foreground job
            preexec_fn=_default_signals,
        )
        url = f"http://127.0.0.1:{port}/graphql"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    _graphql(url, "{ version }", {})
                    break
                except OSError:
                    assert process.poll() is None, log_path.read_text()[-3000:]
                    assert time.monotonic() < deadline, "make dev did not answer within 120 s"
                    time.sleep(1)
            yield process, url, log_path
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _stop_time(process: subprocess.Popen) -> tuple[float, list[str]]:
    """SIGINT to the group as a terminal's Ctrl+C; seconds until none of it is left."""
    os.killpg(process.pid, signal.SIGINT)
    start = time.monotonic()
    while time.monotonic() - start < 60:
        process.poll()
        left = _members(process.pid)
        if not left:
            break
        time.sleep(0.2)
    return time.monotonic() - start, left


@pytest.mark.slow
def test_ctrl_c_during_a_run_stops_every_process_within_15_s(make_dev) -> None:
    """A run's steps in processes of their own (a forkserver's children) when Ctrl+C comes."""
    process, url, log_path = make_dev
    config = launchpad_defaults()
    config["ops"]["stock_data"]["config"]["days"] = 2000  # steps that take a while
    config["execution"] = {"config": {"multiprocess": {}}}
    run_id = _launch(url, config)
    deadline = time.monotonic() + 120
    while (
        "forkserver"
        not in subprocess.run(
            ["ps", "-o", "args=", "-g", str(process.pid)], capture_output=True, text=True
        ).stdout
    ):  # a step's process is forking
        status = _graphql(url, STATUS, {"id": run_id})["runOrError"]["status"]
        assert status in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED"), status
        assert time.monotonic() < deadline, "the run's steps did not start within 120 s"
        time.sleep(0.5)
    time.sleep(2)

    took, left = _stop_time(process)
    assert not left, f"still running {took:.0f} s after Ctrl+C: {left}"
    assert took <= STOP_WITHIN, f"stopping took {took:.1f} s"
    assert process.returncode is not None


@pytest.mark.slow
def test_idle_terminal_is_quiet_and_ctrl_c_stops_every_process(make_dev) -> None:
    """The UI answering, no run: the terminal names the UI's address and none of the sensor
    daemon's "skipped" lines (three sensors tick as the daemon starts, then every 30 s), and
    Ctrl+C ends make, dagster dev and all its servers."""
    process, url, log_path = make_dev
    time.sleep(8)  # the daemon's first sensor ticks
    output = log_path.read_text()
    assert f"Dagster UI: {url.removesuffix('/graphql')}" in output, output[-2000:]
    assert "SensorDaemon" not in output and "skipped" not in output, output[-2000:]
    took, left = _stop_time(process)
    assert not left, f"still running {took:.0f} s after Ctrl+C: {left}"
    assert took <= STOP_WITHIN, f"stopping took {took:.1f} s"


@pytest.mark.slow
@pytest.mark.usefixtures("silent_server")
def test_ctrl_c_while_mlflow_hangs_stops_every_process_within_15_s(make_dev) -> None:
    """The tracking server accepts and never answers: the run's MLflow calls wait on it (10 s
    per attempt, 3 attempts) in the run's process, which Dagster shields from SIGINT."""
    process, url, log_path = make_dev
    config = launchpad_defaults()
    run_id = _launch(url, config)
    deadline = time.monotonic() + 120
    while _graphql(url, STATUS, {"id": run_id})["runOrError"]["status"] != "STARTED":
        assert time.monotonic() < deadline, "the run did not start within 120 s"
        time.sleep(0.5)
    time.sleep(3)

    took, left = _stop_time(process)
    assert not left, f"still running {took:.0f} s after Ctrl+C: {left}"
    assert took <= STOP_WITHIN, f"stopping took {took:.1f} s"
