"""The real ``stock-serve`` on loopback serving the deployed model: its schema and request forms."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from stock_assets.core.features import FEATURE_COLUMNS
from stock_assets.core.splits import labelled_rows_in
from stock_assets.defs.io_manager import latest_path
from stock_assets.defs.storage import read_value
from stock_assets.mlflow_ops.serving.server import MODEL_URI, sqlite_path
from tests import readme
from tests.conftest import PROJECT_ROOT, env_for_subprocess, production_version
from tests.support.processes import free_port, stop_group
from tests.test_serving_startup import serving_command

# No proxy, whatever the environment says: every request goes straight to 127.0.0.1.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --------------------------------------------------------------------------------------
# The real server on a free loopback port, serving what the graph deployed.
# --------------------------------------------------------------------------------------


def wait_until_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with code {proc.returncode}:\n{log.read_text()}")
        try:
            with HTTP.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # URLError, connection refused/reset, timeout
            pass
        time.sleep(0.2)
    pytest.fail(f"the server did not answer {url} within {timeout:.0f} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(
    deployed, mlflow_store: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """``stock-serve`` on a free port; yields its base URL and log file.

    It is started without MLFLOW_TRACKING_URI, with the data directory set to the store's
    folder, so it finds the store through the project default and must hand the URI on to
    ``mlflow models serve`` itself (which would otherwise look in ./mlruns).
    """
    database = sqlite_path(mlflow_store)
    assert database is not None
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = env_for_subprocess(STOCK_ASSETS_DATA_DIR=str(database.parent))
    env.pop("MLFLOW_TRACKING_URI")
    with log.open("w") as out:
        proc = subprocess.Popen(
            serving_command("--port", str(port)),
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(proc, f"{url}/ping", log)
        yield url, log
    finally:
        stop_group(proc)


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST ``body`` as JSON; the status and the decoded JSON answer (errors included)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with HTTP.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def rows_and_expected(deployed) -> tuple[pd.DataFrame, pd.DataFrame]:
    """10 labelled feature rows and the model asset's answers for them (direction, P(up))."""
    result, data = deployed
    model = result.output_for_node("model")
    rows = labelled_rows_in(read_value(latest_path(data, "features")), model.test_window).tail(10)
    rows = rows[FEATURE_COLUMNS].reset_index(drop=True)
    pipeline = mlflow.sklearn.load_model(model.model_uri)
    expected = pd.DataFrame(
        {"direction": pipeline.predict(rows), "probability_up": pipeline.predict_proba(rows)[:, 1]}
    )
    in_process = mlflow.pyfunc.load_model(MODEL_URI).predict(rows)
    np.testing.assert_array_equal(in_process["direction"], expected["direction"])
    np.testing.assert_allclose(in_process["probability_up"], expected["probability_up"])
    return rows, expected


def assert_same_answers(answer: dict[str, Any], expected: pd.DataFrame) -> None:
    """The server's ``predictions`` equal the in-process direction and probability."""
    served = pd.DataFrame(answer["predictions"])
    np.testing.assert_array_equal(served["direction"], expected["direction"])
    np.testing.assert_allclose(served["probability_up"], expected["probability_up"], rtol=1e-9)


@pytest.mark.slow
def test_registered_version_documents_inputs_and_outputs_without_a_signature(deployed) -> None:
    """No signature accepts both request forms, so the production version documents its schema
    in its description and in the MLmodel's metadata; its logged model names the version."""
    client = mlflow.MlflowClient()
    version = client.get_model_version("stock-prediction", production_version())
    for name in [*FEATURE_COLUMNS, "direction", "probability_up"]:
        assert f"`{name}`" in version.description, version.description
    assert "no MLflow signature on purpose" in version.description
    info = mlflow.models.get_model_info(MODEL_URI)
    assert info.signature is None
    schema = info.metadata["schema"]
    assert schema["inputs"] == [{"name": name, "type": "double"} for name in FEATURE_COLUMNS]
    assert schema["outputs"] == [
        {"name": "direction", "type": "long"},
        {"name": "probability_up", "type": "double"},
    ]
    logged_model = client.get_logged_model(version.source.removeprefix("models:/"))
    assert logged_model.name == "serving_model"
    assert {"name": "stock-prediction", "version": int(version.version)} in json.loads(
        logged_model.tags["mlflow.modelVersions"]
    )


@pytest.mark.slow
def test_the_served_model_class_is_defined_without_mlflow_warnings() -> None:
    """MLflow's "Add type hints to the `predict` method" warning is not printed: type hints
    would give a signature refusing the named request forms."""
    code = (
        "import warnings, mlflow.pyfunc\n"
        "warnings.simplefilter('always')\n"
        "import stock_assets.mlflow_ops.serving.model_code"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "Warning" not in run.stderr, run.stderr


@pytest.mark.slow
def test_server_found_the_store_through_the_project_default(server, mlflow_store: str) -> None:
    _, log = server
    assert f"serving {MODEL_URI} from {mlflow_store} on http://127.0.0.1:" in log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("form", ["dataframe_records", "dataframe_split", "inputs_columns"])
def test_served_predictions_equal_in_process_ones(server, rows_and_expected, form: str) -> None:
    url, _ = server
    rows, expected = rows_and_expected
    body = {
        "dataframe_records": {"dataframe_records": rows.to_dict(orient="records")},
        # Positional rows, with the column names said once.
        "dataframe_split": {
            "dataframe_split": {"columns": FEATURE_COLUMNS, "data": rows.values.tolist()}
        },
        "inputs_columns": {"inputs": rows.to_dict(orient="list")},
    }[form]
    status, answer = post(f"{url}/invocations", body)
    assert status == 200, answer
    assert_same_answers(answer, expected)


@pytest.mark.slow
def test_the_served_version_is_named_by_version_and_a_header(server, rows_and_expected) -> None:
    """``/version`` and every ``/invocations`` answer (errors too) name the production version."""
    url, _ = server
    rows, _ = rows_and_expected
    with HTTP.open(f"{url}/version", timeout=30) as response:
        described = json.loads(response.read())
        assert response.headers["X-Model-Version"] == production_version()
    assert described["version"] == production_version()
    assert described["model_uri"] == MODEL_URI
    assert described["loaded_uri"] == f"models:/stock-prediction/{production_version()}"
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps({"inputs": rows.values.tolist()}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with HTTP.open(request, timeout=30) as response:
        assert response.headers["X-Model-Version"] == production_version()
    request = urllib.request.Request(
        f"{url}/invocations", data=b"[", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        HTTP.open(request, timeout=30)
    assert refused.value.code == 400
    assert refused.value.headers["X-Model-Version"] == production_version()


@pytest.mark.slow
def test_records_with_keys_in_another_order_are_matched_by_name(server, rows_and_expected) -> None:
    url, _ = server
    rows, expected = rows_and_expected
    shuffled = rows[FEATURE_COLUMNS[::-1]].to_dict(orient="records")
    status, answer = post(f"{url}/invocations", {"dataframe_records": shuffled})
    assert status == 200, answer
    assert_same_answers(answer, expected)


@pytest.mark.slow
def test_positional_inputs_are_read_in_feature_order(server, rows_and_expected) -> None:
    """The reference pipeline's curl form: ``{"inputs": [[22 numbers], ...]}``, in feature order."""
    url, _ = server
    rows, expected = rows_and_expected
    status, answer = post(f"{url}/invocations", {"inputs": rows.values.tolist()})
    assert status == 200, answer
    assert_same_answers(answer, expected)
    status, answer = post(f"{url}/invocations", {"inputs": [rows.values[0].tolist()[:21]]})
    assert status >= 400 and "expected 22" in answer["message"]


@pytest.mark.slow
def test_malformed_requests_get_a_400_and_the_server_keeps_serving(
    server, rows_and_expected
) -> None:
    url, _ = server
    rows, expected = rows_and_expected
    missing = rows.drop(columns=["Gap"]).to_dict(orient="records")
    status, answer = post(f"{url}/invocations", {"dataframe_records": missing})
    assert status >= 400 and "missing feature column(s) ['Gap']" in answer["message"]
    status, answer = post(f"{url}/invocations", {"rows": []})
    assert status == 400 and answer["error_code"] == "BAD_REQUEST"
    status, answer = post(
        f"{url}/invocations", {"dataframe_records": rows.head(1).to_dict(orient="records")}
    )
    assert status == 200
    assert_same_answers(answer, expected.head(1))


@pytest.mark.slow
def test_readme_serving_examples_run_verbatim_and_answer_what_it_shows(server) -> None:
    """Every ``curl`` of the README's *Serving* section, run by bash exactly as printed, except
    that the README's address 127.0.0.1:5002 becomes this test's server (a free port), answers
    what the README shows under it. The server serves what the default config deployed, as in
    the README."""
    url, _ = server
    assert shutil.which("curl"), "the README's serving examples need curl"
    examples = [
        example
        for block in readme.fenced_blocks(readme.section("Serving"))
        for example in readme.examples(block, "curl")
    ]
    assert len(examples) == 3, examples  # positional, named, refused
    env = env_for_subprocess(NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    answers = []
    for example in examples:
        assert "http://127.0.0.1:5002/" in example.command and example.shown, example
        command = example.command.replace("http://127.0.0.1:5002/", f"{url}/")
        run = subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr
        readme.assert_like_shown(run.stdout, example.shown)
        answers.append(json.loads(run.stdout))
    # The named record holds the positional row's values under their names: same answer.
    assert answers[0] == answers[1]
