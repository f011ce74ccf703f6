"""One op of a graph-backed asset, cut out of its graph to run alone in a KFP task."""

from __future__ import annotations

from typing import Any

from dagster import (
    AssetsDefinition,
    DependencyDefinition,
    DynamicOut,
    DynamicOutput,
    GraphDefinition,
    In,
    InputMapping,
    NodeInvocation,
    Nothing,
    OpDefinition,
    Out,
    OutputMapping,
    op,
)

from exporters.kfp.dagster_private import asset_with_node, collect_dependency, op_without_retries
from exporters.kfp.ops import ASSET, COLLECTED, COLLECTED_ITEMS, ITEM, OP, GraphPlan, OpNode


def without_retries(assets_def: AssetsDefinition) -> AssetsDefinition:
    """A copy of an op-backed asset without its RetryPolicy, to run once inside a KFP task.

    The exporter turns the policy into the task's KFP retry policy (``set_retry``), so KFP
    retries the pod; Dagster would retry in the pod as well, and n retries would become up to
    (n + 1) ** 2 attempts. The in-process executor's ``retries: disabled`` does not stop them
    (checked with Dagster 1.13: a failing asset with ``RetryPolicy(max_retries=2)`` still ran
    twice), hence a copy whose op has no policy.
    """
    op_def = assets_def.node_def
    if not isinstance(op_def, OpDefinition) or op_def.retry_policy is None:
        return assets_def
    return asset_with_node(assets_def, op_without_retries(op_def))


def one_op_graph(
    assets_def: AssetsDefinition,
    plan: GraphPlan,
    node: OpNode,
    item: dict[str, Any] | None,
    entries: list[dict[str, Any]],
) -> tuple[GraphDefinition, frozenset[str]]:
    """The asset's graph cut down to ``node``, its upstream ops replaced by stand-ins.

    A stand-in has the upstream op's node name and output name, so the op's inputs resolve as
    in the whole graph (and Dagster's io manager is asked for them); a fan-out op's stand-in
    re-emits the items (this iteration's, or all of them for a collect), and an op mapped over
    it is stood in for once per item. When ``node`` is not the final op, a ``Nothing`` op stands
    for the asset's output (a graph-backed asset must end in it).
    """
    graph = assets_def.node_def
    if not isinstance(graph, GraphDefinition):
        raise TypeError(f"{assets_def.key.to_user_string()} is not a graph-backed asset")
    prefix = "kfp_stand_in__"
    definitions: dict[str, OpDefinition] = {}
    dependencies: dict[NodeInvocation, dict[str, Any]] = {}

    def fan_out(name: str, emitted: list[dict[str, Any]]) -> None:
        if name in definitions:
            return
        upstream = plan.node(name)

        @op(name=f"{prefix}{name}", out={upstream.output: DynamicOut()})
        def _emit():  # noqa: ANN202 - a Dagster op body
            for entry in emitted:
                yield DynamicOutput(
                    entry["value"], mapping_key=entry["key"], output_name=upstream.output
                )

        definitions[name] = _emit
        dependencies[NodeInvocation(_emit.name, alias=name)] = {}

    def stand_in(name: str) -> None:
        if name in definitions:
            return
        upstream = plan.node(name)
        ins = {}
        if upstream.loop:
            this_item = [item] if item is not None else []
            fan_out(upstream.loop, this_item if node.loop == upstream.loop else entries)
            ins["fan_out"] = In(Nothing)

        @op(name=f"{prefix}{name}", ins=ins, out={upstream.output: Out()})
        def _value():  # noqa: ANN202 - a Dagster op body
            return None  # the io manager loads the value KFP passed in

        definitions[name] = _value
        deps = {}
        if upstream.loop:
            deps["fan_out"] = DependencyDefinition(upstream.loop, plan.node(upstream.loop).output)
        dependencies[NodeInvocation(_value.name, alias=name)] = deps

    target: dict[str, Any] = {}
    input_mappings = []
    graph_inputs = {(m.maps_to.node_name, m.maps_to.input_name): m for m in graph.input_mappings}
    for source in node.inputs:
        upstream_output = source.output
        if source.kind == ASSET:
            mapping = graph_inputs[(node.name, source.name)]
            input_mappings.append(
                InputMapping(
                    graph_input_name=mapping.graph_input_name,
                    mapped_node_name=node.name,
                    mapped_node_input_name=source.name,
                    fan_in_index=None,
                    graph_input_description=mapping.graph_input_description,
                    dagster_type=mapping.dagster_type,
                )
            )
        elif source.kind == ITEM:
            fan_out(source.source, [item] if item is not None else [])
            target[source.name] = DependencyDefinition(source.source, upstream_output)
        elif source.kind == OP:
            stand_in(source.source)
            target[source.name] = DependencyDefinition(source.source, upstream_output)
        elif source.kind == COLLECTED:
            stand_in(source.source)
            target[source.name] = collect_dependency(source.source, upstream_output)
        elif source.kind == COLLECTED_ITEMS:
            fan_out(source.source, entries)
            target[source.name] = collect_dependency(source.source, upstream_output)
    # No retry_policy on the invocation, none on the op (see without_retries).
    dependencies[NodeInvocation(node.op_def.name, alias=node.name)] = target
    node_defs = [*definitions.values(), op_without_retries(node.op_def)]

    (graph_output,) = graph.output_mappings
    last, last_output = node.name, node.output
    if not node.final:

        @op(name=f"{prefix}asset_output", ins={"after": In(Nothing)}, out=Out(Nothing))
        def _asset_output() -> None:
            return None

        collect = node.loop or node.dynamic
        dependency = collect_dependency if collect else DependencyDefinition
        dependencies[NodeInvocation(_asset_output.name)] = {
            "after": dependency(node.name, node.output)
        }
        node_defs.append(_asset_output)
        last, last_output = _asset_output.name, "result"
    output_mapping = OutputMapping(
        graph_output_name=graph_output.graph_output_name,
        mapped_node_name=last,
        mapped_node_output_name=last_output,
        graph_output_description=graph_output.graph_output_description,
        dagster_type=graph_output.dagster_type if node.final else None,
        from_dynamic_mapping=False,
    )
    cut = GraphDefinition(
        name=graph.name,
        node_defs=node_defs,
        dependencies=dependencies,
        input_mappings=input_mappings,
        output_mappings=[output_mapping],
    )
    return cut, frozenset(d.name for d in definitions.values())
