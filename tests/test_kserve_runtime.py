"""The registered model served by the runtime the KServe manifest selects, run here.

``python -m exporters.kfp.kserve`` writes ``modelFormat: mlflow``, ``protocolVersion: v2``. In
KServe v0.20.0 the one ClusterServingRuntime for that format is ``kserve-mlserver``
(config/runtimes/kserve-mlserver.yaml), image ``docker.io/seldonio/mlserver:1.7.1``
(config/runtimes/kustomization.yaml), with ``MLSERVER_MODEL_IMPLEMENTATION`` set to
``mlserver_mlflow.MLflowRuntime``, ``MLSERVER_MODEL_NAME`` to the InferenceService's name and
``MLSERVER_MODEL_URI`` to ``/mnt/models``, where the storage initializer puts the contents of
``storageUri`` (pkg/apis/serving/v1beta1/inference_service_defaults.go, SetMlServerDefaults).

That image installs MLServer's wheels with the constraints of its poetry.lock (SeldonIO/MLServer
at tag 1.7.1, Dockerfile): mlflow 2.19.0, scikit-learn 1.5.2, numpy 1.26.4, pandas 2.2.3, scipy
1.13.1, on Python 3.10. It never installs a model's requirements.txt (only a prebuilt
``environment.tar.gz``, hack/activate-env.sh). So the virtualenv below holds exactly those pins
and nothing from the model's requirements, and ``stock_assets`` cannot be imported in it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from exporters.kfp.kserve import inference_service
from stock_assets.core.features import FEATURE_COLUMNS
from stock_assets.mlflow_ops.registry import REGISTERED_MODEL_NAME as MODEL_NAME
from tests import readme
from tests.conftest import PROJECT_ROOT, production_version
from tests.support.processes import free_port, stop_group
from tests.test_serving import post, rows_and_expected, server, wait_until_ready

__all__ = ["rows_and_expected", "server"]  # fixtures shared with tests/test_serving.py

VENV = PROJECT_ROOT / ".cache" / "mlserver-venv"
#: KServe v0.20.0's MLServer image tag: the runtime and the model's loader.
RUNTIME = ["mlserver==1.7.1", "mlserver-mlflow==1.7.1"]
#: What that image's constraints pin (SeldonIO/MLServer poetry.lock at 1.7.1) for MLServer's
#: own dependencies and MLflow's: the image's environment, not the newest releases (uvloop 0.22,
#: for one, stops MLServer 1.7.1's inference workers from starting).
IMAGE_PINS = [
    "mlflow==2.19.0",
    "mlflow-skinny==2.19.0",
    "scikit-learn==1.5.2",
    "scipy==1.13.1",
    "numpy==1.26.4",
    "pandas==2.2.3",
    "pyarrow==17.0.0",
    "cloudpickle==3.1.0",
    "sqlalchemy==2.0.36",
    "alembic==1.14.0",
    "flask==3.0.3",
    "werkzeug==3.0.6",
    "gunicorn==23.0.0",
    "click==8.1.7",
    "importlib-metadata==8.5.0",
    "fastapi==0.115.2",
    "starlette==0.40.0",
    "uvicorn==0.32.0",
    "uvloop==0.21.0",
    "pydantic==2.9.2",
    "pydantic-core==2.23.4",
    "pydantic-settings==2.6.1",
    "grpcio==1.67.1",
    "protobuf==5.28.3",
    "aiokafka==0.12.0",
    "python-dotenv==1.0.1",
    "orjson==3.10.11",
    "starlette-exporter==0.23.0",
    "py-grpc-prometheus==0.8.0",
    "prometheus-client==0.21.0",
    "aiofiles==24.1.0",
    "gevent==24.11.1",
    "geventhttpclient==2.0.2",
    "tritonclient==2.51.0",
    "opentelemetry-sdk==1.28.0",
    "opentelemetry-instrumentation-fastapi==0.49b0",
    "opentelemetry-instrumentation-grpc==0.49b0",
    "opentelemetry-exporter-otlp-proto-grpc==1.28.0",
]
#: The README's row (Serving: SYNTH on 2024-11-29), as the V2 request of its KServe section.
README_ROW = [117.0, 116.9, 116.0, 115.3, 115.7, 116.1, 115.9, 43.74, 0.1543, 0.1641, -0.00983]
README_ROW += [0.1247, 0.265, -0.02714, -0.05673, -0.01358, 0.02037, 0.02037, 0.9004, 0.05268]
README_ROW += [0.2361, 0.0]


def v2_request(rows: list[list[float]]) -> dict[str, Any]:
    """Rows of the 22 features in their order, as one FP64 tensor decoded to a NumPy array."""
    return {
        "parameters": {"content_type": "np"},
        "inputs": [
            {"name": "features", "shape": [len(rows), 22], "datatype": "FP64", "data": rows}
        ],
    }


@pytest.fixture(scope="session")
def mlserver_venv() -> Path:
    """The runtime's virtualenv, made once with pip from PyPI and reused while its pins hold."""
    marker = VENV / "installed.txt"
    wanted = "\n".join([sys.version.split()[0], *RUNTIME, *IMAGE_PINS])
    if marker.exists() and marker.read_text() == wanted:
        return VENV
    shutil.rmtree(VENV, ignore_errors=True)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
    constraints = VENV / "image-constraints.txt"
    constraints.write_text("\n".join(IMAGE_PINS) + "\n")
    pip = subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "-q", "-c", str(constraints), *RUNTIME],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert pip.returncode == 0, f"pip could not install {RUNTIME}:\n{pip.stderr[-3000:]}"
    marker.write_text(wanted)
    print(f"created {VENV} in {time.monotonic() - started:.0f} s")
    return VENV


@pytest.fixture(scope="module")
def model_dir(deployed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The production version's artifacts, placed as KServe's storage initializer places the
    contents of ``storageUri``."""
    client = mlflow.MlflowClient()
    uri = client.get_model_version_download_uri(MODEL_NAME, production_version())
    target = tmp_path_factory.mktemp("mnt") / "models"
    downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    shutil.copytree(downloaded, target)
    assert (target / "MLmodel").is_file(), sorted(p.name for p in target.iterdir())
    return target


@pytest.fixture(scope="module")
def mlserver(mlserver_venv: Path, model_dir: Path, tmp_path_factory) -> Iterator[str]:
    """``mlserver start`` as the image's CMD runs it, with KServe's environment, on loopback."""
    workdir = tmp_path_factory.mktemp("mlserver")
    log = workdir / "mlserver.log"
    port = free_port()
    env = {
        "PATH": f"{mlserver_venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(workdir),
        "MLSERVER_MODEL_IMPLEMENTATION": "mlserver_mlflow.MLflowRuntime",
        "MLSERVER_MODEL_NAME": MODEL_NAME,
        "MLSERVER_MODEL_URI": str(model_dir),
        "MLSERVER_HTTP_PORT": str(port),
        "MLSERVER_GRPC_PORT": str(free_port()),
        "MLSERVER_METRICS_PORT": str(free_port()),
        "MLSERVER_HOST": "127.0.0.1",
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(mlserver_venv / "bin" / "mlserver"), "start", str(model_dir)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(proc, f"{url}/v2/models/{MODEL_NAME}/ready", log, timeout=120)
        yield url
    finally:
        stop_group(proc)


def v2_answers(answer: dict[str, Any]) -> pd.DataFrame:
    """The V2 response's output tensors as columns."""
    return pd.DataFrame(
        {out["name"]: np.asarray(out["data"]).reshape(-1) for out in answer["outputs"]}
    )


def test_the_manifest_selects_mlservers_mlflow_runtime() -> None:
    """What this module installs is what KServe v0.20.0 runs for the exporter's manifest."""
    model = inference_service("stock-prediction", "s3://b/m")["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "mlflow"} and model["protocolVersion"] == "v2"
    assert f"POST /v2/models/{MODEL_NAME}/infer" in readme.section(
        "Serving on the cluster with KServe"
    )


@pytest.mark.slow
def test_the_runtime_cannot_import_the_project(mlserver_venv: Path, tmp_path: Path) -> None:
    python = str(mlserver_venv / "bin" / "python")
    code = "import mlserver_mlflow, mlflow, sklearn; print(mlflow.__version__, sklearn.__version__)"
    run = subprocess.run([python, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert run.stdout.split() == ["2.19.0", "1.5.2"], run.stderr
    for module in ("stock_assets", "skops"):
        run = subprocess.run([python, "-c", f"import {module}"], cwd=tmp_path, capture_output=True)
        assert run.returncode == 1 and b"ModuleNotFoundError" in run.stderr


@pytest.mark.slow
def test_mlserver_answers_the_readme_request_as_stock_serve_does(
    mlserver: str, server: tuple[str, Path], rows_and_expected
) -> None:
    """The V2 request of the README and 10 test rows: MLServer's answers equal stock-serve's,
    which equal the fitted pipeline's (tests/test_serving.py, rows_and_expected)."""
    rows, expected = rows_and_expected
    batch = [README_ROW, *rows.values.tolist()]
    status, answer = post(f"{mlserver}/v2/models/{MODEL_NAME}/infer", v2_request(batch))
    assert status == 200, answer
    assert answer["model_name"] == MODEL_NAME
    served = v2_answers(answer)
    status, reference = post(f"{server[0]}/invocations", {"inputs": batch})
    assert status == 200, reference
    reference = pd.DataFrame(reference["predictions"])
    np.testing.assert_array_equal(served["direction"], reference["direction"])
    np.testing.assert_allclose(served["probability_up"], reference["probability_up"], rtol=1e-9)
    np.testing.assert_array_equal(served["direction"][1:], expected["direction"])


@pytest.mark.slow
def test_mlserver_reads_named_columns_and_names_a_missing_one(
    mlserver: str, rows_and_expected
) -> None:
    """The pandas form (one tensor per feature, any order); a request without ``Gap`` is
    answered with the model's message naming it."""
    rows, expected = rows_and_expected
    columns = FEATURE_COLUMNS[::-1]
    body = {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()}
            for c in columns
        ],
    }
    status, answer = post(f"{mlserver}/v2/models/{MODEL_NAME}/infer", body)
    assert status == 200, answer
    served = v2_answers(answer)
    np.testing.assert_array_equal(served["direction"], expected["direction"])
    np.testing.assert_allclose(served["probability_up"], expected["probability_up"], rtol=1e-9)
    body["inputs"] = [i for i in body["inputs"] if i["name"] != "Gap"]
    status, answer = post(f"{mlserver}/v2/models/{MODEL_NAME}/infer", body)
    # MLServer's MLflow runtime passes the model's message on, as a 500 (mlserver_mlflow
    # runtime.py, predict, does not map MlflowException as /invocations does).
    assert status == 500 and "missing feature column(s) ['Gap']" in answer["error"], answer


def test_the_model_code_imports_nothing_from_the_project() -> None:
    """``model_code.py`` is all the code the served model carries (no code_paths)."""
    import ast

    from stock_assets.mlflow_ops.serving import model_code

    tree = ast.parse(Path(model_code.__file__).read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported == {"__future__", "typing", "mlflow", "numpy", "pandas", "scipy"}


@pytest.mark.parametrize("kind", ["logistic", "forest", "boosting", "hist_boosting"])
def test_the_portable_model_answers_as_the_pipeline(kind: str, tmp_path: Path) -> None:
    """Each classifier the project trains, written as arrays and evaluated by model_code.py:
    the same directions and probabilities as scikit-learn on 1,000 spread rows."""
    from sklearn import ensemble, linear_model
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from stock_assets.mlflow_ops.serving import model_code
    from stock_assets.mlflow_ops.serving.model import (
        ExportError,
        check_same_answers,
        probe_rows,
        write_portable,
    )

    classifier = {
        "logistic": linear_model.LogisticRegression(),
        "forest": ensemble.RandomForestClassifier(n_estimators=20, random_state=0),
        "boosting": ensemble.GradientBoostingClassifier(n_estimators=30, random_state=0),
        "hist_boosting": ensemble.HistGradientBoostingClassifier(max_iter=30, random_state=0),
    }[kind]
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(400, 22)) * 10 + 5, columns=FEATURE_COLUMNS)
    y = ((X["SMA_5"] + X["RSI"] / 2 + rng.normal(size=400) * 5) > 7).astype(int)
    pipeline = Pipeline([("scaler", StandardScaler()), ("classifier", classifier)]).fit(X, y)
    path = write_portable(pipeline, FEATURE_COLUMNS, tmp_path)
    portable = model_code.PortableClassifier(str(path))
    rows = probe_rows(pipeline, X.head(5), n=1000)
    direction, probability = portable.predict(rows[FEATURE_COLUMNS[::-1]])  # found by name
    np.testing.assert_array_equal(direction, pipeline.predict(rows))
    np.testing.assert_allclose(probability, pipeline.predict_proba(rows)[:, 1], rtol=1e-12)
    served = pd.DataFrame({"direction": direction, "probability_up": probability})
    check_same_answers(served, pipeline, rows)
    served.loc[3, "probability_up"] += 1e-6
    with pytest.raises(ExportError, match="answers 1 of 1005 probe rows differently"):
        check_same_answers(served, pipeline, rows)
