"""Serve the production model over HTTP: MLflow's scoring app behind our guard, under uvicorn.

Run: ``stock-serve [--port 5002] [--host 127.0.0.1] [--workers 2]`` (``make serve``).
It serves ``models:/stock-prediction@production`` from the project's tracking store
(``MLFLOW_TRACKING_URI``, else the SQLite store in the data directory), in this Python
environment, through :func:`stock_assets.mlflow_ops.serving.app.create_app` (a request size
limit answered with 413, JSON only, row/column messages for bad input, errors without stack
traces), with several uvicorn workers, a concurrency limit, and uvicorn's HTTP protocol bounded
against slow clients (:mod:`.protocol`: a read deadline and a cap on waiting connections).
Each worker follows the alias (:mod:`.follow`): every ``--follow-interval`` seconds (30; 0 =
never) it looks the alias up and swaps in the version it names once loaded; ``--model-version
N`` serves version N and never changes. Before starting, it checks that the alias (or version)
exists and, if not, says how to get a production model and exits with code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stock_assets.mlflow_ops.registry import PRODUCTION_ALIAS, REGISTERED_MODEL_NAME
from stock_assets.mlflow_ops.serving.follow import DEFAULT_INTERVAL, INTERVAL_ENV, MODEL_URI_ENV
from stock_assets.mlflow_ops.serving.protocol import (
    MAX_WAITING,
    MAX_WAITING_ENV,
    READ_TIMEOUT,
    READ_TIMEOUT_ENV,
)
from stock_assets.mlflow_ops.serving.settings import MAX_BYTES_ENV, MAX_REQUEST_BYTES, MODEL_URI
from stock_assets.paths import default_tracking_uri, environment_defaults, redact_uri

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5002

DEPLOY_COMMAND = (
    "dagster asset materialize --select 'stock_data*' -m stock_assets.definitions --config-json "
    '\'{"ops": {"deploy_decision": {"config": {"accuracy_threshold": 0.0}}}}\''
)
PROMOTE_COMMAND = "stock-registry promote N"
APP_FACTORY = "stock_assets.mlflow_ops.serving.app:create_app"
HTTP_PROTOCOL = "stock_assets.mlflow_ops.serving.protocol:GuardedProtocol"
DEFAULT_WORKERS = 2
#: Requests in progress per worker beyond which uvicorn answers 503 at once.
REQUESTS_IN_PROGRESS = 32
#: uvicorn counts open connections too: room for the waiting ones (at most MAX_WAITING each).
LIMIT_CONCURRENCY = REQUESTS_IN_PROGRESS + MAX_WAITING


def build_serve_command(
    host: str,
    port: int,
    tracking_uri: str,
    *,
    workers: int | None = None,
    max_request_bytes: int | None = None,
    read_timeout: float | None = None,
    max_waiting: int | None = None,
    follow_interval: float | None = None,
    model_version: str | None = None,
    python: str | None = None,
    bin_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The uvicorn argv and environment for serving the production model (:mod:`.app`).

    ``python`` and ``bin_dir`` default to this interpreter and its scripts directory (where
    ``uvicorn`` lives; mlflow finds it on PATH), ``environ`` to ``os.environ``; given all
    three, the result depends only on the arguments.
    """
    python = python or sys.executable
    bin_dir = bin_dir or sysconfig.get_path("scripts")
    env = dict(os.environ if environ is None else environ)
    path = env.get("PATH")
    env["PATH"] = f"{bin_dir}{os.pathsep}{path}" if path else bin_dir
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    argv = [
        python,
        "-m",
        "uvicorn",
        "--factory",
        APP_FACTORY,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers or DEFAULT_WORKERS),
        "--http",
        HTTP_PROTOCOL,
        "--limit-concurrency",
        str(LIMIT_CONCURRENCY),
        "--timeout-keep-alive",
        "5",
        "--no-access-log",
    ]
    for name, value in (
        (MAX_BYTES_ENV, max_request_bytes),
        (READ_TIMEOUT_ENV, read_timeout),
        (MAX_WAITING_ENV, max_waiting),
        (INTERVAL_ENV, follow_interval),
    ):
        if value is not None:
            env[name] = str(value)
    if model_version is not None:
        env[MODEL_URI_ENV] = f"models:/{REGISTERED_MODEL_NAME}/{model_version}"
    return argv, env


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, or None for any other URI."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    return Path(tracking_uri[len(prefix) :].split("?", 1)[0])


#: One try, 10 s at most, for requests to an HTTP tracking server (MLflow's defaults retry for
#: minutes).
FAIL_FAST_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def missing_model_reason(tracking_uri: str, version: str | None = None) -> str | None:
    """Why the production model (or ``version``) cannot be served from ``tracking_uri``, or
    None if it can."""
    database = sqlite_path(tracking_uri)
    if database is not None and not database.exists():
        # Opening a missing SQLite store would create it; nothing can be registered there yet.
        return f"there is no MLflow store yet at {database}"

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from stock_assets.mlflow_ops.registry import production_version

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        with environment_defaults(FAIL_FAST_HTTP):
            versions = client.search_model_versions(f"name = '{REGISTERED_MODEL_NAME}'")
            if version is not None and version in {str(v.version) for v in versions}:
                return None
            if version is None and versions and production_version(client) is not None:
                return None
    except MlflowException as error:
        return f"the store could not be read (is its server running?): {error.message}"
    if not versions:
        return f"no model named {REGISTERED_MODEL_NAME!r} is registered"
    numbers = ", ".join(sorted((str(v.version) for v in versions), key=int))
    if version is not None:
        return f"{REGISTERED_MODEL_NAME!r} has no version {version} (versions: {numbers})"
    return (
        f"{REGISTERED_MODEL_NAME!r} has version(s) {numbers} but none carries the alias "
        f"{PRODUCTION_ALIAS!r}"
    )


def missing_model_message(tracking_uri: str, reason: str) -> str:
    """The error printed when there is no production model to serve."""
    return (
        f"error: no production model to serve: registered model {REGISTERED_MODEL_NAME!r} "
        f"with alias {PRODUCTION_ALIAS!r} ({MODEL_URI}) was not found in the MLflow tracking "
        f"store {redact_uri(tracking_uri)}: {reason}.\n"
        "Train and deploy a model first, e.g. run the whole pipeline with "
        "accuracy_threshold=0 so that it is always promoted:\n"
        f"  {DEPLOY_COMMAND}\n"
        "or point the alias at an existing registered version N:\n"
        f"  {PROMOTE_COMMAND}   (versions: stock-registry list)\n"
        "(Both use the same store: MLFLOW_TRACKING_URI if set, else the SQLite store in the "
        "data directory, STOCK_ASSETS_DATA_DIR or ./data.)"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="stock-serve",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument(
        "--workers",
        type=_positive(int),
        default=DEFAULT_WORKERS,
        help=f"uvicorn workers ({DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=_positive(int),
        default=MAX_REQUEST_BYTES,
        help=f"larger request bodies get 413 ({MAX_REQUEST_BYTES} = 1 MiB)",
    )
    parser.add_argument(
        "--read-timeout",
        type=_positive(float),
        default=READ_TIMEOUT,
        help=f"seconds to receive a whole request, else 408 ({READ_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-waiting",
        type=_positive(int),
        default=MAX_WAITING,
        help="connections per worker still sending a request or idle; beyond it the longest "
        f"waiting is closed ({MAX_WAITING})",
    )
    parser.add_argument(
        "--follow-interval",
        type=_seconds,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help="look up the production alias this often and serve the version it names once "
        f"loaded; 0 = never ({DEFAULT_INTERVAL:g})",
    )
    parser.add_argument(
        "--model-version",
        type=_version,
        metavar="N",
        help="serve registered version N instead of the alias, never changing",
    )
    return parser.parse_args(argv)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0 (0 = off), got {text!r}")
    return value


def _version(text: str) -> str:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a version number (1, 2, ...), got {text!r}")
    return str(int(text))


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def main(argv: Sequence[str] | None = None) -> None:
    """Check that the production alias exists, then replace this process with the server."""
    args = parse_args(argv)
    tracking_uri = default_tracking_uri()
    reason = missing_model_reason(tracking_uri, args.model_version)
    if reason is not None:
        print(missing_model_message(tracking_uri, reason), file=sys.stderr)
        sys.exit(1)
    served = MODEL_URI
    if args.model_version is not None:
        served = f"models:/{REGISTERED_MODEL_NAME}/{args.model_version}"
    command, env = build_serve_command(
        args.host,
        args.port,
        tracking_uri,
        workers=args.workers,
        max_request_bytes=args.max_request_bytes,
        read_timeout=args.read_timeout,
        max_waiting=args.max_waiting,
        follow_interval=args.follow_interval,
        model_version=args.model_version,
    )
    following = (
        f"following the alias, looked up every {args.follow_interval:g} s"
        if args.model_version is None and args.follow_interval > 0
        else "not following the alias"
    )
    print(
        f"serving {served} from {redact_uri(tracking_uri)} on http://{args.host}:{args.port} "
        f"(POST /invocations, GET /ping, /version; {following})",
        file=sys.stderr,
        flush=True,
    )
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()
