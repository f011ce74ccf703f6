"""``make kfp-local``: the KFP side without a cluster, one MLflow run and a short summary.

Real subprocesses (make, ``python -m exporters.kfp.local``, kfp.local's task processes) on a
temporary data directory; the MLflow store is read back from the SQLite file the Makefile
points the run at when ``MLFLOW_TRACKING_URI`` is unset (``$(DATA_DIR)/mlflow.db``, the store
``make mlflow-ui`` browses).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import PROJECT_ROOT

TASKS = (
    "resolve-scheduled-dates",
    "stock-data",
    "features",
    "model-plan-candidates",
    "model-score-candidate x2",  # the ParallelFor's two iterations share a row
    "model-train-best",
    "deploy-decision",
    "deployed-model",
    "end-tracking-run",
)
SMALL = (
    '--param days=160 --param cv_folds=2 --param \'tickers=["AAA", "BBB"]\' '
    '--param \'candidates=["logistic: C=0.1, max_iter=200", "logistic: C=1.0, max_iter=200"]\''
)


def _env(tmp_path: Path) -> dict[str, str]:
    """This environment on ``tmp_path``: no MLflow URI of its own, a fresh data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MAKE"))}
    env["STOCK_ASSETS_DATA_DIR"] = str(tmp_path / "data")
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "tmp").mkdir()
    return env


def _kfp_runs(store: str) -> list:
    client = MlflowClient(tracking_uri=store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, "tags.kfp_run_id != ''")


@pytest.mark.slow
def test_make_kfp_local_runs_the_pipeline_and_prints_a_summary(tmp_path: Path) -> None:
    # -o: never reinstall the venv from a test (the stamp is the target's only prerequisite).
    done = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "kfp-local"]
        + [f"KFP_LOCAL_ARGS={SMALL}", f"BIN={Path(sys.executable).parent}"],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert len(out.splitlines()) <= 25, out  # a summary, not kfp.local's log
    assert "Executing task" not in out and "dagster - " not in out, out

    store = f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}"  # the Makefile's default store
    (run,) = _kfp_runs(store)
    assert run.info.status == "FINISHED"
    kfp_run_id = re.search(r"^kfp\.local run (\S+)$", out, re.M)[1]
    assert run.data.tags["kfp_run_id"] == kfp_run_id

    rows = dict(re.findall(r"^  (\S+(?: x\d+)?)\s+(SUCCESS|FAILURE|NOT RUN)\s+\S+$", out, re.M))
    deployed = "SUCCESS" if run.data.tags["deploy_decision"] == "approved" else "NOT RUN"
    assert rows == {task: "SUCCESS" for task in TASKS} | {"deployed-model": deployed}, out
    assert re.search(r"^pipeline: SUCCESS in \d+\.\d s$", out, re.M), out
    assert f"MLflow run {run.info.run_id}: FINISHED" in out
    best = run.data.params["best_candidate"]
    assert f"  chosen model: {best} (model_type logistic, accuracy " in out, out
    assert f"deploy decision: {run.data.tags['deploy_decision']}" in out
    assert "make mlflow-ui" in out
    assert not list((tmp_path / "tmp").glob("kfp-local-*"))  # its temporary folder is removed


@pytest.mark.slow
def test_a_failed_pipeline_exits_1_with_one_line_naming_the_task(tmp_path: Path) -> None:
    env = _env(tmp_path) | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'other.db'}"}
    missing = tmp_path / "missing.csv"
    done = subprocess.run(
        [sys.executable, "-m", "exporters.kfp.local", "--param", f"csv_path={missing}"]
        + ["--keep", str(tmp_path / "keep")],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Traceback" not in out and "  File " not in out, out
    failed = rf"^stock-data failed: Failure: {re.escape(str(missing))}: file not found"
    assert re.search(failed, out, re.M), out
    assert re.search(r"^  stock-data\s+FAILURE\s", out, re.M), out
    assert re.search(r"^  features\s+NOT RUN\s", out, re.M), out
    assert re.search(r"^pipeline: FAILURE in ", out, re.M), out
    (run,) = _kfp_runs(env["MLFLOW_TRACKING_URI"])  # the user's URI wins over the default
    assert run.info.status == "FAILED"
    assert f"MLflow run {run.info.run_id}: FAILED" in out
    assert (tmp_path / "keep" / "kfp-local.log").read_text().count("Executing task") >= 2
    assert (tmp_path / "keep" / "pipeline.yaml").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--param", "nope=1"], "error: --param: 'nope=1': expected NAME=VALUE with NAME one of"),
        (["--param", "days=abc"], "error: --param: days='abc' is not a int"),
        (["--module", "no_such_module"], "error: --module: cannot import 'no_such_module'"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "exporters.kfp.local", *args],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(expected), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "data").exists()  # nothing ran
