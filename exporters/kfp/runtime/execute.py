"""Run one asset, or one op of a graph-backed asset, through Dagster at KFP's artifact paths.

The real code runs through ``dagster.materialize`` on an ephemeral instance, with its upstream
values loaded from the task's input artifacts and its value written to the output artifact, so
a KFP run and a Dagster run execute the same functions. Blocking asset checks of the asset run
in the task that produces its value: a failed check fails the task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    DagsterInstance,
    Definitions,
    IOManagerDefinition,
    materialize,
)

from exporters.kfp.ops import analyze_graph
from exporters.kfp.runtime.artifacts import (
    MAPPING_KEY_METADATA,
    ArtifactIOManager,
    artifact_path,
    artifact_uri,
    item_json,
    match_collected,
    write_value,
)
from exporters.kfp.runtime.identity import run_resources
from exporters.kfp.runtime.op_graph import one_op_graph, without_retries
from exporters.kfp.runtime.parameters import coerce_config
from exporters.kfp.spec import (
    ASSET_INPUT,
    COLLECTED_INPUT,
    ITEM_INPUT,
    ITEMS_INPUT,
    METRICS_ARGUMENT,
    OP_INPUT,
    TaskSpec,
)


@dataclass(frozen=True)
class TaskValues:
    """A task's arguments, by role (what the spec says each argument carries)."""

    output: Any  # the output artifact (or a path)
    config: dict[str, Any]  # config field -> value as KFP delivered it
    metrics: Any  # the KFP Metrics artifact, or None
    assets: dict[str, Any]  # upstream asset key -> artifact
    ops: dict[str, Any]  # upstream op -> artifact
    collected: dict[str, list[Any]]  # op inside a fan-out -> one artifact per iteration
    items: list[str]  # every item of the fan-out, as JSON texts
    item: dict[str, Any] | None  # this iteration's item

    @classmethod
    def of(cls, spec: TaskSpec, arguments: dict[str, Any]) -> TaskValues:
        (items,) = spec.inputs_of(ITEMS_INPUT, arguments).values() or [[]]
        (item,) = spec.inputs_of(ITEM_INPUT, arguments).values() or [""]
        return cls(
            output=arguments[spec.output],
            config=spec.config_values(arguments),
            metrics=arguments.get(METRICS_ARGUMENT) if spec.metrics_field else None,
            assets=spec.inputs_of(ASSET_INPUT, arguments),
            ops=spec.inputs_of(OP_INPUT, arguments),
            collected=spec.inputs_of(COLLECTED_INPUT, arguments),
            items=list(items or []),
            item=json.loads(item) if item else None,
        )

    def inputs(self) -> list[Any]:
        """Every input artifact."""
        return [*self.assets.values(), *self.ops.values(), *self.collected.values()]


def run_asset(defs: Definitions, spec: TaskSpec, values: TaskValues) -> bool:
    """Materialise an op-backed asset and its checks; return its gate (True without one)."""
    key = AssetKey.from_user_string(spec.asset)
    assets_def = defs.get_assets_def(key)
    output = artifact_path(values.output)
    resources, run_config = run_resources(defs, output)
    manager = _io_manager(defs, spec, values)
    resources["io_manager"] = IOManagerDefinition.hardcoded_io_manager(manager)
    op_config = coerce_config(assets_def, values.config, spec.parameter_names())
    if op_config:
        run_config["ops"] = {assets_def.op.name: {"config": op_config}}
    others = [a for a in defs.assets or [] if a is not assets_def]
    materialize(
        [*others, without_retries(assets_def), *(defs.asset_checks or [])],  # type: ignore[list-item]
        selection=AssetSelection.assets(key) | AssetSelection.checks_for_assets(key),
        resources=resources,
        run_config=run_config,
        instance=DagsterInstance.ephemeral(),
    )
    return report(manager.value, values.metrics, spec)


def run_op(defs: Definitions, spec: TaskSpec, values: TaskValues) -> Any:
    """Run one op of a graph-backed asset; return what its task returns.

    The op runs in a graph of its own where every upstream op is a stand-in that hands over the
    value KFP passed in (:func:`one_op_graph`), so Dagster maps, collects and names steps
    (``asset.op[key]``) as in a run of the whole graph. Collected artifacts are matched to the
    fan-out's items by the mapping key each iteration wrote into its artifact's metadata. A
    ``DynamicOut`` op returns its items as JSON texts; the final op runs the asset's checks and
    returns its gate (or True); other ops return None.
    """
    key = AssetKey.from_user_string(spec.asset)
    assets_def = defs.get_assets_def(key)
    plan = analyze_graph(assets_def, spec.asset)
    node = plan.node(spec.op)
    item = values.item
    entries = [json.loads(text) for text in values.items]
    node_paths: dict[tuple[str, str | None], tuple[str, str, str]] = {}

    def node_path(name: str, artifact: Any) -> tuple[str, str, str]:
        return artifact_path(artifact), artifact_uri(artifact), plan.node(name).io_manager_key

    for name, artifact in values.ops.items():
        mapping_key = item["key"] if item and plan.node(name).loop else None
        node_paths[(name, mapping_key)] = node_path(name, artifact)
    for name, artifacts in values.collected.items():
        for entry, artifact in match_collected(spec.asset, name, entries, artifacts):
            node_paths[(name, entry["key"])] = node_path(name, artifact)

    graph_def, stand_ins = one_op_graph(assets_def, plan, node, item, entries)
    used_inputs = {m.graph_input_name for m in graph_def.input_mappings}
    single = AssetsDefinition.from_graph(
        graph_def,
        keys_by_input_name={
            name: k for name, k in assets_def.keys_by_input_name.items() if name in used_inputs
        },
        keys_by_output_name={next(iter(assets_def.keys_by_output_name)): key},
    )
    output = artifact_path(values.output)
    resources, run_config = run_resources(defs, output)
    manager = _io_manager(
        defs,
        spec,
        values,
        storages={k: v for k, v in (defs.resources or {}).items() if k != "io_manager"},
        node_paths=node_paths,
        output=output,
        label=spec.label,
        stand_ins=stand_ins,
    )
    for io_manager_key in {"io_manager", node.io_manager_key}:
        resources[io_manager_key] = IOManagerDefinition.hardcoded_io_manager(manager)
    op_config = coerce_config(node.op_def, values.config, spec.parameter_names())
    if op_config:
        run_config["ops"] = {plan.graph_name: {"ops": {spec.op: {"config": op_config}}}}
    others = [a for a in defs.assets or [] if not _defines(a, key)]
    checks = list(defs.asset_checks or []) if node.final else []  # they read the final value
    selection = AssetSelection.assets(key).without_checks()
    if node.final:
        selection = selection | AssetSelection.checks_for_assets(key)
    materialize(
        [*others, single, *checks],  # type: ignore[list-item]
        selection=selection,
        resources=resources,
        run_config=run_config,
        instance=DagsterInstance.ephemeral(),
    )
    if item is not None and hasattr(values.output, "metadata"):
        values.output.metadata[MAPPING_KEY_METADATA] = item["key"]
    if node.dynamic:
        texts = [item_json(spec.asset, spec.op, k, v) for k, v in manager.emitted]
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        write_value(spec.label, output, [json.loads(t) for t in texts])
        return texts
    if node.final:
        return report(manager.value, values.metrics, spec)
    return None


def _io_manager(
    defs: Definitions, spec: TaskSpec, values: TaskValues, **extra: Any
) -> ArtifactIOManager:
    """The task's IO manager: upstream assets and this task's value at KFP's artifact paths."""
    assets = values.assets
    return ArtifactIOManager(
        {
            **{k: artifact_path(v) for k, v in assets.items()},
            spec.asset: artifact_path(values.output),
        },
        (defs.resources or {}).get("io_manager"),
        uris={k: artifact_uri(v) for k, v in assets.items()},
        **extra,
    )


def report(value: Any, metrics: Any, spec: TaskSpec) -> bool:
    """Log the metrics of the asset's value; return its gate (True without one)."""
    if metrics is not None and spec.metrics_field and value is not None:
        for name, number in sorted(_field(value, spec.metrics_field).items()):
            metrics.log_metric(name, float(number))
    if spec.gate_field:
        return bool(value is not None and _field(value, spec.gate_field))
    return True


def _defines(assets_def: Any, key: AssetKey) -> bool:
    return isinstance(assets_def, AssetsDefinition) and key in assets_def.keys


def _field(value: Any, name: str) -> Any:
    return value[name] if isinstance(value, dict) else getattr(value, name)
