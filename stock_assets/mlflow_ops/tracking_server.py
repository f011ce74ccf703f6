"""A local MLflow tracking server: SQLite backend store, artifacts proxied into the data dir.

``stock-tracking-server [--host 127.0.0.1] [--port 5001] [--data-dir DIR]`` (``make mlflow``)
replaces itself with ``mlflow server``. Runs and the registry live in
``<data>/mlflow-server.db``; clients upload and download artifacts through the server
(``mlflow-artifacts:/``), which stores them under ``<data>/mlflow-server-artifacts``. Point the
pipeline at it with ``MLFLOW_TRACKING_URI=http://127.0.0.1:5001``.

With ``--ui`` (``make mlflow-ui``) it runs ``mlflow ui`` on the pipeline's local store,
``<data>/mlflow.db``, instead.

Both print the address to open: the experiment's training runs (see :func:`landing_url`).
MLflow 3.17's UI ignores the ``mlflow.experimentKind`` tag and opens any experiment on its
GenAI overview unless the address asks for the model-training view.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from stock_assets.paths import data_dir as default_data_dir

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001
BACKEND_DB = "mlflow-server.db"
ARTIFACTS_DIR = "mlflow-server-artifacts"
UI_PORT = 5000
UI_BACKEND_DB = "mlflow.db"  # the pipeline's default local store (stock_assets/paths.py)
# MLflow 3.17's UI picks an experiment's page from its "workflow type", read from this query
# parameter of the address, else from the browser's local storage (key mlflow.workflowType),
# else "genai" (the GenAI overview); the experiment tag is not read (the workflow switch is on
# in server/js/build/static/js/main.*.js: module 31080 derives the kind from the workflow
# type). "machine_learning" opens the runs, with the model registry in the side bar.
LANDING_QUERY = "workflowType=machine_learning"
READY_TIMEOUT = 180.0
# starlette.middleware.wsgi, imported by mlflow/server/fastapi_app.py, warns at every start.
QUIET_WARNINGS = "ignore:starlette.middleware.wsgi is deprecated"
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


def build_ui_command(host: str, port: int, data_dir: Path | str) -> list[str]:
    """The ``mlflow ui`` command line browsing the pipeline's local store in ``data_dir``."""
    store = f"sqlite:///{Path(data_dir).resolve() / UI_BACKEND_DB}"
    return [
        str(venv_bin() / "mlflow"),
        "ui",
        *("--workers", "1", "--backend-store-uri", store, "-h", host, "-p", str(port)),
    ]


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the venv's ``bin`` first on PATH.

    ``mlflow server`` starts ``uvicorn`` by name, so the venv's copy must be the one found.
    ``SERVER_ENV_DEFAULTS`` apply unless ``base`` sets them; Starlette's deprecation warning
    is silenced (``QUIET_WARNINGS`` added to ``PYTHONWARNINGS``).
    """
    env = {**SERVER_ENV_DEFAULTS, **(os.environ if base is None else base)}
    env["PATH"] = os.pathsep.join(p for p in (str(venv_bin()), env.get("PATH")) if p)
    env["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), QUIET_WARNINGS) if w)
    return env


def browse_url(host: str, port: int) -> str:
    """The server's address for a browser on this machine (a wildcard bind is loopback)."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def landing_url(base_url: str, experiment_id: str) -> str:
    """The experiment's training runs in MLflow's UI, not its GenAI overview."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{LANDING_QUERY}"


def pipeline_experiment(tracking_uri: str) -> str:
    """The pipeline's experiment id in the store at ``tracking_uri``, created as the pipeline
    creates it (tags, local artifact location) when missing."""
    import warnings

    from stock_assets.mlflow_ops.store import first_use_lock

    with warnings.catch_warnings():  # dagster-mlflow's beta notices, on import
        warnings.simplefilter("ignore")
        from stock_assets.defs.resources import MlflowTracking

    with first_use_lock(tracking_uri):
        return MlflowTracking(mlflow_tracking_uri=tracking_uri).experiment_id()


def landing_line(base_url: str, tracking_uri: str) -> str:
    """The line naming the address to open; if the experiment cannot be had, why not."""
    try:
        experiment = pipeline_experiment(tracking_uri)
    except Exception as error:  # the server runs on; say what went wrong
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"MLflow UI on {base_url} (no {tracking_uri} experiment to open: {reason})"
    return f"Open the training runs: {landing_url(base_url, experiment)}"


def announce_when_ready(base_url: str, line: Callable[[], str]) -> None:
    """In a forked grandchild: wait until the server answers, print ``line()``, exit.

    The child exits at once and is reaped here, so the server never holds a dead child; the
    grandchild stays in this process group (Ctrl+C stops it too).
    """
    child = os.fork()
    if child != 0:
        os.waitpid(child, 0)
        return
    if os.fork() != 0:
        os._exit(0)
    try:
        wait_until_ready(base_url, READY_TIMEOUT)
        print(line(), flush=True)
    except BaseException:  # the server says itself why it did not start
        pass
    finally:
        os._exit(0)


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
    parser.add_argument(
        "--port", type=int, default=None, help=f"port ({DEFAULT_PORT}; {UI_PORT} with --ui)"
    )
    parser.add_argument(
        "--ui",
        action="store_true",
        help=f"run `mlflow ui` on the pipeline's local store (<data>/{UI_BACKEND_DB}) instead",
    )
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
    """Create the data folders, print the landing address and exec ``mlflow server``/``ui``.

    The local store's experiment is created before ``mlflow ui`` starts (with the pipeline's
    local artifact location); the server's through the server once it answers (a forked
    process waits for it), so its artifacts are proxied like every other run's.
    """
    args = parse_args(argv)
    data = (args.data_dir or default_data_dir()).resolve()
    port = args.port or (UI_PORT if args.ui else DEFAULT_PORT)
    base = browse_url(args.host, port)
    if args.ui:
        data.mkdir(parents=True, exist_ok=True)
        command = build_ui_command(args.host, port, data)
        print(f"MLflow UI on {base} (store {data / UI_BACKEND_DB})", flush=True)
        os.environ["STOCK_ASSETS_DATA_DIR"] = str(data)  # where its artifacts go
        # Printed before the server starts: `make mlflow-ui` runs no process but the UI's.
        print(landing_line(base, f"sqlite:///{data / UI_BACKEND_DB}"), flush=True)
    else:
        (data / ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
        command = build_server_command(args.host, port, data, args.workers)
        print(
            f"MLflow tracking server on {base} "
            f"(store {data / BACKEND_DB}, artifacts {data / ARTIFACTS_DIR})",
            flush=True,
        )
        announce_when_ready(base, lambda: landing_line(base, base))
    os.execve(command[0], command, server_env())


if __name__ == "__main__":
    main()
