"""The stock pipeline's emitted pipeline.yaml, read back and compared with its Dagster graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporters.kfp.compile import validate_pipeline_yaml
from exporters.kfp.graph import read_graph
from exporters.kfp.runtime import tracking_resource_keys
from exporters.kfp.schedule import recurring_run_from_schedule
from stock_assets.definitions import defs
from tests.kfp_helpers import all_tasks, export, load_spec
from tests.kfp_helpers import kubernetes_executors as _platform
from tests.kfp_helpers import producer_tasks as _dependencies

#: One task per asset; the graph-backed ``model`` asset is one task per op, its scoring op in a
#: ParallelFor over the candidates.
EXPECTED_EDGES = {
    "stock-data": set(),
    "features": {"stock-data"},
    "model-plan-candidates": {"features"},
    "for-loop-2": {"features", "model-plan-candidates"},  # ParallelFor: model-score-candidate
    "model-score-candidate": {"features"},  # and the loop's item
    "model-train-best": {"features", "for-loop-2", "model-plan-candidates"},
    "deploy-decision": {"features", "model-train-best"},
    "deployed-model": {"deploy-decision"},
}


@pytest.fixture(scope="module")
def stock_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "pipeline.yaml"
    done = export(path, MLFLOW_TRACKING_URI="")
    assert done.returncode == 0, done.stderr
    return path


@pytest.mark.slow
def test_two_exports_are_byte_identical(stock_yaml: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.yaml"
    assert export(again, MLFLOW_TRACKING_URI="").returncode == 0
    assert again.read_bytes() == stock_yaml.read_bytes()
    validate_pipeline_yaml(again.read_text())


@pytest.mark.slow
def test_one_task_per_asset_or_op_with_the_graph_edges(stock_yaml: Path) -> None:
    spec = load_spec(stock_yaml)
    tasks = {n: t for n, t in all_tasks(spec).items() if n in EXPECTED_EDGES}
    resolver = "resolve-scheduled-dates"  # the exporter's own first task (schedule dates)
    assert {name: _dependencies(task) - {resolver} for name, task in tasks.items()} == (
        EXPECTED_EDGES
    )
    assert resolver in _dependencies(tasks["stock-data"])
    # every asset of the graph has its task(s); the model's are its three ops
    graph = defs.resolve_asset_graph()
    assets = {key.to_user_string().replace("_", "-") for key in graph.toposorted_asset_keys}
    assert {name.split("-plan")[0].split("-score")[0].split("-train")[0] for name in tasks} - {
        "for-loop-2"
    } == assets


@pytest.mark.slow
def test_candidates_fan_out_as_a_parallel_for_with_their_own_pods(stock_yaml: Path) -> None:
    spec = load_spec(stock_yaml)
    loop = all_tasks(spec)["for-loop-2"]
    items = loop["parameterIterator"]["items"]["inputParameter"]
    assert items == "pipelinechannel--model-plan-candidates-Output"
    assert set(spec["components"]["comp-for-loop-2"]["dag"]["tasks"]) == {"model-score-candidate"}
    assert "iteratorPolicy" not in loop  # no parallelism limit: one pod per candidate at once
    # dsl.Collected: the best-model task reads every iteration's score
    collected = all_tasks(spec)["model-train-best"]["inputs"]["artifacts"]
    assert collected["model__score_candidate"]["taskOutputArtifact"]["producerTask"] == (
        "for-loop-2"
    )
    executors = spec["deploymentSpec"]["executors"]
    scoring = executors["exec-model-score-candidate"]["container"]["resources"]
    assert (scoring["resourceCpuRequest"], scoring["resourceMemoryLimit"]) == ("2", "4Gi")
    # scoring is a pure function of the features and the item: cached on a cluster
    cached = all_tasks(spec)["model-score-candidate"]["cachingOptions"]
    assert cached.get("enableCache") is True


@pytest.mark.slow
def test_parameters_are_the_config_fields_with_their_defaults(stock_yaml: Path) -> None:
    spec = load_spec(stock_yaml)
    declared = spec["root"]["inputDefinitions"]["parameters"]
    expected = {}
    for key in defs.resolve_asset_graph().toposorted_asset_keys:
        for op_def in defs.get_assets_def(key).node_def.iterate_op_defs():
            config_class = op_def.compute_fn.decorated_fn.__annotations__.get("config")
            if config_class:
                for name, info in config_class.model_fields.items():
                    expected[name] = info.get_default(call_default_factory=True)
    assert set(declared) == set(expected)
    assert {"days", "seed", "model_type", "accuracy_threshold"} <= set(declared)
    for name, default in expected.items():
        if default is None:  # an `X | None = None` field: a STRING whose default "" = unset
            assert declared[name]["defaultValue"] == "", name
            assert declared[name]["parameterType"] == "STRING", name
            assert "blank = unset" in declared[name]["description"], name
        else:
            assert declared[name]["defaultValue"] == default, name
    unset = {"csv_path", "end_date", "n_estimators", "max_depth", "learning_rate", "C", "max_iter"}
    assert {name for name, default in expected.items() if default is None} == unset
    kinds = {n: p["parameterType"] for n, p in declared.items()}
    assert kinds["days"] == "NUMBER_INTEGER"
    assert kinds["accuracy_threshold"] == "NUMBER_DOUBLE"
    assert kinds["model_type"] == "STRING"
    assert kinds["tickers"] == "LIST"
    assert kinds["cv_folds"] == "NUMBER_INTEGER" and kinds["test_size"] == "NUMBER_DOUBLE"
    assert declared["max_depth"]["description"].endswith("(integer; blank = unset)")
    assert declared["C"]["description"].endswith("(number; blank = unset)")


@pytest.mark.slow
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


@pytest.mark.slow
def test_artifacts_metrics_caching_and_docs(stock_yaml: Path) -> None:
    spec = load_spec(stock_yaml)
    comps = spec["components"]

    def output_type(component: str, name: str) -> str:
        return comps[component]["outputDefinitions"]["artifacts"][name]["artifactType"][
            "schemaTitle"
        ]

    assert output_type("comp-stock-data", "stock_data") == "system.Dataset"
    assert output_type("comp-features", "features") == "system.Dataset"
    assert output_type("comp-model-train-best", "model__train_best") == "system.Model"
    assert output_type("comp-model-train-best", "metrics") == "system.Metrics"
    tasks = all_tasks(spec)
    cached = {n: t.get("cachingOptions", {}).get("enableCache", False) for n, t in tasks.items()}
    assert cached["stock-data"] and cached["features"]  # code_version set
    assert not cached["model-train-best"] and not cached["deployed-model"]  # side effects
    assert not cached["model-plan-candidates"]
    # one rule for display names: the asset's name (an op's task: <asset>.<op>), as in Dagster
    assert tasks["stock-data"]["taskInfo"]["name"] == "stock_data"
    assert tasks["model-train-best"]["taskInfo"]["name"] == "model.train_best"
    executor = spec["deploymentSpec"]["executors"]["exec-model-train-best"]["container"]
    assert executor["image"] == "stock-assets:0.1.0"
    source = executor["command"][-1]
    assert "from exporters.kfp import runtime as _kfp_runtime" in source
    assert "train_and_evaluate" not in source  # the asset's code is imported, not copied
    assert "pip install" not in " ".join(executor["command"])


#: Placeholders the KFP driver resolves to a value unique to the run or task
#: (backend/src/v2/driver/resolve.go:394-403 at 2.14.0; create/schedule time from 2.16.0).
PER_RUN_PLACEHOLDERS = (
    "{{$.pipeline_job_name}}",
    "{{$.pipeline_job_resource_name}}",
    "{{$.pipeline_job_uuid}}",
    "{{$.pipeline_task_name}}",
    "{{$.pipeline_task_uuid}}",
    "{{$.pipeline_job_create_time_utc}}",
    "{{$.pipeline_job_schedule_time_utc}}",
)


def _parameter_sources(spec: dict, dag: dict, inputs: dict, trail: tuple = ()) -> dict:
    """For every task of ``dag`` (recursively), where each input parameter's value comes from.

    A value is a constant, a root pipeline parameter, or a task output; inside a sub-DAG a
    component input is traced to what its parent task passed in.
    """
    found = {}
    for name, task in dag.get("tasks", {}).items():
        sources = {}
        for param, spec_in in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in spec_in:
                sources[param] = inputs.get(spec_in["componentInputParameter"], "root-parameter")
            elif "runtimeValue" in spec_in:
                sources[param] = str(spec_in["runtimeValue"]["constant"])
            else:
                sources[param] = "task-output"
        found[name] = (task, sources)
        component = spec["components"][task["componentRef"]["name"]]
        if "dag" in component:
            found.update(_parameter_sources(spec, component["dag"], sources, (*trail, name)))
    return found


@pytest.mark.slow
def test_no_cached_task_takes_a_per_run_input(stock_yaml: Path) -> None:
    """The backend's cache key includes every input parameter value
    (GenerateCacheKey in backend/src/v2/cacheutils/cache.go at 2.14.0): a run-unique input
    makes every run a cache miss."""
    spec = load_spec(stock_yaml)
    tasks = _parameter_sources(spec, spec["root"]["dag"], {})
    cached = {n: s for n, (t, s) in tasks.items() if t.get("cachingOptions", {}).get("enableCache")}
    assert {"stock-data", "features"} <= set(cached)
    for name, sources in cached.items():
        for param, source in sources.items():
            assert not any(p in source for p in PER_RUN_PLACEHOLDERS), (name, param, source)


@pytest.mark.slow
def test_the_run_id_comes_from_the_pods_label(stock_yaml: Path) -> None:
    """The API server labels every pod of a run pipeline/runid=<run id>
    (backend/src/apiserver/template/v2_template.go:362 and, for recurring runs,
    backend/src/crd/controller/scheduledworkflow/util/scheduled_workflow.go:181 at 2.14.0 and
    2.15.0); the driver handles fieldPathAsEnv at 2.14.0 (backend/src/v2/driver/k8s.go:398)."""
    platform = _platform(stock_yaml)
    for executor in (
        "exec-stock-data",
        "exec-model-train-best",
        "exec-model-score-candidate",
        "exec-deployed-model",
        "exec-end-tracking-run",
    ):
        assert {"name": "KFP_RUN_ID", "fieldPath": "metadata.labels['pipeline/runid']"} in (
            platform[executor]["fieldPathAsEnv"]
        )


@pytest.mark.slow
def test_schedule_date_becomes_a_macro_resolved_before_cached_tasks(stock_yaml: Path) -> None:
    """KFP 2.14/2.15 leave [[ScheduledTime...]] in a v2 recurring run's parameters (the
    ScheduledWorkflow controller formats only Argo workflow arguments:
    backend/src/crd/controller/scheduledworkflow/util/scheduled_workflow.go NewWorkflow and
    backend/src/common/util/workflow.go OverrideParameters at 2.14.0/2.15.0), so the cached
    stock-data task takes the date resolved by an uncached first task, not the raw macro."""
    graph = read_graph(defs, "stock_assets.definitions", tracking_resource_keys(defs))
    recurring = recurring_run_from_schedule(defs, graph, "nightly_retrain")
    assert recurring.parameters == {"end_date": "[[ScheduledTime.2006-01-02]]"}
    tasks = all_tasks(load_spec(stock_yaml))
    resolver = tasks["resolve-scheduled-dates"]
    assert resolver.get("cachingOptions", {}).get("enableCache", False) is False
    source = resolver["inputs"]["parameters"]["end_date"]["componentInputParameter"]
    assert source in ("end_date", "pipelinechannel--end_date")  # the pipeline parameter
    stock = tasks["stock-data"]["inputs"]["parameters"]
    assert "end_date" not in stock
    assert stock["scheduled_values"]["taskOutputParameter"]["producerTask"] == (
        "resolve-scheduled-dates"
    )


@pytest.mark.slow
def test_every_parameter_has_a_default(stock_yaml: Path) -> None:
    """The KFP UI (frontend/src/components/NewRunParametersV2.tsx at 2.14.0/2.15.0) shows
    "Missing parameter." for a parameter without a default and keeps Start grey; kfp.local
    (kfp 2.17.3) cannot run one left unset. Every parameter, and every component input fed by
    one (the scheduled-date resolver's included), has a default: the default run needs nothing."""
    spec = load_spec(stock_yaml)
    root = spec["root"]["inputDefinitions"]["parameters"]
    assert {name for name, p in root.items() if "defaultValue" not in p} == set()
    assert root["end_date"]["defaultValue"] == root["csv_path"]["defaultValue"] == ""
    resolver = spec["components"]["comp-resolve-scheduled-dates"]["inputDefinitions"]
    assert resolver["parameters"]["end_date"] == {
        "defaultValue": "",
        "isOptional": True,
        "parameterType": "STRING",
    }
