"""The exporter is a library: a graph from another package exports and runs under kfp.local
while ``stock_assets`` cannot be imported at all.

A temporary package ``foreign_graph`` implements the per-run tracking protocol with a
``ConfigurableResource`` on a real MLflow store and uses the runtime's default storage (no
io_manager). A ``stock_assets`` package that raises on import shadows the real one through
``PYTHONPATH``, in the exporter's process and in every task process kfp.local starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest

from tests.kfp_helpers import load_spec

DEFINITIONS = '''
"""A graph that knows nothing of stock_assets."""

import mlflow
import pandas as pd
from dagster import Config, ConfigurableResource, Definitions, asset


class RunTracker(ConfigurableResource):
    """The exporter's per-run tracking protocol: one MLflow run per KFP run."""

    kfp_run_id: str | None = None
    experiment: str = "foreign"

    def run_id(self) -> str:
        client = mlflow.MlflowClient()
        found = client.get_experiment_by_name(self.experiment)
        experiment = found.experiment_id if found else client.create_experiment(self.experiment)
        runs = client.search_runs([experiment], f"tags.kfp_run_id = '{self.kfp_run_id}'")
        if runs:
            return runs[0].info.run_id
        tags = {"kfp_run_id": self.kfp_run_id}
        return client.create_run(experiment, tags=tags).info.run_id

    def log_param(self, key: str, value: object) -> None:
        mlflow.MlflowClient().log_param(self.run_id(), key, value)

    def end_pipeline_run(self, kfp_run_id: str, status: str) -> str | None:
        run_id = RunTracker(kfp_run_id=kfp_run_id, experiment=self.experiment).run_id()
        mlflow.MlflowClient().set_terminated(run_id, status=status)
        return run_id


class RawConfig(Config):
    weights: list[int] = [1, 2]
    limit: int | None = None


@asset(kinds={"pandas"}, code_version="1", description="Weights from config.")
def raw(config: RawConfig, tracker: RunTracker) -> pd.DataFrame:
    assert all(type(w) is int for w in config.weights), config.weights
    tracker.log_param("weights", ",".join(map(str, config.weights)))
    rows = config.weights[: config.limit] if config.limit else config.weights
    return pd.DataFrame({"w": rows})


@asset(description="Their sum.")
def total(raw: pd.DataFrame, tracker: RunTracker) -> dict:
    tracker.log_param("total", int(raw["w"].sum()))
    return {"total": int(raw["w"].sum())}


defs = Definitions(assets=[raw, total], resources={"tracker": RunTracker()})
'''

SCRIPT = """
import json, sys
try:
    import stock_assets  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("stock_assets is importable: the test does not prove anything")
from exporters.kfp.__main__ import main

code = main(["-o", "pipeline.yaml", "--module", "foreign_graph.definitions", "--image",
             "registry.example/foreign:1", "--allow-local-tracking-uri"])
assert code == 0, code
from kfp import components, local

local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root="root",
           raise_on_error=True)
components.load_component_from_file("pipeline.yaml")(weights=[3, 4, 5], limit="2")
print(json.dumps({"modules": sorted(m for m in sys.modules if m.startswith("stock_assets"))}))
"""


@pytest.mark.slow
def test_a_foreign_graph_exports_and_runs_without_stock_assets(tmp_path: Path) -> None:
    package = tmp_path / "foreign_graph"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "definitions.py").write_text(textwrap.dedent(DEFINITIONS))
    blocker = tmp_path / "blocked" / "stock_assets"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('stock_assets is blocked here')\n")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "blocked"), str(tmp_path)]),
        "MLFLOW_TRACKING_URI": store,
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"modules": []}

    spec = load_spec(tmp_path / "pipeline.yaml")
    # `limit: int | None = None` is a STRING defaulting to "" (unset); "2" reaches Dagster as 2.
    assert spec["root"]["inputDefinitions"]["parameters"]["limit"]["defaultValue"] == ""
    (run_dir,) = (tmp_path / "root").iterdir()
    total = json.loads((run_dir / "total" / "total").read_text())  # default storage: JSON
    assert total == {"total": 7}  # [3, 4, 5][:2] as ints, not floats
    assert (run_dir / "raw" / "raw").read_bytes()[:4] == b"PAR1"  # a DataFrame: Parquet

    client = mlflow.MlflowClient(tracking_uri=store)
    (experiment,) = [e for e in client.search_experiments() if e.name == "foreign"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["kfp_run_id"] == run_dir.name  # one run for the whole KFP run
    assert run.data.params == {"weights": "3,4,5", "total": "7"}
    assert run.info.status == "FINISHED"  # ended by the exit handler through the protocol
