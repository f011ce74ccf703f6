"""``stock-registry``: inspect and move the registry aliases from the command line.

Every command talks to the store at ``MLFLOW_TRACKING_URI`` (else the project's SQLite store)
with bounded HTTP retries and timeouts (:data:`CLI_HTTP_LIMITS`; the user's own
``MLFLOW_HTTP_REQUEST_*`` values win), so a tracking server that is down, silent or answering
errors ends the command within seconds, exit status 1, with one line on stderr naming the URI
(its password masked). Registry mistakes (unknown version, nothing to roll back) exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from stock_assets.mlflow_ops.errors import STORE_ERRORS, redact_text, store_error_message
from stock_assets.mlflow_ops.registry import (
    REGISTERED_MODEL_NAME,
    RegistryError,
    describe_version,
    list_versions,
    promote,
    rollback,
)
from stock_assets.paths import default_tracking_uri, environment_defaults, redact_uri

#: MLflow's HTTP settings for the CLI: two retries with back-off (about 2 s in all against a
#: closed port or a 503), 5 s per attempt (about 17 s for a server that never answers).
_TIMEOUT = "MLFLOW_HTTP_REQUEST_TIMEOUT"
CLI_HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    _TIMEOUT: "5",
}


def require_store(uri: str) -> None:
    """Refuse a local SQLite store that does not exist, rather than create an empty one."""
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///").split("?", 1)[0]
        if path != ":memory:" and not Path(path).is_file():
            raise RegistryError(
                f"no MLflow store at {path}: run the pipeline first (make dev), or set "
                "MLFLOW_TRACKING_URI to your tracking server"
            )


def format_description(info: dict[str, Any]) -> str:
    """The text ``stock-registry show`` prints."""
    lines = [
        f"{info['name']} version {info['version']}",
        f"  run        {info['run_id'] or '-'}"
        + (f" ({info['run_status']})" if info["run_status"] else " (run not found)"),
        f"  created    {info['created']}",
        f"  stage      {info['stage'] or '-'}",
        f"  aliases    {', '.join(info['aliases']) or '-'}",
        f"  model type {info['model_type'] or '-'}",
        "",
        "data (content digest, rows, dates):",
    ]
    lines += [
        f"  {table:<11}{fields['digest']}  {fields['rows'] or '-':>6} rows  {fields['window']}"
        for table, fields in info["data"].items()
    ] or ["  none recorded (registered before data lineage was recorded)"]
    if info["datasets"]:
        lines += ["", "datasets used by the run (MLflow inputs):"]
        for item in info["datasets"]:
            lines.append(f"  {item['context']:<11}{item['name']}  digest {item['digest']}")
            lines.append(f"  {'':<11}read from {item['stored_at'] or item['source']}")
    lines += ["", "metrics of the run (test window):"]
    lines += [f"  {metric:<20}{value:.4f}" for metric, value in info["metrics"].items()] or [
        "  none recorded"
    ]
    lines += ["", "stage history (UTC):"]
    lines += [f"  {when or '?':<22}{stage}" for stage, when in info["stage_history"]] or [
        "  none recorded"
    ]
    return "\n".join(lines)


LIST_COLUMNS = ("version", "aliases", "stage", "model_type", "accuracy")


def format_list(rows: list[dict[str, Any]]) -> str:
    """The table ``stock-registry list`` prints: each column as wide as its widest value (the
    header included), the version right-aligned."""
    table = [list(LIST_COLUMNS)]
    table += [[str(row[column]) for column in LIST_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(LIST_COLUMNS))]
    return "\n".join(
        "  ".join(
            [line[0].rjust(widths[0])]
            + [c.ljust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        ).rstrip()
        for line in table
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``list | show N | promote N | rollback``."""
    parser = argparse.ArgumentParser(
        prog="stock-registry",
        description=(
            f"Inspect and move the '{REGISTERED_MODEL_NAME}' registry aliases. Uses "
            "MLFLOW_TRACKING_URI, else the project's local store."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="versions with their aliases, stage and accuracy")
    show_parser = commands.add_parser(
        "show", help="one version: its run, data digests and dates, metrics and stage history"
    )
    show_parser.add_argument("version", help="registry version number")
    promote_parser = commands.add_parser("promote", help="point production at VERSION")
    promote_parser.add_argument("version", help="registry version number")
    commands.add_parser("rollback", help="point production back at the previous version")
    return parser.parse_args(argv)


def run_command(client: MlflowClient, args: argparse.Namespace) -> str:
    """What the command prints on success."""
    if args.command == "list":
        return format_list(list_versions(client))
    if args.command == "show":
        return format_description(describe_version(client, args.version))
    if args.command == "promote":
        done = promote(client, args.version)
        if done.changed:
            return f"production: version {done.version} (was {done.previous_production_version})"
        return f"production already points at version {done.version}; nothing changed"
    moved: dict[str, Any] = rollback(client)
    return f"production: version {moved['version']} (was {moved['rolled_back_from']})"


#: What a store error's message says, as a short reason: the urllib3/requests text MLflow wraps
#: puts the cause after several hundred characters of URL and pool detail.
_REASONS = (
    (re.compile(r"Connection refused", re.I), "connection refused"),
    (
        re.compile(r"Name or service not known|nodename nor servname|getaddrinfo failed", re.I),
        "no such host",
    ),
    (re.compile(r"timed? ?out", re.I), "no answer within {timeout} s"),
    (re.compile(r"too many (\d{3}) error responses"), "HTTP {0} on every try"),
    (re.compile(r"error code (\d{3}) != 200"), "HTTP {0}"),
    (re.compile(r"not in a valid JSON format"), "an answer that is not MLflow's JSON"),
)
_ENDPOINT = re.compile(r"/api/[\w./-]+")


def short_reason(error: BaseException) -> str:
    """``error`` as a short cause and the endpoint: ``connection refused, asking /api/...``."""
    text = str(error)
    timeout = os.environ.get(_TIMEOUT, CLI_HTTP_LIMITS[_TIMEOUT])
    for pattern, reason in _REASONS:
        if found := pattern.search(text):
            endpoint = _ENDPOINT.search(text)
            where = f", asking {endpoint.group(0)}" if endpoint else ""
            return reason.format(*found.groups(), timeout=timeout) + where
    return text.splitlines()[0] if text else ""


def store_failure(shown_uri: str, error: Exception) -> str:
    """The one line for a store that could not be asked: down, silent, or answering errors."""
    if isinstance(error, STORE_ERRORS):
        if isinstance(error, MlflowException):
            error = MlflowException(short_reason(error))
        return f"error: {store_error_message(shown_uri, error)}"
    detail = redact_text(str(error).splitlines()[0] if str(error) else "")[:300]
    return (
        f"error: stock-registry failed against the MLflow tracking store at "
        f"{redact_uri(shown_uri)} ({error.__class__.__name__}: {detail})"
    )


def main(argv: list[str] | None = None) -> int:
    """Run one command: exit 0, 2 for a registry mistake, 1 when the store could not be asked."""
    args = parse_args(argv)
    shown_uri = os.environ.get("MLFLOW_TRACKING_URI", "")  # read before its password is moved
    uri = default_tracking_uri()
    # urllib3 logs each retry to stderr; the outcome is reported once, below.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        require_store(uri)
        with environment_defaults(CLI_HTTP_LIMITS):
            mlflow.set_tracking_uri(uri)
            print(run_command(MlflowClient(tracking_uri=uri), args))
    except RegistryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - one line, never a traceback
        print(store_failure(shown_uri or uri, error), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
