"""Exporting with the CLI's options: other graphs, MLflow secrets, Kubernetes settings, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporters.kfp.compile import SUPPORTED_KFP_SERVERS
from exporters.kfp.graph import read_graph
from exporters.kfp.runtime import tracking_resource_keys
from exporters.kfp.schedule import ScheduleError, dagster_cron_to_kfp, recurring_run_from_schedule
from exporters.kfp.submit import Deployment, cli_commands
from stock_assets.definitions import defs
from tests.kfp_helpers import all_tasks, export, load_spec
from tests.kfp_helpers import kubernetes_executors as _platform
from tests.kfp_helpers import producer_tasks as _dependencies


@pytest.mark.slow
def test_mlflow_uri_and_secret_without_credentials(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    done = export(
        path,
        "--mlflow-tracking-uri",
        "http://mlflow.mlflow.svc:5000",
        "--mlflow-secret",
        "mlflow-credentials",
        "--image",
        "registry.example/stock-assets:1",
        MLFLOW_TRACKING_PASSWORD="s3cret-value",
    )
    assert done.returncode == 0, done.stderr
    text = path.read_text()
    assert "s3cret-value" not in text
    spec = load_spec(path)
    env = spec["deploymentSpec"]["executors"]["exec-model-train-best"]["container"]["env"]
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.mlflow.svc:5000"} in env
    assert "registry.example/stock-assets:1" in text
    import yaml

    platform = list(yaml.safe_load_all(text))[1]["platforms"]["kubernetes"]["deploymentSpec"]
    secrets = platform["executors"]["exec-model-train-best"]["secretAsEnv"]
    assert secrets[0]["secretName"] == "mlflow-credentials"
    assert {m["envVar"] for m in secrets[0]["keyToEnv"]} >= {
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    }


@pytest.mark.slow
def test_other_graph_fan_in_retry_resources_and_prefixed_names(tmp_path: Path) -> None:
    path = tmp_path / "fan_in.yaml"
    done = export(path, "--module", "tests.graphs.fan_in")
    assert done.returncode == 0, done.stderr
    spec = load_spec(path)
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {n: p["parameterType"] for n, p in params.items()} == {
        "left_rows": "NUMBER_INTEGER",  # shared by two assets: prefixed
        "right_rows": "NUMBER_INTEGER",
        "scale": "NUMBER_DOUBLE",
        "label": "STRING",
        "negate": "BOOLEAN",
    }
    tasks = all_tasks(spec)
    assert _dependencies(tasks["combined"]) == {"left", "right"}
    assert _dependencies(tasks["summary"]) == {"combined"}
    assert _dependencies(tasks["notice"]) == {"summary"}  # deps= without data: ordering only
    assert "inputs" not in tasks["notice"] or not tasks["notice"]["inputs"].get("artifacts")
    retry = tasks["combined"]["retryPolicy"]
    assert retry["maxRetryCount"] == 3
    assert retry["backoffDuration"] == "2s"
    assert retry["backoffFactor"] == 2.0
    resources = spec["deploymentSpec"]["executors"]["exec-combined"]["container"]["resources"]
    assert resources["cpuRequest"] == 0.25
    assert resources["memoryLimit"] == pytest.approx(0.536870912)
    assert tasks["right"]["cachingOptions"]["enableCache"] is True  # code_version "2"
    assert not tasks["left"].get("cachingOptions", {}).get("enableCache", False)
    assert "exit-handler" not in str(spec)  # no MLflow resource: no exit handler


@pytest.mark.slow
def test_unsupported_construct_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "partitioned.yaml"
    done = export(path, "--module", "tests.graphs.partitioned")
    assert done.returncode == 2
    assert "asset 'daily'" in done.stderr and "partitions" in done.stderr
    assert not path.exists()


@pytest.mark.slow
def test_help_documents_every_option() -> None:
    done = export(Path("unused.yaml"), "--help")
    for option in (
        "--output",
        "--module",
        "--image",
        "--mlflow-tracking-uri",
        "--mlflow-secret",
        "--host",
        "--run",
        "--schedule",
        "--wait",
        "--timeout",
        "--param",
        "--run-name",
        "--experiment",
        "--namespace",
        "--allow-local-tracking-uri",
    ):
        assert option in done.stdout


def test_cron_conversion_and_recurring_run() -> None:
    assert dagster_cron_to_kfp("0 2 * * *") == "0 0 2 * * *"
    assert dagster_cron_to_kfp("*/15 9-17 * * 1-5") == "0 */15 9-17 * * 1-5"
    with pytest.raises(ScheduleError, match="5 fields"):
        dagster_cron_to_kfp("0 0 2 * * *")
    graph = read_graph(defs, "stock_assets.definitions", tracking_resource_keys(defs))
    recurring = recurring_run_from_schedule(defs, graph, "nightly_retrain")
    assert recurring.cron_expression == "0 0 2 * * *"
    plan = Deployment("pipeline.yaml", "stock-prediction", "v1", "stock-prediction", run=True)
    commands = cli_commands(Deployment(**{**plan.__dict__, "recurring": recurring}))
    assert any("--cron-expression '0 0 2 * * *'" in c for c in commands)


@pytest.mark.slow
def test_an_export_prints_no_warning(tmp_path: Path) -> None:
    """Dagster's non-deprecated lookups (resolve_schedule_def, resolve_job_def): with every
    UserWarning an error, the export with its schedule still succeeds, and says no "Warning"."""
    done = export(
        tmp_path / "p.yaml",
        "--schedule",
        "--mlflow-tracking-uri",
        "http://mlflow.example:5000",
        PYTHONWARNINGS="error::UserWarning",
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    assert (tmp_path / "p.yaml").exists()


@pytest.mark.slow
def test_without_host_prints_the_equivalent_commands(tmp_path: Path) -> None:
    done = export(tmp_path / "p.yaml", "--schedule")
    assert done.returncode == 0, done.stderr
    assert "pipeline create-version" in done.stdout and "pipeline create -p" in done.stdout
    assert "recurring-run create" in done.stdout and "0 0 2 * * *" in done.stdout
    assert "--no-catchup" in done.stdout  # as --host does: a schedule does not backfill
    assert "'end_date=[[ScheduledTime.2006-01-02]]'" in done.stdout


#: KubernetesExecutorConfig and the messages we emit, as in
#: kubernetes_platform/proto/kubernetes_executor_config.proto at tag 2.14.0 (JSON names). Note
#: SecretAsEnv has no `optional` there: it appears only at 2.15.0. An unknown field is not
#: dropped: at run creation the 2.14 API server's compiler parses each executor's config with a
#: strict protojson.Unmarshal (backend/src/v2/compiler/argocompiler/container.go:285 at 2.14.0),
#: so one unknown field fails the run's creation.
K8S_SCHEMA_2_14 = {
    "": {
        "secretAsVolume",
        "secretAsEnv",
        "pvcMount",
        "nodeSelector",
        "podMetadata",
        "imagePullSecret",
        "imagePullPolicy",
        "configMapAsVolume",
        "configMapAsEnv",
        "activeDeadlineSeconds",
        "fieldPathAsEnv",
        "tolerations",
        "genericEphemeralVolume",
        "nodeAffinity",
        "podAffinity",
        "enabledSharedMemory",
        "emptyDirMounts",
    },
    "secretAsEnv": {"secretName", "keyToEnv", "secretNameParameter"},
    "secretAsEnv.keyToEnv": {"secretKey", "envVar"},
    "nodeSelector": {"labels", "nodeSelectorJson"},
    "podMetadata": {"labels", "annotations"},
    "imagePullSecret": {"secretName", "secretNameParameter"},
    "fieldPathAsEnv": {"name", "fieldPath"},
    "tolerations": {"key", "operator", "value", "effect", "tolerationSeconds", "tolerationJson"},
}
OPAQUE = {"secretNameParameter", "labels", "annotations", "nodeSelectorJson", "tolerationJson"}


def _unknown_fields(config: dict, prefix: str = "") -> list[str]:
    unknown = []
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in K8S_SCHEMA_2_14[prefix]:
            unknown.append(path)
        elif key not in OPAQUE and path in K8S_SCHEMA_2_14:
            for item in value if isinstance(value, list) else [value]:
                unknown += _unknown_fields(item, path)
    return unknown


@pytest.mark.slow
def test_kubernetes_config_uses_only_fields_kfp_2_14_knows(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    done = export(
        path,
        "--module",
        "tests.graphs.fan_in",
        "--mlflow-secret",
        "mlflow-credentials:MLFLOW_TRACKING_TOKEN",
    )
    assert done.returncode == 0, done.stderr
    platform = _platform(path)
    for executor, config in platform.items():
        assert _unknown_fields(config) == [], executor
    secrets = platform["exec-combined"]["secretAsEnv"]
    mapped = {(s["secretName"], m["secretKey"]) for s in secrets for m in s["keyToEnv"]}
    # Only the key the user named: a key missing from the secret would stop the pod on 2.14.
    assert ("mlflow-credentials", "MLFLOW_TRACKING_TOKEN") in mapped
    assert ("mlflow-credentials", "MLFLOW_TRACKING_PASSWORD") not in mapped


@pytest.mark.slow
def test_dagster_k8s_config_is_translated_faithfully(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    assert export(path, "--module", "tests.graphs.fan_in").returncode == 0
    combined = _platform(path)["exec-combined"]
    assert combined["nodeSelector"]["labels"] == {"pool": "batch"}
    assert combined["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    ]
    assert combined["imagePullSecrets" if "imagePullSecrets" in combined else "imagePullSecret"][0][
        "secretName"
    ] == ("registry-credentials")
    assert combined["activeDeadlineSeconds"] == "600"
    assert combined["podMetadata"]["labels"] == {"team": "ml"}
    assert {
        "secretName": "api-keys",
        "keyToEnv": [{"secretKey": "token", "envVar": "API_TOKEN"}],
    }.items() <= {**combined["secretAsEnv"][0]}.items()
    spec = load_spec(path)
    container = spec["deploymentSpec"]["executors"]["exec-combined"]["container"]
    assert {"name": "LOG_LEVEL", "value": "debug"} in container["env"]
    accelerator = container["resources"]["accelerator"]
    assert accelerator.get("resourceType", accelerator.get("type")) == "nvidia.com/gpu"
    assert str(accelerator.get("resourceCount", accelerator.get("count"))) == "1"


@pytest.mark.slow
def test_optional_config_fields_are_blank_means_unset_strings(tmp_path: Path) -> None:
    path = tmp_path / "typed.yaml"
    done = export(path, "--module", "tests.graphs.typed")
    assert done.returncode == 0, done.stderr
    params = load_spec(path)["root"]["inputDefinitions"]["parameters"]
    assert params["limit"] == {
        "defaultValue": "",
        "description": "integer; blank = unset",
        "isOptional": True,
        "parameterType": "STRING",
    }
    assert params["label"]["defaultValue"] == "" and params["label"]["parameterType"] == "STRING"
    assert params["label"]["description"] == "text; blank = unset"
    assert params["counts"]["parameterType"] == "LIST"
    assert params["scale"]["defaultValue"] == 1.0
    # The compiler's header prints every number as a double; ints read as ints there.
    header = path.read_text().split("components:")[0]
    assert "#    counts: list [Default: [1, 2]]\n" in header
    assert "#    scale: float [Default: 1.0]\n" in header
    assert "#    limit: str [Default: '']\n" in header


def test_readme_installs_a_supported_kfp_server() -> None:
    """The YAML avoids secretAsEnv.optional (2.15 only; the 2.14 API server's compiler would
    refuse the run), so the documented 2.14 install works."""
    import re

    from tests import readme as docs

    readme = docs.section("Running on a cluster (Kubeflow Pipelines)")
    (version,) = re.findall(r"PIPELINE_VERSION=(\d+\.\d+)\.\d+", readme)
    assert version in SUPPORTED_KFP_SERVERS
    first, last = SUPPORTED_KFP_SERVERS[0], SUPPORTED_KFP_SERVERS[-1]
    assert f"Supported KFP servers: {first} to {last}." in readme
