"""The task runtime alone: each op of a graph-backed asset run as its own task, in turn."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dagster import AssetSpec, DagsterInstance, asset, materialize

from exporters.kfp.ops import analyze_graph
from exporters.kfp.runtime import MAPPING_KEY_METADATA, read_value, run_task
from exporters.kfp.runtime.artifacts import ArtifactIOManager
from tests.graphs import fan_out_chain
from tests.kfp_tasks import defaults, run_exported_task, task_spec


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
