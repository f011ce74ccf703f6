"""The ops of a graph-backed asset, as the exporter and the KFP runtime both read them.

A ``@graph_asset`` becomes one KFP task per op. Each op has exactly one output; its inputs come
from an upstream asset, from another op, from the items of a dynamic fan-out (``DynamicOut`` ->
``.map``) or from the collected results of one (``.collect()``). An op downstream of a
``DynamicOut`` and before the ``.collect()`` runs once per item: inside a ``dsl.ParallelFor``
over the items the fan-out op emits.

:func:`analyze_graph` reads this from the graph's dependency structure, in an order where the
ops of one fan-out are contiguous, and raises :class:`UnsupportedConstructError` for anything
else (nested graphs, nested fan-outs, ops with several outputs, several outputs fanned in).
Imports Dagster only: the runtime uses it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dagster import AssetsDefinition, GraphDefinition, OpDefinition

from exporters.kfp.dagster_private import dependency_structure
from exporters.kfp.errors import UnsupportedConstructError

#: Where an op input's value comes from.
ASSET = "asset"  # an upstream asset's artifact (a graph input)
OP = "op"  # another op's artifact: outside the fan-out, or the same iteration of it
ITEM = "item"  # this iteration's item of the fan-out
COLLECTED = "collected"  # every iteration's output of an op in a fan-out, as a list
COLLECTED_ITEMS = "collected_items"  # the fan-out's items themselves, as a list

#: Op tag or asset metadata: how many iterations of a fan-out run at once (default: all).
PARALLELISM_KEY = "kfp/parallelism"


@dataclass(frozen=True)
class OpInput:
    """One input of an op and its source."""

    name: str  # the op's input name
    kind: str  # ASSET, OP, ITEM, COLLECTED or COLLECTED_ITEMS
    source: str  # the upstream asset key (ASSET) or the upstream node's name
    output: str = ""  # the upstream node's output name


@dataclass
class OpNode:
    """One op of the graph: one KFP task (one per item inside a fan-out)."""

    name: str  # the node's name in the graph (the op's name, or its alias)
    op_def: OpDefinition
    output: str  # its single output's name
    io_manager_key: str
    dynamic: bool  # a DynamicOut: emits the items of a fan-out
    loop: str | None  # the fan-out op whose items it runs over, if any
    final: bool  # its output is the asset's value
    inputs: list[OpInput] = field(default_factory=list)
    after: list[str] = field(default_factory=list)  # ops it waits for without data (Nothing)
    order_assets: list[str] = field(default_factory=list)  # assets it waits for without data
    tags: dict[str, Any] = field(default_factory=dict)
    retry_policy: Any = None


@dataclass
class GraphPlan:
    """A graph-backed asset's ops, in emission order (a fan-out's ops contiguous)."""

    asset: str
    graph_name: str
    nodes: list[OpNode]

    def node(self, name: str) -> OpNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"asset {self.asset!r} has no op {name!r}")

    @property
    def final(self) -> OpNode:
        return next(n for n in self.nodes if n.final)

    def loop_members(self, plan_node: str) -> list[OpNode]:
        return [n for n in self.nodes if n.loop == plan_node]


def is_graph_asset(assets_def: AssetsDefinition) -> bool:
    return isinstance(assets_def.node_def, GraphDefinition)


def analyze_graph(assets_def: AssetsDefinition, asset: str) -> GraphPlan:
    """The ops of a graph-backed asset and where each input comes from."""
    graph = assets_def.node_def
    assert isinstance(graph, GraphDefinition)
    if graph.config_mapping is not None:
        raise UnsupportedConstructError(
            asset,
            "a graph config mapping",
            "Give each op a dagster.Config class instead; its fields become pipeline parameters.",
        )
    if assets_def.check_specs_by_output_name:
        raise UnsupportedConstructError(
            asset,
            "asset checks produced inside the graph (check_specs)",
            "Define them with @asset_check on the asset: they run in the task of its final op.",
        )
    if len(graph.output_mappings) != 1:
        raise UnsupportedConstructError(
            asset, f"a graph with {len(graph.output_mappings)} outputs", "Return one value."
        )
    (output_mapping,) = graph.output_mappings
    if output_mapping.from_dynamic_mapping:
        raise UnsupportedConstructError(
            asset, "a graph returning a dynamic output", "Collect it with .collect() first."
        )
    final = output_mapping.maps_from.node_name
    structure = dependency_structure(graph)

    asset_inputs: dict[tuple[str, str], str] = {}
    for mapping in graph.input_mappings:
        target = mapping.maps_to
        if getattr(target, "fan_in_index", None) is not None:
            raise UnsupportedConstructError(
                asset, f"graph input {mapping.graph_input_name!r} fanned into a list input"
            )
        key = assets_def.keys_by_input_name[mapping.graph_input_name]
        asset_inputs[(target.node_name, target.input_name)] = key.to_user_string()

    nodes: dict[str, OpNode] = {}
    for node in graph.nodes:
        where = f"op {node.name!r}"
        if not isinstance(node.definition, OpDefinition):
            raise UnsupportedConstructError(
                asset, f"{where} is a nested graph", "Inline its ops in the asset's graph."
            )
        if node.hook_defs:
            raise UnsupportedConstructError(asset, f"hooks on {where}")
        outputs = node.definition.output_defs
        if len(outputs) != 1 or outputs[0].dagster_type.is_nothing:
            raise UnsupportedConstructError(
                asset,
                f"{where} with {len(outputs)} outputs",
                "Each op of an exported graph returns exactly one value.",
            )
        loop_source = structure.get_upstream_dynamic_output_for_node(node.name)
        loop = loop_source.node_name if loop_source else None
        if outputs[0].is_dynamic and loop:
            raise UnsupportedConstructError(
                asset,
                f"a nested dynamic fan-out ({where} emits a DynamicOut inside the fan-out of "
                f"{loop!r})",
                "KFP runs one level of ParallelFor here: fan out once.",
            )
        nodes[node.name] = OpNode(
            name=node.name,
            op_def=node.definition,
            output=outputs[0].name,
            io_manager_key=outputs[0].io_manager_key,
            dynamic=outputs[0].is_dynamic,
            loop=loop,
            final=node.name == final,
            tags=dict(node.tags),
            retry_policy=node.retry_policy or node.definition.retry_policy,
        )

    for node in graph.nodes:
        op_node = nodes[node.name]
        for input_def in node.definition.input_defs:
            _read_input(asset, graph, structure, nodes, op_node, node, input_def, asset_inputs)
        collected = {
            nodes[i.source].loop if i.kind == COLLECTED else i.source
            for i in op_node.inputs
            if i.kind in (COLLECTED, COLLECTED_ITEMS)
        }
        if len(collected) > 1:
            raise UnsupportedConstructError(
                asset,
                f"op {node.name!r} collects several fan-outs "
                f"({', '.join(sorted(map(str, collected)))})",
                "Collect each in its own op.",
            )

    ordered = _emission_order(asset, nodes)
    return GraphPlan(asset=asset, graph_name=graph.name, nodes=ordered)


def _read_input(
    asset: str,
    graph: GraphDefinition,
    structure: Any,
    nodes: dict[str, OpNode],
    op_node: OpNode,
    node: Any,
    input_def: Any,
    asset_inputs: dict[tuple[str, str], str],
) -> None:
    where = f"input {input_def.name!r} of op {node.name!r}"
    nothing = input_def.dagster_type.is_nothing
    handle = node.get_input(input_def.name)
    if (node.name, input_def.name) in asset_inputs:
        key = asset_inputs[(node.name, input_def.name)]
        if nothing:
            op_node.order_assets.append(key)
        else:
            op_node.inputs.append(OpInput(input_def.name, ASSET, key))
        return
    if structure.has_direct_dep(handle):
        source = structure.get_direct_dep(handle)
        upstream = nodes[source.node_name]
        if nothing:
            if upstream.loop != op_node.loop or upstream.dynamic:
                raise UnsupportedConstructError(
                    asset, f"{where}: an ordering edge across a fan-out", "Pass a value instead."
                )
            op_node.after.append(upstream.name)
            return
        kind = ITEM if upstream.dynamic else OP
        op_node.inputs.append(OpInput(input_def.name, kind, upstream.name, source.output_name))
        return
    if structure.has_dynamic_fan_in_dep(handle):
        source = structure.get_dynamic_fan_in_dep(handle)
        upstream = nodes[source.node_name]
        if nothing:
            raise UnsupportedConstructError(asset, f"{where}: a collected Nothing input")
        kind = COLLECTED_ITEMS if upstream.dynamic else COLLECTED
        op_node.inputs.append(OpInput(input_def.name, kind, upstream.name, source.output_name))
        return
    if structure.has_fan_in_deps(handle):
        raise UnsupportedConstructError(
            asset,
            f"{where} fans in several outputs as a list",
            "Pass them as separate inputs, or fan out with DynamicOut and .collect().",
        )
    if not (nothing or input_def.has_default_value):
        raise UnsupportedConstructError(asset, f"{where} is not connected")


def _emission_order(asset: str, nodes: dict[str, OpNode]) -> list[OpNode]:
    """Topological order in which the ops of one fan-out are contiguous (one ParallelFor)."""

    def group(name: str) -> str:
        loop = nodes[name].loop
        return f"loop:{loop}" if loop else f"op:{name}"

    def sources(node: OpNode) -> set[str]:
        names = {i.source for i in node.inputs if i.kind != ASSET} | set(node.after)
        return names

    groups: dict[str, list[str]] = {}
    for name in sorted(nodes):
        groups.setdefault(group(name), []).append(name)
    edges: dict[str, set[str]] = {g: set() for g in groups}
    for name, node in nodes.items():
        for source in sources(node):
            if group(source) != group(name):
                edges[group(name)].add(group(source))
    ordered: list[str] = []
    done: set[str] = set()
    while len(done) < len(groups):
        ready = sorted(g for g in groups if g not in done and edges[g] <= done)
        if not ready:
            stuck = sorted(g.removeprefix("loop:") for g in groups if g not in done)
            raise UnsupportedConstructError(
                asset,
                f"a fan-out whose mapped ops depend on the collected result of a fan-out "
                f"({', '.join(stuck)})",
                "Fan out again from a new DynamicOut op.",
            )
        head = ready[0]
        ordered.extend(_toposort(groups[head], nodes, sources))
        done.add(head)
    return [nodes[name] for name in ordered]


def _toposort(names: list[str], nodes: dict[str, OpNode], sources: Any) -> list[str]:
    members = set(names)
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = sorted(
            n for n in names if n not in ordered and sources(nodes[n]) & members <= set(ordered)
        )
        ordered.append(ready[0])
    return ordered
