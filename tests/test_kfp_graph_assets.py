"""Graph-backed assets and dynamic fan-outs: the emitted YAML, the runtime, one kfp.local run.

What the YAML relies on, checked in the kubeflow/pipelines backend source (no cluster here):

* ``iteratorPolicy.parallelismLimit`` becomes the Argo loop template's ``parallelism``:
  backend/src/v2/compiler/argocompiler/dag.go iteratorTask (l.367) at 2.14.0, (l.370) at 2.15.0.
* A ``dsl.Collected`` input from a ParallelFor is resolved by the driver for parameters and
  artifacts alike: backend/src/v2/driver/resolve.go resolveUpstreamArtifacts -> CollectInputs
  (isArtifact=true; l.707, l.821 at 2.14.0; l.733, l.849 at 2.15.0), iterating
  ``for i := range iterations`` (item order). Each collected artifact keeps its metadata
  (custom properties -> ``metadata``: backend/src/v2/metadata/converter.go toRuntimeArtifact at
  2.14.0), which is how the runtime matches an artifact to its fan-out item.
* Tasks are found by their key, not their display name: the argocompiler passes
  ``--task_name`` = the task key to every driver (argocompiler/container.go l.198, dag.go at
  2.14.0). The exporter never names a ParallelFor: a named one breaks ``dsl.Collected`` on 2.14
  (kubeflow/pipelines#13239; the driver-side task name fix #12808 is only in 2.16.0).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dagster import (
    AssetSpec,
    DagsterInstance,
    Definitions,
    DynamicOut,
    DynamicOutput,
    GraphOut,
    In,
    asset,
    graph,
    graph_asset,
    materialize,
    op,
)

from exporters.kfp.graph import UnsupportedConstructError, read_graph
from exporters.kfp.ops import analyze_graph
from exporters.kfp.runtime import (
    MAPPING_KEY_METADATA,
    read_value,
    run_task,
    tracking_resource_keys,
)
from exporters.kfp.runtime.artifacts import ArtifactIOManager
from exporters.kfp.schedule import recurring_run_from_schedule
from tests.graphs import fan_out, fan_out_chain
from tests.kfp_helpers import all_tasks, export, load_spec, run_yaml
from tests.kfp_tasks import defaults, run_exported_task, task_spec


@pytest.fixture(scope="module")
def fan_out_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fan_out") / "pipeline.yaml"
    done = export(path, "--module", "tests.graphs.fan_out", MLFLOW_TRACKING_URI="")
    assert done.returncode == 0, done.stderr
    assert f"wrote {path} (5 tasks, 4 parameters)" in done.stdout  # samples, 3 ops, report
    return path


def _platform(path: Path) -> dict[str, Any]:
    import yaml

    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.mark.slow
def test_each_op_is_a_task_and_the_fan_out_a_parallel_for(fan_out_yaml: Path) -> None:
    spec = load_spec(fan_out_yaml)
    tasks = all_tasks(spec)
    loops = {name: task for name, task in tasks.items() if "parameterIterator" in task}
    ((loop_name, loop),) = loops.items()
    # The loop iterates over the list the fan-out op returns, at most 2 at once (its op tag).
    items = loop["parameterIterator"]["items"]["inputParameter"]
    assert loop["inputs"]["parameters"][items]["taskOutputParameter"] == {
        "outputParameterKey": "Output",
        "producerTask": "smoothing-plan",
    }
    plan_outputs = spec["components"]["comp-smoothing-plan"]["outputDefinitions"]
    assert plan_outputs["parameters"]["Output"]["parameterType"] == "LIST"
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2
    # Inside: the mapped op, fed the loop item and the upstream asset from outside the loop.
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(body) == {"smoothing-score"}
    score_inputs = body["smoothing-score"]["inputs"]
    assert score_inputs["parameters"]["loop_item"] == {
        "componentInputParameter": loop["parameterIterator"]["itemInput"]
    }
    assert loop["inputs"]["artifacts"][
        score_inputs["artifacts"]["samples"]["componentInputArtifact"]
    ]["taskOutputArtifact"] == {"outputArtifactKey": "samples", "producerTask": "samples"}
    # The collecting op takes every iteration's artifact (Collected) and the items' keys.
    choose = tasks["smoothing-choose"]
    assert choose["inputs"]["artifacts"]["smoothing__score"]["taskOutputArtifact"][
        "producerTask"
    ] == (loop_name)
    choose_inputs = spec["components"]["comp-smoothing-choose"]["inputDefinitions"]
    assert choose_inputs["artifacts"]["smoothing__score"]["isArtifactList"] is True
    assert choose["inputs"]["parameters"]["smoothing__plan"]["taskOutputParameter"] == {
        "outputParameterKey": "Output",
        "producerTask": "smoothing-plan",
    }
    # The last op's artifact is the asset's value, read downstream as usual.
    assert tasks["report"]["inputs"]["artifacts"]["smoothing"]["taskOutputArtifact"] == {
        "outputArtifactKey": "smoothing__choose",
        "producerTask": "smoothing-choose",
    }
    assert set(tasks) >= {"samples", "smoothing-plan", "smoothing-choose", "report"}
    # The ParallelFor keeps its generated name: a named one breaks Collected on 2.14 (#13239).
    assert loop["taskInfo"]["name"] == loop_name


@pytest.mark.slow
def test_each_op_task_has_its_own_config_resources_retries_and_run_id(fan_out_yaml: Path) -> None:
    spec = load_spec(fan_out_yaml)
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {n: p["parameterType"] for n, p in params.items()} == {
        "rows": "NUMBER_INTEGER",  # the samples asset
        "seed": "NUMBER_INTEGER",
        "windows": "LIST",  # the plan op
        "horizon": "NUMBER_INTEGER",  # the mapped op
    }
    assert params["windows"]["defaultValue"] == [2, 3, 5]
    text = fan_out_yaml.read_text()
    assert "#    windows: list [Default: [2, 3, 5]]\n" in text  # ints, not 2.0
    assert "#    rows: int [Default: 60]\n" in text
    executors = spec["deploymentSpec"]["executors"]
    resources = executors["exec-smoothing-score"]["container"]["resources"]
    assert resources["cpuRequest"] == 0.5
    assert resources["memoryRequest"] == pytest.approx(0.268435456)
    assert resources["memoryLimit"] == pytest.approx(1.073741824)
    assert "resources" not in executors["exec-smoothing-plan"]["container"]
    retry = all_tasks(spec)["smoothing-score"]["retryPolicy"]
    assert (retry["maxRetryCount"], retry["backoffDuration"], retry["backoffFactor"]) == (
        2,
        "1s",
        2.0,
    )
    assert "retryPolicy" not in all_tasks(spec)["smoothing-choose"]
    run_id = {"name": "KFP_RUN_ID", "fieldPath": "metadata.labels['pipeline/runid']"}
    platform = _platform(fan_out_yaml)
    for executor in ("exec-smoothing-plan", "exec-smoothing-score", "exec-smoothing-choose"):
        assert run_id in platform[executor]["fieldPathAsEnv"], executor
    choose_outputs = spec["components"]["comp-smoothing-choose"]["outputDefinitions"]
    assert choose_outputs["artifacts"]["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    choose_source = executors["exec-smoothing-choose"]["container"]["command"][-1]
    assert "Asset checks run in this task: every_candidate_scored" in choose_source
    assert (
        "every_candidate_scored"
        not in executors["exec-smoothing-score"]["container"]["command"][-1]
    )


@pytest.mark.slow
def test_the_fan_out_runs_under_kfp_local_as_in_dagster(
    fan_out_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each iteration is its own task; the collected result equals Dagster's, in its order."""
    log_dir = tmp_path / "run_log"
    log_dir.mkdir()
    monkeypatch.setenv(fan_out.RUN_LOG_DIR, str(log_dir))
    succeeded, run_dir = run_yaml(fan_out_yaml, tmp_path / "root", windows=[5, 3], horizon=2)
    assert succeeded
    iterations = sorted(run_dir.glob("for-loop-*-iteration-*/smoothing-score/smoothing__score"))
    assert len(iterations) == 2
    keys = {
        json.loads((p.parent / "executor_output.json").read_text())["artifacts"][
            "smoothing__score"
        ]["artifacts"][0]["metadata"][MAPPING_KEY_METADATA]
        for p in iterations
    }
    assert keys == {"window_5", "window_3"}

    dagster = materialize(
        [*fan_out.defs.assets, *fan_out.defs.asset_checks],
        resources=fan_out.defs.resources,
        run_config={
            "ops": {
                "smoothing": {
                    "ops": {
                        "plan": {"config": {"windows": [5, 3]}},
                        "score": {"config": {"horizon": 2}},
                    }
                }
            }
        },
        instance=DagsterInstance.ephemeral(),
    )
    chosen = read_value(run_dir / "smoothing-choose" / "smoothing__choose")
    assert chosen == dagster.output_for_node("smoothing")
    assert [s["key"] for s in chosen["scores"]] == ["window_5", "window_3"]  # Dagster's order
    assert read_value(run_dir / "report" / "report") == dagster.output_for_node("report")
    executor_output = json.loads(
        (run_dir / "smoothing-choose" / "executor_output.json").read_text()
    )
    (metrics,) = executor_output["artifacts"]["metrics"]["artifacts"]
    assert metrics["metadata"] == chosen["metrics"]  # kfp/metrics of the graph-backed asset

    # The tracking protocol: every task, each iteration too, saw the run's one id.
    events = [json.loads(line) for line in (log_dir / f"{run_dir.name}.jsonl").open()]
    assert [p.name for p in log_dir.iterdir()] == [f"{run_dir.name}.jsonl"]
    assert sorted(e["key"] for e in events if e.get("op") == "score") == ["window_3", "window_5"]
    assert {"check": "every_candidate_scored"} in events  # in the final op's task
    assert events[-1] == {"status": "FINISHED"}


def _run_ops(module: str, asset: str, inputs: dict[str, Any], root: Path) -> Any:
    """Run each op of ``asset`` through its task spec, wiring artifacts as the emitted YAML does."""
    assets_def = sys.modules[module].defs.get_assets_def(asset)
    plan = analyze_graph(assets_def, asset)
    outputs: dict[tuple[str, str | None], Any] = {}
    items: dict[str, list[str]] = {}

    def artifact(name: str, key: str | None) -> Any:
        path = root / name / (key or "single") / "value"
        return SimpleNamespace(path=str(path), uri=f"gs://bucket/{name}/{key}", metadata={})

    def run(node: Any, loop_item: str) -> None:
        key = json.loads(loop_item)["key"] if loop_item else None
        item_key = key if node.loop else None
        name = f"{asset}__{node.name}"
        spec = task_spec(module, name)
        arguments: dict[str, Any] = {**defaults(module, name), "loop_item": loop_item}
        for source in spec.inputs:
            if source.kind == "asset":
                arguments[source.argument] = inputs[source.source]
            elif source.kind == "op":
                upstream_key = item_key if plan.node(source.source).loop else None
                arguments[source.argument] = outputs[(source.source, upstream_key)]
            elif source.kind == "collected":
                keys = [json.loads(t)["key"] for t in items[plan.node(source.source).loop]]
                arguments[source.argument] = [outputs[(source.source, k)] for k in reversed(keys)]
            elif source.kind == "items":
                arguments[source.argument] = items[source.source]
        output = arguments[spec.output] = artifact(node.name, item_key)
        returned = run_task(spec, arguments)
        outputs[(node.name, item_key)] = output
        if node.dynamic:
            items[node.name] = returned

    for node in plan.nodes:
        if node.loop:
            for text in items[node.loop]:
                run(node, text)
        else:
            run(node, "")
    return read_value(outputs[(plan.final.name, None)].path), outputs


def test_chained_mapped_ops_and_collected_items_run_one_op_at_a_time(tmp_path: Path) -> None:
    """The runtime alone: an op chain inside a fan-out reading an op outside it, the items
    collected, a second io manager; collected artifacts handed over in reverse are matched by
    their mapping key."""
    numbers = tmp_path / "numbers"
    numbers.write_text(json.dumps([1, 2, 3, 4, 5, 6]))
    value, outputs = _run_ops(
        "tests.graphs.fan_out_chain", "totals", {"numbers": str(numbers)}, tmp_path
    )
    dagster = materialize(
        [*fan_out_chain.defs.assets],
        resources=fan_out_chain.defs.resources,
        instance=DagsterInstance.ephemeral(),
    )
    assert value == dagster.output_for_node("totals")
    assert [r["key"] for r in value["results"]] == ["from_1", "from_3", "from_5"]
    assert outputs[("offset", "from_3")].metadata == {MAPPING_KEY_METADATA: "from_3"}
    assert read_value(outputs[("split", None)].path) == [
        {"key": "from_1", "value": [1, 2]},
        {"key": "from_3", "value": [3, 4]},
        {"key": "from_5", "value": [5, 6]},
    ]


def test_a_fan_out_item_json_would_change_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tuple_items.py").write_text(
        textwrap.dedent("""
        from dagster import Definitions, DynamicOut, DynamicOutput, graph_asset, op

        @op(out=DynamicOut())
        def plan():
            yield DynamicOutput((1, 2), mapping_key="pair")

        @op
        def total(values: list) -> int:
            return sum(sum(v) for v in values)

        @graph_asset
        def pairs() -> int:
            return total(plan().collect())

        defs = Definitions(assets=[pairs])
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    output = tmp_path / "plan"
    with pytest.raises(TypeError, match=r"asset 'pairs', op 'plan'.*'pair' is a tuple"):
        run_exported_task("tuple_items", "pairs__plan", pairs__plan=str(output))
    assert not output.exists()


def test_loading_an_input_reports_the_artifact_uri(tmp_path: Path) -> None:
    """The lineage code names its dataset source from the input metadata ``uri``."""
    source = tmp_path / "raw"
    source.write_text(json.dumps({"rows": 3}))

    @asset
    def summary(raw: dict) -> dict:
        return raw

    manager = ArtifactIOManager(
        {"raw": str(source), "summary": str(tmp_path / "summary")},
        uris={"raw": "minio://mlpipeline/v2/artifacts/p/run/raw/1/raw"},
    )
    result = materialize(
        [AssetSpec("raw"), summary],
        resources={"io_manager": manager},
        instance=DagsterInstance.ephemeral(),
    )
    (loaded,) = [e for e in result.all_events if e.event_type_value == "LOADED_INPUT"]
    uri = loaded.event_specific_data.metadata["uri"]
    assert getattr(uri, "value", uri) == "minio://mlpipeline/v2/artifacts/p/run/raw/1/raw"
    assert read_value(tmp_path / "summary") == {"rows": 3}


def test_parallelism_from_the_assets_metadata_and_no_limit_by_default() -> None:
    @op(out=DynamicOut())
    def plan():  # noqa: ANN202
        yield DynamicOutput(1, mapping_key="one")

    @op
    def double(n: int) -> int:
        return 2 * n

    @op
    def add(values: list) -> int:
        return sum(values)

    @graph_asset(metadata={"kfp/parallelism": 3})
    def limited() -> int:
        return add(plan().map(double).collect())

    @graph_asset
    def unlimited() -> int:
        return add.alias("add_all")(plan.alias("plan_all")().map(double.alias("twice")).collect())

    graph = read_graph(Definitions(assets=[limited, unlimited]), "m", [])
    tasks = {t.asset: t for t in graph.tasks}
    assert tasks["limited"].parallelism == {"plan": 3}
    assert tasks["unlimited"].parallelism == {"plan_all": 0}
    assert [o.function_name for o in tasks["unlimited"].ops] == [
        "unlimited__plan_all",
        "unlimited__twice",
        "unlimited__add_all",
    ]


def test_a_schedule_sets_op_config_of_a_graph_backed_asset() -> None:
    defs = fan_out.defs
    graph = read_graph(defs, "tests.graphs.fan_out", tracking_resource_keys(defs))
    recurring = recurring_run_from_schedule(defs, graph, "nightly_smoothing")
    assert recurring.parameters == {"horizon": 2}


@op(out=DynamicOut())
def _items():  # noqa: ANN202
    yield DynamicOutput(1, mapping_key="one")


@op(out={"low": DynamicOut(int), "high": DynamicOut(int)})
def _two(n: int):  # noqa: ANN202 - two fan-outs from one op (Dagster refuses nested ones)
    yield DynamicOutput(n, output_name="low", mapping_key="low")
    yield DynamicOutput(n, output_name="high", mapping_key="high")


@op
def _total(values: list) -> int:
    return sum(values)


@op
def _one() -> int:
    return 1


@graph(out={"result": GraphOut()})
def _inner(n: int) -> Any:
    return _total([n])


@graph_asset
def two_outputs() -> int:
    low, _high = _two(_one())
    return _total(low.collect())


@graph_asset
def nested_graph() -> int:
    return _inner(_one())


@graph_asset
def fan_in_list() -> int:
    return _total.alias("fan_in")([_one.alias("a")(), _one.alias("b")()])


@op
def _pair(first: list, second: list) -> int:
    return len(first) + len(second)


@graph_asset
def two_fan_outs() -> int:
    return _pair(_items().collect(), _items.alias("more_items")().collect())


@op(tags={"kfp/parallelism": "two"})
def _badly_tagged(n: int) -> int:
    return n


@graph_asset
def bad_parallelism() -> int:
    return _total(_items().map(_badly_tagged).collect())


@op(ins={"n": In(int)})
def _free(n: int) -> int:
    return n


@graph_asset
def unconnected() -> int:
    return _free()


@pytest.mark.parametrize(
    ("graph_asset_def", "message"),
    [
        (two_outputs, r"asset 'two_outputs': op '_two' with 2 outputs"),
        (nested_graph, r"asset 'nested_graph': op '_inner' is a nested graph"),
        (fan_in_list, r"asset 'fan_in_list': input 'values' of op 'fan_in' fans in several"),
        (bad_parallelism, r"asset 'bad_parallelism': op '_badly_tagged': 'kfp/parallelism: two'"),
        (unconnected, r"asset 'unconnected': input 'n' of op '_free' is not connected"),
        (two_fan_outs, r"asset 'two_fan_outs': op '_pair' collects several fan-outs"),
    ],
)
def test_what_cannot_be_translated_is_a_clear_error(graph_asset_def: Any, message: str) -> None:
    with pytest.raises(UnsupportedConstructError, match=message):
        read_graph(Definitions(assets=[graph_asset_def]), "m", [])
