"""Where the project keeps its state: asset files, the MLflow store and the Dagster instance."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

#: Where ``make mlflow-ui`` serves the local store (the links in Dagster metadata point here).
LOCAL_MLFLOW_UI = "http://127.0.0.1:5000"

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Asset files and the default MLflow store; ``STOCK_ASSETS_DATA_DIR`` overrides ``./data``."""
    return Path(os.environ.get("STOCK_ASSETS_DATA_DIR", PROJECT_ROOT / "data")).resolve()


def redact_uri(uri: str) -> str:
    """``uri`` fit to show: a password or token in it becomes ``***`` (user names stay)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparsable URI>"
    if parts.password is None and "@" not in parts.netloc:
        return uri
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}" if name else f"***@{host}"))


def strip_credentials(uri: str) -> str:
    """``uri`` without ``user:password@``, moved into MLflow's credential variables.

    MLflow reads ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD`` for HTTP basic auth, so the URI it
    sees, prints ("View run ... at: <uri>") and stores never carries the secret. Variables the
    user set already win.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if "@" not in parts.netloc or parts.scheme not in ("http", "https"):
        return uri
    if parts.username is not None:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(parts.username))
    if parts.password is not None:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(parts.password))
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set (credentials moved out, see :func:`strip_credentials`),
    else a SQLite store in the data directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        clean = strip_credentials(uri)
        if clean != uri:
            os.environ["MLFLOW_TRACKING_URI"] = clean  # MLflow reads the variable itself too
        return clean
    return f"sqlite:///{data_dir() / 'mlflow.db'}"


def default_artifact_location() -> str:
    """Artifact root for a local store, next to the SQLite file rather than in the CWD."""
    return (data_dir() / "mlartifacts").as_uri()


@contextlib.contextmanager
def environment_defaults(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the duration, except those the user set already.

    MLflow reads its HTTP retry and timeout settings only from the environment; what this adds
    is removed afterwards, and the user's own settings win.
    """
    added = [name for name in values if name not in os.environ]
    os.environ.update({name: values[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)
