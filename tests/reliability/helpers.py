"""Real processes for the reliability tests: the ``dagster`` CLI on a private instance and store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from dagster import DagsterEventType, DagsterInstance

from stock_assets.defs.config import run_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FAST_MODEL = {"model_type": "logistic"}
DEPLOY_ALWAYS = {"accuracy_threshold": 0.0, "challenge_production": False}


@dataclass
class Sandbox:
    """A Dagster home, a data directory and a tracking URI of their own."""

    root: Path
    tracking_uri: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").touch()
        with self.instance():  # create Dagster's SQLite storage once, before any process races
            pass
        if not self.tracking_uri:
            self.tracking_uri = f"sqlite:///{self.data / 'mlflow.db'}"

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update(
            DAGSTER_HOME=str(self.home),
            STOCK_ASSETS_DATA_DIR=str(self.data),
            MLFLOW_TRACKING_URI=self.tracking_uri,
            PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def materialize(
        self,
        ops: dict[str, dict[str, Any]] | None = None,
        select: str = "stock_data*",
        log: Path | None = None,
        in_process: bool = True,
    ) -> subprocess.Popen:
        """Start ``dagster asset materialize`` in its own process group.

        ``in_process`` runs every step in the CLI's process (the default); False: a process per
        step (the multiprocess executor, forked warm).
        """
        config: dict[str, Any] = run_config(ops or {})
        execution = {"in_process": {}} if in_process else {"multiprocess": {}}
        config["execution"] = {"config": execution}
        out = open(log or self.root / f"run-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        return subprocess.Popen(
            [
                str(BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "stock_assets.definitions",
                "--select",
                select,
                "--config-json",
                json.dumps(config),
            ],
            cwd=PROJECT_ROOT,
            env=self.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def instance(self) -> DagsterInstance:
        """The sandbox's Dagster instance (the process's DAGSTER_HOME is left alone)."""
        return DagsterInstance.from_config(str(self.home))

    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri)

    def mlflow_runs(self) -> list[mlflow.entities.Run]:
        """Every top-level run of the stock-prediction experiment."""
        client = self.client()
        experiment = client.get_experiment_by_name("stock-prediction")
        if experiment is None:
            return []
        runs = client.search_runs([experiment.experiment_id], max_results=500)
        return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def finish(process: subprocess.Popen, timeout: float = 300) -> int:
    """Wait for a CLI process; its exit status."""
    return process.wait(timeout=timeout)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group (the CLI and its step processes), and reap it."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def run_ids(sandbox: Sandbox) -> set[str]:
    """The ids of the runs the sandbox's instance holds."""
    with sandbox.instance() as instance:
        return {run.run_id for run in instance.get_runs()}


def wait_for_step(
    sandbox: Sandbox, step: str, known: set[str] = frozenset(), timeout: float = 240
) -> str:
    """Block until a run of the sandbox's instance, not in ``known``, starts ``step``; its id."""
    deadline = time.monotonic() + timeout
    with sandbox.instance() as instance:
        while time.monotonic() < deadline:
            for run in instance.get_runs(limit=5):
                if run.run_id in known:
                    continue
                records = instance.get_records_for_run(
                    run.run_id, of_type=DagsterEventType.STEP_START
                ).records
                if any(r.event_log_entry.step_key == step for r in records):
                    return run.run_id
            time.sleep(0.5)
    raise AssertionError(f"no run started step {step!r} within {timeout}s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 90) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout}s")
