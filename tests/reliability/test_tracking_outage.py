"""Against a real tracking server: credentials never written anywhere, and a
server lost mid-run gives one clear line, and its run is closed once the server is back."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.helpers import (
    BIN,
    DEPLOY_ALWAYS,
    FAST_MODEL,
    PROJECT_ROOT,
    Sandbox,
    finish,
    free_port,
    run_ids,
    wait_for_step,
    wait_http,
)

SECRET = "s3cret"


def _server(data: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    process = subprocess.Popen(
        [str(BIN / "stock-tracking-server"), "--port", str(port), "--data-dir", str(data)],
        env=env,
        stdout=open(log, "a"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{port}/health")
    return process


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _error_of(entry):
    """The error a failure event carries (step, run or resource-init failure), if any."""
    event = entry.dagster_event
    data = event.event_specific_data if event is not None else None
    return getattr(data, "error", None)


def _chain(error):
    """The messages of an error and its causes."""
    while error is not None:
        yield error.message.strip()
        error = error.cause


@pytest.mark.slow
def test_credentials_never_written_and_outage_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    server_data = tmp_path / "server"
    server = _server(server_data, port, tmp_path / "server.log")
    sandbox = Sandbox(tmp_path / "client", tracking_uri=f"http://user:{SECRET}@127.0.0.1:{port}")
    ops = {"model": FAST_MODEL, "deploy_decision": DEPLOY_ALWAYS}
    try:
        # A whole run through the server, with the credentials in MLFLOW_TRACKING_URI.
        assert finish(sandbox.materialize(ops, log=tmp_path / "run-ok.log")) == 0
        assert [r.info.status for r in sandbox.mlflow_runs()] == ["FINISHED"]

        # The exporter: with credentials in the URI it refuses, naming the URI redacted.
        for extra in ([], ["--mlflow-tracking-uri", sandbox.tracking_uri]):
            done = subprocess.run(
                [
                    str(BIN / "python"),
                    "-m",
                    "exporters.kfp",
                    "-o",
                    str(tmp_path / "p.yaml"),
                    *extra,
                ],
                cwd=PROJECT_ROOT,
                env=sandbox.env(),
                capture_output=True,
                text=True,
            )
            (tmp_path / "export.log").open("a").write(done.stdout + done.stderr)
            assert done.returncode == 2 and "credentials" in done.stderr
            assert not (tmp_path / "p.yaml").exists()

        # The server dies during `model`: the run fails in bounded time with one clear line.
        known = run_ids(sandbox)
        process = sandbox.materialize(
            {"model": {"candidates": ["reference"]}, "deploy_decision": DEPLOY_ALWAYS},
            log=tmp_path / "run-outage.log",
        )
        lost = wait_for_step(sandbox, "model.plan_candidates", known)
        time.sleep(2)
        _stop(server)
        killed_at = time.monotonic()
        assert finish(process, timeout=180) != 0
        assert time.monotonic() - killed_at < 120
        with sandbox.instance() as instance:
            errors = [_error_of(entry) for entry in instance.all_logs(lost)]
        headlines = [error.message.strip() for error in errors if error is not None]
        assert headlines, "the run reported no error"
        ours = f"MLflow tracking server at http://127.0.0.1:{port} is not reachable"
        chains = [list(_chain(error)) for error in errors if error is not None]
        assert any(ours in m and "\n" not in m for chain in chains for m in chain)
        assert not any(h.startswith(("mlflow.", "MlflowException", "requests.")) for h in headlines)

        # Back up: the next run's start closes the run the outage left RUNNING.
        server = _server(server_data, port, tmp_path / "server.log")
        assert finish(sandbox.materialize(select="stock_data")) == 0
        statuses = {r.data.tags["dagster_run_id"]: r.info.status for r in sandbox.mlflow_runs()}
        assert statuses[lost] == "FAILED" and "RUNNING" not in statuses.values()
    finally:
        _stop(server)

    # Nothing anywhere holds the password: logs, Dagster's event log and metadata (its SQLite
    # files), MLflow's tags and params (the server's store), artifacts, asset values.
    leaks = [
        str(path.relative_to(tmp_path))
        for path in tmp_path.rglob("*")
        if path.is_file() and SECRET.encode() in path.read_bytes()
    ]
    assert leaks == []
