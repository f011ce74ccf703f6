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
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetsDefinition, Backoff, Config, Definitions
from dagster._core.definitions.graph_definition import GraphDefinition

from exporters.kfp.k8s import K8sConfigError, K8sSettings, k8s_settings, read_k8s_config

RUN_IF_KEY = "kfp/run_if"
METRICS_KEY = "kfp/metrics"

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
    optional: bool = False  # an `X | None` field: an optional KFP parameter


@dataclass
class AssetTask:
    """Everything the compiler needs to emit one task."""

    asset: str
    function_name: str
    op_name: str
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
    k8s: K8sSettings = field(default_factory=K8sSettings)
    check_names: list[str] = field(default_factory=list)
    upstream_types: dict[str, str] = field(default_factory=dict)


@dataclass
class PipelineGraph:
    """The asset graph, as tasks in topological order."""

    module: str
    tasks: list[AssetTask]
    tracking_keys: list[str]  # resources of the per-run tracking protocol
    name: str  # the assets' group when they share one, else the module
    scheduled_parameters: list[str] = field(default_factory=list)  # fed a schedule's date

    @property
    def uses_tracking(self) -> bool:
        return bool(self.tracking_keys)

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
            op_name=assets_def.op.name,
            description=(assets_def.descriptions_by_key.get(key) or "").strip(),
            upstream=[p for p in parents if p in loaded],
            order_only=[p for p in parents if p not in loaded],
            artifact_type=_artifact_type(spec.kinds),
            parameters=_config_parameters(assets_def, name),
            run_if=_run_if(metadata, assets_def, name, parents),
            metrics_field=_metadata_text(metadata.get(METRICS_KEY)),
            code_version=assets_def.code_versions_by_key.get(key),
            retry=_retry(assets_def, name),
            k8s=_k8s(assets_def, name, metadata),
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
    _check_names(list(tasks.values()))
    return PipelineGraph(
        module=module,
        tasks=list(tasks.values()),
        tracking_keys=list(tracking_keys),
        name=re.sub(r"[^a-z0-9-]+", "-", label.lower()).strip("-"),
    )


def kfp_name(name: str) -> str:
    """The name KFP gives a task or component (kfp.dsl.utils.maybe_rename_for_k8s)."""
    return re.sub("-+", "-", re.sub("[^-0-9a-z]+", "-", name.lower())).strip("-")


def _check_names(tasks: list[AssetTask]) -> None:
    """Refuse two assets with one KFP task name, and argument or parameter name clashes."""
    by_task: dict[str, str] = {}
    for task in tasks:
        other = by_task.setdefault(kfp_name(task.function_name), task.asset)
        if other != task.asset:
            raise UnsupportedConstructError(
                task.asset,
                f"its KFP task name {kfp_name(task.function_name)!r} is also that of asset "
                f"{other!r}",
                "KFP names tasks by lowercasing and replacing '/', '_' and other characters "
                "with '-': rename one of the assets.",
            )
    by_parameter: dict[str, str] = {}
    for task in tasks:
        for parameter in task.parameters:
            other = by_parameter.setdefault(parameter.name, task.asset)
            if other != task.asset:
                raise UnsupportedConstructError(
                    task.asset,
                    f"its pipeline parameter {parameter.name!r} is also a parameter of "
                    f"asset {other!r}",
                    "Rename the config field.",
                )
    for task in tasks:
        taken = {python_name(up) for up in task.upstream} | {task.function_name} | RESERVED_NAMES
        clashes = sorted(taken & {p.name for p in task.parameters})
        if clashes:
            raise UnsupportedConstructError(
                task.asset,
                f"config field(s) {', '.join(clashes)} named like an upstream asset, the "
                "asset itself or a generated argument",
                "Rename the field.",
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


#: Names the generated component code uses itself: never an asset's function or argument name.
RESERVED_NAMES = {"metrics", "dsl", "kfp", "_kfp_runtime", "scheduled_values", "run_name"}


def _generated_namespace() -> set[str]:
    """Names the generated module binds (its prelude star-imports kfp.dsl and typing)."""
    import builtins
    import typing as typing_module

    from kfp import dsl

    return set(dir(dsl)) | set(dir(typing_module)) | set(dir(builtins)) | RESERVED_NAMES


def python_name(asset: str) -> str:
    """A Python identifier for an asset key: function, artifact and argument name."""
    name = re.sub(r"\W", "_", asset.replace("/", "__"))
    if not name.isidentifier() or keyword.iskeyword(name) or name in _generated_namespace():
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
        annotation, optional = _optional(info.annotation)
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
            Parameter(field_name, field_name, type_name, default, info.description or "", optional)
        )
    return parameters


def _optional(annotation: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None`` / ``Optional[X]``, else ``(annotation, False)``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


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
                p.optional,
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


def _retry(assets_def: AssetsDefinition, name: str) -> dict[str, Any] | None:
    """Dagster's RetryPolicy as KFP's retry policy, or an error where they differ.

    KFP's backend turns the policy into an Argo retryStrategy of whole seconds (it reads
    ``backoffDuration.seconds``: backend/src/v2/compiler/argocompiler/container.go at 2.14.0)
    with delay * factor ** n; Dagster's exponential backoff is delay * (2 ** n - 1).
    """
    policy = assets_def.op.retry_policy
    if policy is None:
        return None
    if policy.jitter is not None:
        raise UnsupportedConstructError(
            name, f"RetryPolicy jitter={policy.jitter.value}", "KFP retries have no jitter."
        )
    delay = policy.delay or 0
    if delay != int(delay):
        raise UnsupportedConstructError(
            name,
            f"RetryPolicy delay={delay} (not whole seconds)",
            "KFP's backend keeps whole seconds of a retry delay: use an integer delay.",
        )
    if policy.backoff is Backoff.LINEAR and policy.max_retries > 1:
        raise UnsupportedConstructError(
            name,
            "RetryPolicy backoff=LINEAR",
            "KFP backs off by a constant factor: use Backoff.EXPONENTIAL or no backoff.",
        )
    factor = 2.0 if policy.backoff is Backoff.EXPONENTIAL else None
    return {
        "num_retries": policy.max_retries,
        "backoff_duration": f"{int(delay)}s",
        "backoff_factor": factor,
    }


def _k8s(assets_def: AssetsDefinition, name: str, metadata: dict[str, Any]) -> K8sSettings:
    """The asset's ``dagster-k8s/config`` (op tag or metadata) as kfp-kubernetes settings."""
    config = read_k8s_config(dict(assets_def.op.tags), metadata)
    try:
        return k8s_settings(config)
    except (K8sConfigError, KeyError, TypeError, ValueError) as error:
        raise UnsupportedConstructError(name, f"dagster-k8s/config: {error}") from error
