"""A local MLflow tracking server: SQLite backend store, artifacts proxied into the data dir.

``stock-tracking-server [--host 127.0.0.1] [--port 5001] [--data-dir DIR]`` (``make mlflow``)
replaces itself with ``mlflow server``. Runs and the registry live in
``<data>/mlflow-server.db``; clients upload and download artifacts through the server
(``mlflow-artifacts:/``), which stores them under ``<data>/mlflow-server-artifacts``. Point the
pipeline at it with ``MLFLOW_TRACKING_URI=http://127.0.0.1:5001``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

from stock_assets.paths import data_dir as default_data_dir

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001
BACKEND_DB = "mlflow-server.db"
ARTIFACTS_DIR = "mlflow-server-artifacts"
# MLflow 3's server starts a job runner and several huey consumer processes for GenAI jobs
# (LLM judges, evaluation, prompt optimisation) that this project never submits; off by default.
SERVER_ENV_DEFAULTS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def venv_bin() -> Path:
    """The scripts folder of the running interpreter's environment (the venv's ``bin``)."""
    return Path(sysconfig.get_path("scripts"))


def build_server_command(
    host: str, port: int, data_dir: Path | str, workers: int | None = None
) -> list[str]:
    """The ``mlflow server`` command line for a server keeping its state under ``data_dir``."""
    data = Path(data_dir).resolve()
    command = [
        str(venv_bin() / "mlflow"),
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{data / BACKEND_DB}",
        "--serve-artifacts",
        "--artifacts-destination",
        str(data / ARTIFACTS_DIR),
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    return command


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the venv's ``bin`` first on PATH.

    ``mlflow server`` starts ``uvicorn`` by name, so the venv's copy must be the one found.
    ``SERVER_ENV_DEFAULTS`` apply unless ``base`` sets them.
    """
    env = {**SERVER_ENV_DEFAULTS, **(os.environ if base is None else base)}
    env["PATH"] = os.pathsep.join(p for p in (str(venv_bin()), env.get("PATH")) if p)
    return env


def wait_until_ready(
    url: str, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``<url>/health`` until it answers 200; raise TimeoutError after ``timeout`` seconds.

    With ``process`` (the server's), stop early with RuntimeError if it has exited.
    """
    health = url.rstrip("/") + "/health"
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"MLflow server for {url} exited with code {process.returncode} before it was ready"
            )
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as error:
            last_error = str(getattr(error, "reason", error))
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"MLflow tracking server at {url} did not become ready within {timeout:g}s "
                f"(GET {health}: {last_error})"
            )
        time.sleep(0.25)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="stock-tracking-server",
        description=(
            "Run a local MLflow tracking server: SQLite backend store and proxied artifact "
            "storage, both under the project's data directory."
        ),
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"bind address ({DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the database and artifacts live (default: $STOCK_ASSETS_DATA_DIR or ./data)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="server worker processes (mlflow's default: 4)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Create the data folders and exec ``mlflow server``."""
    args = parse_args(argv)
    data = (args.data_dir or default_data_dir()).resolve()
    (data / ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
    command = build_server_command(args.host, args.port, data, args.workers)
    print(
        f"MLflow tracking server on http://{args.host}:{args.port} "
        f"(store {data / BACKEND_DB}, artifacts {data / ARTIFACTS_DIR})",
        flush=True,
    )
    os.execve(command[0], command, server_env())


if __name__ == "__main__":
    main()
