"""Where the project keeps its state: asset files, the MLflow store and the Dagster instance."""

from __future__ import annotations

import os
from pathlib import Path

#: Where ``make mlflow-ui`` serves the local store (the links in Dagster metadata point here).
LOCAL_MLFLOW_UI = "http://127.0.0.1:5000"

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Asset files and the default MLflow store; ``STOCK_ASSETS_DATA_DIR`` overrides ``./data``."""
    return Path(os.environ.get("STOCK_ASSETS_DATA_DIR", PROJECT_ROOT / "data")).resolve()


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store in the data directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{data_dir() / 'mlflow.db'}"


def default_artifact_location() -> str:
    """Artifact root for a local store, next to the SQLite file rather than in the CWD."""
    return (data_dir() / "mlartifacts").as_uri()
