"""A run's own world: a Dagster home with the project's instance settings, a data directory and
an MLflow SQLite store, and the environment that points a child process at them.

A fresh sandbox per run makes every run pay the same first-run costs (the MLflow schema, the
instance's tables), so runs compare; and nothing a benchmark does touches the user's store.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_VENV_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
# Not resolved: the venv's python is a symlink, and resolving it would leave the venv.
PYTHON = str(_VENV_PYTHON if _VENV_PYTHON.exists() else Path(sys.executable))
DAGSTER = str(Path(PYTHON).with_name("dagster"))
MODULE = "stock_assets.definitions"


class Sandbox:
    """A DAGSTER_HOME (the project's ``dagster_instance.yaml``), data directory and MLflow store
    under ``root``, created on construction."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "dagster_home"
        self.data = root / "data"
        self.home.mkdir(parents=True)
        self.data.mkdir()
        shutil.copy(PROJECT_ROOT / "dagster_instance.yaml", self.home / "dagster.yaml")
        self.tracking_uri = f"sqlite:///{root / 'mlflow.db'}"

    def env(self) -> dict[str, str]:
        """This environment without MLflow/Dagster/data settings, pointed at the sandbox."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "DAGSTER_")) and k != "STOCK_ASSETS_DATA_DIR"
        }
        env.update(
            DAGSTER_HOME=str(self.home),
            STOCK_ASSETS_DATA_DIR=str(self.data),
            MLFLOW_TRACKING_URI=self.tracking_uri,
            # the CLI's `dagster` and a task's `python` are the venv's, whatever PATH says
            PATH=f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
        )
        return env


@contextlib.contextmanager
def work_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary folder for a benchmark's sandboxes; removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"\nkept the runs' folders under {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)
