"""The emitted pipeline.yaml, read back and compared with the Dagster graph it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporters.kfp.compile import validate_pipeline_yaml
from exporters.kfp.submit import (
    CronError,
    cli_commands,
    dagster_cron_to_kfp,
    recurring_run_from_schedule,
)
from stock_assets.definitions import defs
from tests.kfp_helpers import all_tasks, export, load_spec

pytestmark = pytest.mark.slow

ASSET_TASKS = {"stock-data", "features", "model", "deploy-decision", "deployed-model"}


@pytest.fixture(scope="module")
def stock_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "pipeline.yaml"
    done = export(path, MLFLOW_TRACKING_URI="")
    assert done.returncode == 0, done.stderr
    return path


def _dependencies(task: dict) -> set[str]:
    """Producer tasks of a task's artifacts, also through a condition's pipeline channels."""
    producers = set()
    for artifact in task.get("inputs", {}).get("artifacts", {}).values():
        if "taskOutputArtifact" in artifact:
            producers.add(artifact["taskOutputArtifact"]["producerTask"])
        else:  # inside a dsl.If: 'pipelinechannel--<task>-<output_name>'
            channel = artifact["componentInputArtifact"].removeprefix("pipelinechannel--")
            producers.add(channel.rsplit("-", 1)[0])
    return producers | set(task.get("dependentTasks", []))


def test_two_exports_are_byte_identical(stock_yaml: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.yaml"
    assert export(again, MLFLOW_TRACKING_URI="").returncode == 0
    assert again.read_bytes() == stock_yaml.read_bytes()
    validate_pipeline_yaml(again.read_text())


def test_one_task_per_asset_with_the_graph_edges(stock_yaml: Path) -> None:
    spec = load_spec(stock_yaml)
    tasks = {n: t for n, t in all_tasks(spec).items() if n in ASSET_TASKS}
    graph = defs.resolve_asset_graph()
    expected = {
        key.to_user_string().replace("_", "-"): {
            p.to_user_string().replace("_", "-") for p in graph.get(key).parent_keys
        }
        for key in graph.toposorted_asset_keys
    }
    assert set(tasks) == set(expected)
    assert {name: _dependencies(task) for name, task in tasks.items()} == expected


def test_parameters_are_the_config_fields_with_their_defaults(stock_yaml: Path) -> None:
    spec = load_spec(stock_yaml)
    declared = spec["root"]["inputDefinitions"]["parameters"]
    expected = {}
    for key in defs.resolve_asset_graph().toposorted_asset_keys:
        fn = defs.get_assets_def(key).op.compute_fn.decorated_fn
        config_class = fn.__annotations__.get("config")
        if config_class:
            for name, info in config_class.model_fields.items():
                expected[name] = info.get_default(call_default_factory=True)
    assert set(declared) == set(expected)
    assert {"days", "seed", "model_type", "accuracy_threshold"} <= set(declared)
    for name, default in expected.items():
        assert declared[name]["defaultValue"] == default, name
    kinds = {n: p["parameterType"] for n, p in declared.items()}
    assert kinds["days"] == "NUMBER_INTEGER"
    assert kinds["accuracy_threshold"] == "NUMBER_DOUBLE"
    assert kinds["model_type"] == "STRING"
    assert kinds["tickers"] == "LIST"


def test_deploy_runs_under_a_condition_on_the_decision(stock_yaml: Path) -> None:
    spec = load_spec(stock_yaml)
    holders = [
        (name, c)
        for name, c in spec["components"].items()
        if "deployed-model" in c.get("dag", {}).get("tasks", {})
    ]
    assert len(holders) == 1
    condition_name = holders[0][0].removeprefix("comp-")
    condition = all_tasks(spec)[condition_name]["triggerPolicy"]["condition"]
    assert "deploy-decision-Output" in condition and "== true" in condition


def test_artifacts_metrics_caching_and_docs(stock_yaml: Path) -> None:
    spec = load_spec(stock_yaml)
    comps = spec["components"]

    def output_type(component: str, name: str) -> str:
        return comps[component]["outputDefinitions"]["artifacts"][name]["artifactType"][
            "schemaTitle"
        ]

    assert output_type("comp-stock-data", "stock_data") == "system.Dataset"
    assert output_type("comp-features", "features") == "system.Dataset"
    assert output_type("comp-model", "model") == "system.Model"
    assert output_type("comp-model", "metrics") == "system.Metrics"
    tasks = all_tasks(spec)
    cached = {n: t.get("cachingOptions", {}).get("enableCache", False) for n, t in tasks.items()}
    assert cached["stock-data"] and cached["features"]  # code_version set
    assert not cached["model"] and not cached["deployed-model"]  # side effects: no cache
    assert tasks["stock-data"]["taskInfo"]["name"] == "Daily OHLCV bars"
    executor = spec["deploymentSpec"]["executors"]["exec-model"]["container"]
    assert executor["image"] == "stock-assets:0.1.0"
    source = executor["command"][-1]
    assert "from exporters.kfp.runtime import materialize_asset" in source
    assert "train_and_evaluate" not in source  # the asset's code is imported, not copied
    assert "pip install" not in " ".join(executor["command"])


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
    env = spec["deploymentSpec"]["executors"]["exec-model"]["container"]["env"]
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.mlflow.svc:5000"} in env
    assert "registry.example/stock-assets:1" in text
    import yaml

    platform = list(yaml.safe_load_all(text))[1]["platforms"]["kubernetes"]["deploymentSpec"]
    secrets = platform["executors"]["exec-model"]["secretAsEnv"]
    assert secrets[0]["secretName"] == "mlflow-credentials"
    assert {m["envVar"] for m in secrets[0]["keyToEnv"]} >= {
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    }


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


def test_unsupported_construct_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "partitioned.yaml"
    done = export(path, "--module", "tests.graphs.partitioned")
    assert done.returncode == 2
    assert "asset 'daily'" in done.stderr and "partitions" in done.stderr
    assert not path.exists()


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
    ):
        assert option in done.stdout


def test_cron_conversion_and_recurring_run() -> None:
    assert dagster_cron_to_kfp("0 2 * * *") == "0 0 2 * * *"
    assert dagster_cron_to_kfp("*/15 9-17 * * 1-5") == "0 */15 9-17 * * 1-5"
    with pytest.raises(CronError, match="5 fields"):
        dagster_cron_to_kfp("0 0 2 * * *")
    recurring = recurring_run_from_schedule(defs, "nightly_retrain")
    assert recurring.cron_expression == "0 0 2 * * *"
    commands = cli_commands("pipeline.yaml", "stock-prediction", "stock-prediction", recurring)
    assert any("--cron-expression '0 0 2 * * *'" in c for c in commands)


def test_without_host_prints_the_equivalent_commands(tmp_path: Path) -> None:
    done = export(tmp_path / "p.yaml", "--schedule")
    assert done.returncode == 0, done.stderr
    assert "pipeline create" in done.stdout
    assert "recurring-run create" in done.stdout and "0 0 2 * * *" in done.stdout
