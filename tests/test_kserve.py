"""The KServe InferenceService manifest, checked against KServe's own CRD schema.

tests/schemas/kserve_inferenceservice_v1beta1.json is the v1beta1 openAPIV3Schema of
config/crd/full/serving.kserve.io_inferenceservices.yaml in kserve/kserve at tag v0.19.0, with
the sub-schemas of fields the exporter never writes replaced by {} (their names are kept, so an
unknown field, which the API server would silently prune, still fails here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml

from exporters.kfp.kserve import main

SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "kserve_inferenceservice_v1beta1.json").read_text()
)
TYPES = {"object": dict, "string": str, "integer": int, "array": list, "boolean": bool}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Structural-schema check: types, required fields, unknown fields, enums."""
    if not schema:
        return []
    errors = []
    expected = schema.get("type")
    if expected and not isinstance(value, TYPES[expected]):
        return [f"{path or '/'}: expected {expected}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict) and "properties" in schema:
        errors += [f"{path}.{k}: required" for k in schema.get("required", []) if k not in value]
        for key, item in value.items():
            if key not in schema["properties"]:
                errors.append(f"{path}.{key}: unknown field")
            else:
                errors += schema_errors(item, schema["properties"][key], f"{path}.{key}")
    return errors


def _write(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any] | None]:
    output = tmp_path / "isvc.yaml"
    code = main(["-o", str(output), *args])
    return code, yaml.safe_load(output.read_text()) if output.exists() else None


def test_manifest_matches_kserves_schema(tmp_path: Path) -> None:
    code, manifest = _write(
        tmp_path,
        "--name",
        "stock-prediction",
        "--storage-uri",
        "s3://mlflow/1/abc/artifacts/serving_model",
        "--namespace",
        "ml",
        "--service-account",
        "mlflow-s3",
        "--min-replicas",
        "1",
    )
    assert code == 0
    assert manifest["apiVersion"] == f"{SCHEMA['group']}/{SCHEMA['version']}"
    assert manifest["kind"] == SCHEMA["kind"]
    assert schema_errors(manifest, SCHEMA["schema"]) == []
    model = manifest["spec"]["predictor"]["model"]
    assert model == {
        "modelFormat": {"name": "mlflow"},
        "protocolVersion": "v2",
        "storageUri": "s3://mlflow/1/abc/artifacts/serving_model",
    }
    assert schema_errors({"spec": {"predictor": {"modle": {}}}}, SCHEMA["schema"]) == [
        ".spec.predictor.modle: unknown field"
    ]  # the checker does catch a typo


@pytest.mark.slow
def test_the_model_comes_from_the_registry_alias(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'registry.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    client.create_registered_model("churn")
    version = client.create_model_version("churn", source="s3://models/churn/7/artifacts/model")
    client.set_registered_model_alias("churn", "production", version.version)
    code, manifest = _write(
        tmp_path,
        "--name",
        "churn",
        "--model",
        "models:/churn@production",
        "--mlflow-tracking-uri",
        store,
    )
    assert code == 0
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == (
        "s3://models/churn/7/artifacts/model"
    )


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--name", "Bad_Name", "--storage-uri", "s3://b/m"], "--name"),
        (["--name", "m", "--storage-uri", "models:/m@production"], "--storage-uri"),
        (["--name", "m", "--storage-uri", "/local/dir"], "--storage-uri"),
        (["--name", "m", "--model", "churn"], "--model"),
    ],
)
def test_wrong_options_are_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], option: str
) -> None:
    code, manifest = _write(tmp_path, *args)
    err = capsys.readouterr().err
    assert code == 2 and manifest is None
    assert err.count("\n") == 1 and err.startswith("error: ") and option in err


def test_an_unreachable_registry_fails_fast_in_one_line_naming_the_redacted_uri(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MLflow's default retries made this take 254 s."""
    import socket
    import time

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://user:secret@127.0.0.1:{port}"
    started = time.monotonic()
    code, manifest = _write(
        tmp_path, "--name", "m", "--model", "models:/m@production", "--mlflow-tracking-uri", uri
    )
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2 and manifest is None
    assert elapsed < 30, elapsed
    assert err.count("\n") == 1 and err.startswith("error: --model: cannot resolve")
    assert f"http://user:***@127.0.0.1:{port}" in err and "secret" not in err
