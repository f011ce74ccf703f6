"""Reading a Dagster ``Definitions`` into the plain description of a KFP pipeline.

Everything comes from the graph: tasks and edges from the asset graph, parameters from each
asset's ``Config`` class, artifact types from kinds, per-task settings from retry policies,
op tags and code versions, and two metadata hints the graph itself carries:

* ``kfp/run_if: "<asset>.<field>"`` on an asset with ``output_required=False``: its task runs
  under ``dsl.If`` on that boolean of the upstream asset's value;
* ``kfp/metrics: "<field>"``: the numbers under that field of the asset's value are also logged
  to a KFP ``Metrics`` output.

A construct with no faithful translation raises :class:`UnsupportedConstructError` naming the
asset and the construct, never a silently wrong pipeline.
"""

from __future__ import annotations

import inspect
import keyword
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetsDefinition, Backoff, Config, Definitions
from dagster._core.definitions.graph_definition import GraphDefinition

RUN_IF_KEY = "kfp/run_if"
METRICS_KEY = "kfp/metrics"
K8S_CONFIG_TAG = "dagster-k8s/config"

#: Artifact type per Dagster kind; anything else is a generic Artifact.
ARTIFACT_TYPES = {"pandas": "Dataset", "polars": "Dataset", "scikit-learn": "Model"}
PARAM_TYPES: dict[Any, str] = {int: "int", float: "float", str: "str", bool: "bool"}
LIST_TYPES = {list[str], list[int], list[float], list[bool], list}


class UnsupportedConstructError(ValueError):
    """An asset uses something the exporter cannot translate to KFP."""

    def __init__(self, asset: str, construct: str, hint: str = "") -> None:
        message = f"asset {asset!r}: {construct} cannot be exported to KFP"
        super().__init__(f"{message}. {hint}".strip() if hint else message)


@dataclass(frozen=True)
class Parameter:
    """One pipeline parameter, from one field of an asset's Config."""

    name: str  # flat pipeline name, prefixed with the asset only on a clash
    field: str  # the Config field it feeds
    type_name: str  # int | float | str | bool | list
    default: Any
    description: str


@dataclass
class AssetTask:
    """Everything the compiler needs to emit one task."""

    asset: str
    function_name: str
    description: str
    upstream: list[str]
    order_only: list[str]  # deps without data (AssetDep): ordering edges
    artifact_type: str
    parameters: list[Parameter] = field(default_factory=list)
    run_if: tuple[str, str] | None = None
    gate_field: str = ""  # set on the asset a downstream run_if reads
    metrics_field: str = ""
    code_version: str | None = None
    retry: dict[str, Any] | None = None
    k8s_resources: dict[str, dict[str, str]] = field(default_factory=dict)
    check_names: list[str] = field(default_factory=list)
    upstream_types: dict[str, str] = field(default_factory=dict)


@dataclass
class PipelineGraph:
    """The asset graph, as tasks in topological order."""

    module: str
    tasks: list[AssetTask]
    uses_mlflow: bool
    name: str  # the assets' group when they share one, else the module

    @property
    def parameters(self) -> list[Parameter]:
        return [p for task in self.tasks for p in task.parameters]


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
            if not assets_def.op.input_def_named(input_name).dagster_type.is_nothing
        }
        spec = assets_def.specs_by_key[key]
        metadata = dict(assets_def.metadata_by_key.get(key, {}))
        tasks[name] = AssetTask(
            asset=name,
            function_name=python_name(name),
            description=(assets_def.descriptions_by_key.get(key) or "").strip(),
            upstream=[p for p in parents if p in loaded],
            order_only=[p for p in parents if p not in loaded],
            artifact_type=_artifact_type(spec.kinds),
            parameters=_config_parameters(assets_def, name),
            run_if=_run_if(metadata, assets_def, name, parents),
            metrics_field=_metadata_text(metadata.get(METRICS_KEY)),
            code_version=assets_def.code_versions_by_key.get(key),
            retry=_retry(assets_def),
            k8s_resources=_k8s_resources(assets_def, name),
            check_names=sorted(
                c.name
                for checks in defs.asset_checks or []
                for c in checks.check_keys
                if c.asset_key == key
            ),
        )
    for task in tasks.values():
        task.upstream_types = {up: tasks[up].artifact_type for up in task.upstream}
        if task.run_if:
            tasks[task.run_if[0]].gate_field = task.run_if[1]
    _flatten_parameter_names(list(tasks.values()))
    for task in tasks.values():
        taken = {python_name(up) for up in task.upstream} | {task.function_name} | RESERVED_NAMES
        clashes = sorted(taken & {p.name for p in task.parameters})
        if clashes:
            raise UnsupportedConstructError(
                task.asset,
                f"config field(s) {', '.join(clashes)} named like an upstream asset or a "
                "reserved argument",
                "Rename the field.",
            )
    return PipelineGraph(
        module=module,
        tasks=list(tasks.values()),
        uses_mlflow=bool(tracking_keys),
        name=re.sub(r"[^a-z0-9-]+", "-", label.lower()).strip("-"),
    )


def _reject_unsupported(assets_def: AssetsDefinition, name: str) -> None:
    if assets_def.partitions_def is not None:
        raise UnsupportedConstructError(
            name,
            f"partitions ({type(assets_def.partitions_def).__name__})",
            "Export an unpartitioned graph; a partition would map to a ParallelFor item.",
        )
    if isinstance(assets_def.node_def, GraphDefinition):
        raise UnsupportedConstructError(name, "a graph-backed asset (several ops)")
    if len(assets_def.keys) > 1:
        raise UnsupportedConstructError(
            name,
            f"a multi-asset producing {len(assets_def.keys)} assets",
            "Split it into one @asset per output.",
        )
    output_defs = assets_def.op.output_defs
    if any(o.io_manager_key != "io_manager" for o in output_defs):
        raise UnsupportedConstructError(
            name, "a custom io_manager_key", "KFP artifacts replace the IO manager."
        )


RESERVED_NAMES = {"kfp_run_id", "metrics"}


def python_name(asset: str) -> str:
    """A Python identifier for an asset key: function, artifact and argument name."""
    name = re.sub(r"\W", "_", asset.replace("/", "__"))
    if not name.isidentifier() or keyword.iskeyword(name) or name in RESERVED_NAMES:
        name = f"asset_{name}"
    return name


def _artifact_type(kinds: set[str] | frozenset[str]) -> str:
    for kind in sorted(kinds):
        if kind in ARTIFACT_TYPES:
            return ARTIFACT_TYPES[kind]
    return "Artifact"


def _config_class(assets_def: AssetsDefinition) -> type[Config] | None:
    fn = assets_def.op.compute_fn.decorated_fn
    params = inspect.signature(fn).parameters
    if "config" not in params:
        if assets_def.op.config_schema and assets_def.op.config_schema.as_field().is_required:
            raise UnsupportedConstructError(
                assets_def.key.to_user_string(),
                "a config_schema dict",
                "Use a dagster.Config class so fields, types and defaults can be read.",
            )
        return None
    hints = typing.get_type_hints(fn)
    return hints.get("config", params["config"].annotation)


def _config_parameters(assets_def: AssetsDefinition, name: str) -> list[Parameter]:
    config_class = _config_class(assets_def)
    if config_class is None:
        return []
    parameters = []
    for field_name, info in config_class.model_fields.items():
        annotation = info.annotation
        if annotation in PARAM_TYPES:
            type_name = PARAM_TYPES[annotation]
        elif annotation in LIST_TYPES:
            type_name = "list"
        else:
            raise UnsupportedConstructError(
                name,
                f"config field {field_name!r} of type {annotation}",
                "Pipeline parameters can be int, float, str, bool or a list of those.",
            )
        if info.is_required():
            raise UnsupportedConstructError(
                name,
                f"config field {field_name!r} without a default",
                "Every KFP pipeline parameter needs a default here.",
            )
        default = info.get_default(call_default_factory=True)
        parameters.append(
            Parameter(field_name, field_name, type_name, default, info.description or "")
        )
    return parameters


def _flatten_parameter_names(tasks: list[AssetTask]) -> None:
    """Flat names as in the seed; prefix with the asset only where two assets share a field."""
    counts: dict[str, int] = {}
    for task in tasks:
        for p in task.parameters:
            counts[p.field] = counts.get(p.field, 0) + 1
    for task in tasks:
        task.parameters = [
            Parameter(
                f"{task.function_name}_{p.field}" if counts[p.field] > 1 else p.field,
                p.field,
                p.type_name,
                p.default,
                p.description,
            )
            for p in task.parameters
        ]


def _metadata_text(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", getattr(value, "text", value)))


def _run_if(
    metadata: dict[str, Any], assets_def: AssetsDefinition, name: str, parents: list[str]
) -> tuple[str, str] | None:
    text = _metadata_text(metadata.get(RUN_IF_KEY))
    optional = any(not o.is_required for o in assets_def.op.output_defs)
    if not text:
        if optional:
            raise UnsupportedConstructError(
                name,
                "output_required=False without a 'kfp/run_if' condition",
                "Say which upstream boolean decides, e.g. metadata {'kfp/run_if': 'decision.ok'}.",
            )
        return None
    asset, _, field_name = text.rpartition(".")
    if asset not in parents or not field_name:
        raise UnsupportedConstructError(
            name, f"'kfp/run_if: {text}'", "Expected '<upstream asset>.<boolean field>'."
        )
    return asset, field_name


def _retry(assets_def: AssetsDefinition) -> dict[str, Any] | None:
    policy = assets_def.op.retry_policy
    if policy is None:
        return None
    factor = {Backoff.EXPONENTIAL: 2.0, Backoff.LINEAR: 1.0, None: None}.get(policy.backoff)
    return {
        "num_retries": policy.max_retries,
        "backoff_duration": f"{int(policy.delay or 0)}s",
        "backoff_factor": factor,
    }


def _k8s_resources(assets_def: AssetsDefinition, name: str) -> dict[str, dict[str, str]]:
    """CPU/memory from ``dagster-k8s/config`` op tags (the dagster-k8s format) or metadata."""
    config = assets_def.op.tags.get(K8S_CONFIG_TAG) or dict(
        assets_def.metadata_by_key.get(assets_def.key, {})
    ).get(K8S_CONFIG_TAG)
    if config is None:
        return {}
    if isinstance(config, str):
        import json

        config = json.loads(config)
    config = getattr(config, "value", getattr(config, "data", config))
    resources = (config.get("container_config") or {}).get("resources") or {}
    result: dict[str, dict[str, str]] = {}
    for section in ("requests", "limits"):
        for resource_name, amount in (resources.get(section) or {}).items():
            if resource_name not in ("cpu", "memory"):
                raise UnsupportedConstructError(
                    name, f"the k8s resource {section}.{resource_name}", "Only cpu and memory."
                )
            result.setdefault(section, {})[resource_name] = str(amount)
    return result
