"""Reading a Dagster ``Definitions`` into the plain description of a KFP pipeline.

Everything comes from the graph: tasks and edges from the asset graph, parameters from each
asset's ``Config`` class, artifact types from kinds, per-task settings from retry policies,
op tags and code versions, and two metadata hints the graph itself carries:

* ``kfp/run_if: "<asset>.<field>"`` on an asset with ``output_required=False``: its task runs
  under ``dsl.If`` on that boolean of the upstream asset's value;
* ``kfp/metrics: "<field>"``: the numbers under that field of the asset's value are also logged
  to a KFP ``Metrics`` output;
  (these two as the asset's metadata or as a tag of its op, or of an op of its graph: an op tag
  stays off the asset's page in the Dagster UI)
* ``kfp/cache: "false"`` (op tag): the task is never cached, even with a code version (an
  asset with side effects, e.g. one that registers or promotes a model);
* ``kfp/parallelism: <n>`` (op tag of an op inside a fan-out, or metadata of a graph-backed
  asset): at most ``n`` iterations of the fan-out run at once (default: all).

A graph-backed asset (``@graph_asset``) becomes one task per op (:mod:`exporters.kfp.ops`), named
``<asset>__<op>``; a dynamic fan-out becomes a ``dsl.ParallelFor`` over the items its
``DynamicOut`` op emits, and ``.collect()`` a ``dsl.Collected`` input.

A construct with no faithful translation raises :class:`UnsupportedConstructError` naming the
asset and the construct, never a silently wrong pipeline.
"""

from __future__ import annotations

import re
from typing import Any

from dagster import AssetsDefinition, Definitions

from exporters.kfp import settings
from exporters.kfp.config import config_parameters, flatten_parameter_names
from exporters.kfp.dagster_private import op_code_version
from exporters.kfp.errors import UnsupportedConstructError
from exporters.kfp.k8s import K8sSettings
from exporters.kfp.model import (
    RESERVED_NAMES,
    AssetTask,
    OpTask,
    Parameter,
    PipelineGraph,
    kfp_name,
    python_name,
)
from exporters.kfp.ops import ASSET, analyze_graph, is_graph_asset
from exporters.kfp.stubs import argument_names

#: Artifact type per Dagster kind; anything else is a generic Artifact.
ARTIFACT_TYPES = {"pandas": "Dataset", "polars": "Dataset", "scikit-learn": "Model"}

__all__ = [
    "AssetTask",
    "OpTask",
    "Parameter",
    "PipelineGraph",
    "UnsupportedConstructError",
    "kfp_name",
    "python_name",
    "read_graph",
]


def read_graph(defs: Definitions, module: str, tracking_keys: list[str]) -> PipelineGraph:
    """Translate ``defs`` into tasks, raising on any construct we cannot export."""
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.toposorted_asset_keys if graph.get(k).is_materializable]
    groups = {defs.get_assets_def(k).group_names_by_key[k] for k in keys}
    label = groups.pop() if len(groups) == 1 and "default" not in groups else module
    tasks: dict[str, AssetTask] = {}
    for key in keys:
        assets_def = defs.get_assets_def(key)
        name = key.to_user_string()
        _reject_unsupported(assets_def, name)
        parents = sorted(p.to_user_string() for p in graph.get(key).parent_keys)
        for parent in parents:
            if parent not in tasks:
                raise UnsupportedConstructError(
                    name,
                    f"upstream {parent!r} is an external (non-materialisable) asset",
                    "Give it a materialisable definition in the same Definitions.",
                )
        # deps= without data are Nothing-typed inputs in Dagster: ordering edges, no artifact.
        loaded = {
            k.to_user_string()
            for input_name, k in assets_def.keys_by_input_name.items()
            if not assets_def.node_def.input_def_named(input_name).dagster_type.is_nothing
        }
        spec = assets_def.specs_by_key[key]
        metadata = {**settings.op_hints(assets_def), **assets_def.metadata_by_key.get(key, {})}
        graph_backed = is_graph_asset(assets_def)
        tasks[name] = AssetTask(
            asset=name,
            function_name=python_name(name),
            op_name=assets_def.node_def.name,
            description=(assets_def.descriptions_by_key.get(key) or "").strip(),
            upstream=[p for p in parents if p in loaded],
            order_only=[p for p in parents if p not in loaded],
            artifact_type=_artifact_type(spec.kinds),
            parameters=[] if graph_backed else config_parameters(assets_def.op, name),
            run_if=settings.run_if(metadata, assets_def, name, parents),
            metrics_field=settings.metadata_text(metadata.get(settings.METRICS_KEY)),
            code_version=settings.cached_version(
                assets_def.code_versions_by_key.get(key),
                {} if graph_backed else assets_def.op.tags,
            ),
            retry=None if graph_backed else settings.retry(assets_def.op.retry_policy, name),
            k8s=(
                K8sSettings()
                if graph_backed
                else settings.k8s(dict(assets_def.op.tags), metadata, name)
            ),
            check_names=sorted(
                c.name
                for checks in defs.asset_checks or []
                for c in checks.check_keys
                if c.asset_key == key
            ),
        )
        if graph_backed:
            _read_ops(tasks[name], assets_def, metadata)
    for task in tasks.values():
        task.upstream_types = {up: tasks[up].artifact_type for up in task.upstream}
        if task.run_if:
            tasks[task.run_if[0]].gate_field = task.run_if[1]
    owners = [owner for task in tasks.values() for owner in task.config_owners]
    flatten_parameter_names(owners)
    _check_names(list(tasks.values()))
    return PipelineGraph(
        module=module,
        tasks=list(tasks.values()),
        tracking_keys=list(tracking_keys),
        name=re.sub(r"[^a-z0-9-]+", "-", label.lower()).strip("-"),
    )


def _check_names(tasks: list[AssetTask]) -> None:
    """Refuse two tasks with one KFP task name, and argument or parameter name clashes."""
    owners = [owner for task in tasks for owner in task.config_owners]
    by_task: dict[str, AssetTask | OpTask] = {}
    for owner in owners:
        other = by_task.setdefault(kfp_name(owner.function_name), owner)
        if other is not owner:
            what = "asset" if isinstance(other, AssetTask) else "asset, op"
            raise UnsupportedConstructError(
                owner.asset,
                f"{_where(owner)}its KFP task name {kfp_name(owner.function_name)!r} is also "
                f"that of {what} {other.label!r}",
                "KFP names tasks by lowercasing and replacing '/', '_' and other characters "
                "with '-': rename one of the assets or ops.",
            )
    by_parameter: dict[str, AssetTask | OpTask] = {}
    for owner in owners:
        for parameter in owner.parameters:
            other = by_parameter.setdefault(parameter.name, owner)
            if other is not owner:
                raise UnsupportedConstructError(
                    owner.asset,
                    f"{_where(owner)}its pipeline parameter {parameter.name!r} is also a "
                    f"parameter of {other.label!r}",
                    "Rename the config field.",
                )
    for task in tasks:
        for owner in task.config_owners:
            _check_arguments(task, owner)


def _check_arguments(task: AssetTask, owner: AssetTask | OpTask) -> None:
    """Refuse a config field named like another argument of its component."""
    taken = set(argument_names(task, owner))
    clashes = sorted((taken | RESERVED_NAMES) & {p.name for p in owner.parameters})
    if clashes:
        raise UnsupportedConstructError(
            owner.asset,
            f"{_where(owner)}config field(s) {', '.join(clashes)} named like an upstream "
            "asset or op, the task itself or a generated argument",
            "Rename the field.",
        )


def _where(owner: AssetTask | OpTask) -> str:
    return f"op {owner.node!r}: " if isinstance(owner, OpTask) else ""


def _reject_unsupported(assets_def: AssetsDefinition, name: str) -> None:
    if assets_def.partitions_def is not None:
        raise UnsupportedConstructError(
            name,
            f"partitions ({type(assets_def.partitions_def).__name__})",
            "Export an unpartitioned graph; a partition would map to a ParallelFor item.",
        )
    if len(assets_def.keys) > 1:
        raise UnsupportedConstructError(
            name,
            f"a multi-asset producing {len(assets_def.keys)} assets",
            "Split it into one @asset per output.",
        )
    if is_graph_asset(assets_def):
        return  # each op's output is stored through the io_manager of its own key
    output_defs = assets_def.op.output_defs
    if any(o.io_manager_key != "io_manager" for o in output_defs):
        raise UnsupportedConstructError(
            name, "a custom io_manager_key", "KFP artifacts replace the IO manager."
        )


def _read_ops(task: AssetTask, assets_def: AssetsDefinition, metadata: dict[str, Any]) -> None:
    """The op tasks of a graph-backed asset, and the parallelism of each of its fan-outs."""
    name = task.asset
    plan = analyze_graph(assets_def, name)
    for node in plan.nodes:
        for source in node.inputs:
            if source.kind == ASSET and source.source not in task.upstream:
                raise UnsupportedConstructError(
                    name, f"op {node.name!r} reads asset {source.source!r}, not an upstream"
                )
        where = f"op {node.name!r}: "
        task.ops.append(
            OpTask(
                asset=name,
                node=node.name,
                function_name=python_name(f"{name}__{node.name}"),
                op_name=f"{plan.graph_name}.{node.name}",
                description=(node.op_def.description or "").strip(),
                inputs=list(node.inputs),
                after=list(node.after),
                order_assets=list(node.order_assets),
                dynamic=node.dynamic,
                loop=node.loop,
                final=node.final,
                artifact_type=task.artifact_type if node.final else "Artifact",
                parameters=config_parameters(node.op_def, name, where),
                code_version=settings.cached_version(
                    op_code_version(node.op_def) or task.code_version, node.tags
                ),
                retry=settings.retry(node.retry_policy, name, where),
                k8s=settings.k8s(node.tags, metadata, name, where),
            )
        )
    for fan_out in (n for n in plan.nodes if n.dynamic):
        members = plan.loop_members(fan_out.name)
        task.parallelism[fan_out.name] = settings.parallelism(fan_out, members, metadata, name)


def _artifact_type(kinds: set[str] | frozenset[str]) -> str:
    for kind in sorted(kinds):
        if kind in ARTIFACT_TYPES:
            return ARTIFACT_TYPES[kind]
    return "Artifact"
