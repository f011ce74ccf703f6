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

import inspect
import keyword
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetsDefinition, Backoff, Config, Definitions, OpDefinition, RetryPolicy

from exporters.kfp.errors import UnsupportedConstructError
from exporters.kfp.k8s import K8sConfigError, K8sSettings, k8s_settings, read_k8s_config
from exporters.kfp.ops import (
    ASSET,
    COLLECTED,
    COLLECTED_ITEMS,
    OP,
    PARALLELISM_KEY,
    OpInput,
    OpNode,
    analyze_graph,
    is_graph_asset,
)
from exporters.kfp.values import HINTS, unrepresentable

RUN_IF_KEY = "kfp/run_if"
METRICS_KEY = "kfp/metrics"
CACHE_KEY = "kfp/cache"

#: Artifact type per Dagster kind; anything else is a generic Artifact.
ARTIFACT_TYPES = {"pandas": "Dataset", "polars": "Dataset", "scikit-learn": "Model"}
PARAM_TYPES: dict[Any, str] = {int: "int", float: "float", str: "str", bool: "bool"}
#: How a blank-means-unset parameter's description names the type its value is parsed as.
TYPE_WORDS = {"int": "integer", "float": "number", "str": "text", "bool": "true or false"}
LIST_TYPES = {list[str], list[int], list[float], list[bool], list}


__all__ = ["AssetTask", "OpTask", "Parameter", "PipelineGraph", "UnsupportedConstructError"]

#: The component argument of a task inside a fan-out: its item, as JSON {"key", "value"}.
LOOP_ITEM = "loop_item"


@dataclass(frozen=True)
class Parameter:
    """One pipeline parameter, from one field of an asset's Config."""

    name: str  # flat pipeline name, prefixed with the asset only on a clash
    field: str  # the Config field it feeds
    type_name: str  # int | float | str | bool | list
    default: Any
    description: str
    optional: bool = False  # an `X | None` field with a default: an optional KFP parameter


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
    ops: list[OpTask] = field(default_factory=list)  # a graph-backed asset's op tasks
    parallelism: dict[str, int] = field(default_factory=dict)  # fan-out op -> limit (0: none)

    @property
    def config_owners(self) -> list[AssetTask | OpTask]:
        """What takes config and becomes a KFP task: the ops of a graph-backed asset, else it."""
        return [*self.ops] if self.ops else [self]

    @property
    def label(self) -> str:
        return self.asset

    @property
    def output_name(self) -> str:
        """The artifact holding the asset's value (its final op's, for a graph-backed asset)."""
        return self.ops_by_node[self.final_op].function_name if self.ops else self.function_name

    @property
    def final_op(self) -> str:
        return next(o.node for o in self.ops if o.final)

    @property
    def ops_by_node(self) -> dict[str, OpTask]:
        return {o.node: o for o in self.ops}


@dataclass
class OpTask:
    """One op of a graph-backed asset: one task (one per item inside a fan-out)."""

    asset: str
    node: str  # the op's node name in the graph
    function_name: str
    op_name: str  # its run-config path: ops.<graph>.ops.<node> as "<graph>.<node>"
    description: str
    inputs: list[OpInput]
    after: list[str]  # ops of the same graph it waits for without data
    order_assets: list[str]  # assets it waits for without data
    dynamic: bool  # emits a fan-out's items (a list output parameter)
    loop: str | None  # the fan-out op whose items it runs over
    final: bool
    artifact_type: str
    parameters: list[Parameter] = field(default_factory=list)
    code_version: str | None = None
    retry: dict[str, Any] | None = None
    k8s: K8sSettings = field(default_factory=K8sSettings)

    @property
    def label(self) -> str:
        return f"{self.asset}, op {self.node}"


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
        return [p for owner in self.owners for p in owner.parameters]

    @property
    def owners(self) -> list[AssetTask | OpTask]:
        """Every task that takes config: the assets, and the ops of graph-backed ones."""
        return [owner for task in self.tasks for owner in task.config_owners]


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
        metadata = {**_op_hints(assets_def), **assets_def.metadata_by_key.get(key, {})}
        graph_backed = is_graph_asset(assets_def)
        tasks[name] = AssetTask(
            asset=name,
            function_name=python_name(name),
            op_name=assets_def.node_def.name,
            description=(assets_def.descriptions_by_key.get(key) or "").strip(),
            upstream=[p for p in parents if p in loaded],
            order_only=[p for p in parents if p not in loaded],
            artifact_type=_artifact_type(spec.kinds),
            parameters=[] if graph_backed else _config_parameters(assets_def.op, name),
            run_if=_run_if(metadata, assets_def, name, parents),
            metrics_field=_metadata_text(metadata.get(METRICS_KEY)),
            code_version=_cached_version(
                assets_def.code_versions_by_key.get(key),
                {} if graph_backed else assets_def.op.tags,
            ),
            retry=None if graph_backed else _retry(assets_def.op.retry_policy, name),
            k8s=K8sSettings() if graph_backed else _k8s(dict(assets_def.op.tags), metadata, name),
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
    _flatten_parameter_names(owners)
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
    by_function = {o.function_name: o for o in owners}
    for owner in owners:
        if isinstance(owner, AssetTask):
            taken = {python_name(up) for up in owner.upstream} | {owner.function_name}
        else:
            taken = set(component_arguments(owner, by_function))
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


def component_arguments(op: OpTask, by_function: Mapping[str, AssetTask | OpTask]) -> list[str]:
    """The generated arguments of an op task's component, other than its config parameters."""
    by_node = {
        o.node: o for o in by_function.values() if isinstance(o, OpTask) and o.asset == op.asset
    }
    names = [op.function_name]
    for source in op.inputs:
        if source.kind == ASSET:
            names.append(python_name(source.source))
        elif source.kind in (OP, COLLECTED):
            names.append(by_node[source.source].function_name)
        if source.kind == COLLECTED:
            names.append(by_node[by_node[source.source].loop or ""].function_name)
        elif source.kind == COLLECTED_ITEMS:
            names.append(by_node[source.source].function_name)
    if op.loop:
        names.append(LOOP_ITEM)
    return list(dict.fromkeys(names))


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
                parameters=_config_parameters(node.op_def, name, where),
                code_version=_cached_version(
                    _op_code_version(node.op_def) or task.code_version, node.tags
                ),
                retry=_retry(node.retry_policy, name, where),
                k8s=_k8s(node.tags, metadata, name, where),
            )
        )
    for fan_out in (n for n in plan.nodes if n.dynamic):
        members = plan.loop_members(fan_out.name)
        task.parallelism[fan_out.name] = _parallelism(fan_out, members, metadata, name)


def _cached_version(version: str | None, tags: Any) -> str | None:
    """The code version that makes a task cacheable, None under ``kfp/cache: "false"``."""
    return None if str(dict(tags).get(CACHE_KEY, "")).lower() == "false" else version


def _op_code_version(op_def: OpDefinition) -> str | None:
    """``@op(code_version=...)``: Dagster 1.x reads it only through a deprecated ``version``."""
    return getattr(op_def, "code_version", None) or getattr(op_def, "_version", None)


def _parallelism(
    fan_out: OpNode, members: list[OpNode], metadata: dict[str, Any], asset: str
) -> int:
    """``kfp/parallelism`` of a fan-out: an op tag of its ops, else the asset's metadata."""
    found: dict[str, int] = {}
    for node in [fan_out, *members]:
        if PARALLELISM_KEY in node.tags:
            found[node.name] = _positive(node.tags[PARALLELISM_KEY], asset, f"op {node.name!r}")
    values = set(found.values())
    if len(values) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
        raise UnsupportedConstructError(
            asset,
            f"conflicting '{PARALLELISM_KEY}' tags in the fan-out of {fan_out.name!r} ({listed})",
            "Set one value.",
        )
    if values:
        return values.pop()
    if PARALLELISM_KEY in metadata:
        return _positive(_metadata_text(metadata[PARALLELISM_KEY]), asset, "metadata")
    return 0


def _positive(value: Any, asset: str, where: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise UnsupportedConstructError(
            asset, f"{where}: '{PARALLELISM_KEY}: {value}'", "Expected a positive integer."
        )
    return number


#: Names the generated component code uses itself: never an asset's function or argument name.
RESERVED_NAMES = {
    "metrics",
    "dsl",
    "kfp",
    "_kfp_runtime",
    "scheduled_values",
    "run_name",
    LOOP_ITEM,
}


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


def _config_class(op_def: OpDefinition, asset: str, where: str = "") -> type[Config] | None:
    fn = op_def.compute_fn.decorated_fn  # type: ignore[union-attr]  # a decorated op's function
    params = inspect.signature(fn).parameters
    if "config" not in params:
        if op_def.config_schema and op_def.config_schema.as_field().is_required:
            raise UnsupportedConstructError(
                asset,
                f"{where}a config_schema dict",
                "Use a dagster.Config class so fields, types and defaults can be read.",
            )
        return None
    hints = typing.get_type_hints(fn)
    return hints.get("config", params["config"].annotation)


def _config_parameters(op_def: OpDefinition, name: str, where: str = "") -> list[Parameter]:
    """One parameter per field of the op's (or asset's) Config class."""
    config_class = _config_class(op_def, name, where)
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
                f"{where}config field {field_name!r} of type {annotation}",
                "Pipeline parameters can be int, float, str, bool or a list of those.",
            )
        if info.is_required():
            raise UnsupportedConstructError(
                name,
                f"{where}config field {field_name!r} without a default",
                "Every KFP pipeline parameter needs a default here.",
            )
        default = info.get_default(call_default_factory=True)
        reason = unrepresentable(default)
        if reason:
            raise UnsupportedConstructError(
                name,
                f"{where}config field {field_name!r} default {default!r} ({reason})",
                HINTS[reason],
            )
        description = info.description or ""
        if optional and default is None and type_name in TYPE_WORDS:
            # An `X | None = None` field: a STRING parameter whose default "" means unset (the
            # runtime parses other text as X, runtime.coerce_config). No default would leave the
            # KFP UI's Start button grey ("Missing parameter.") and kfp.local unable to run.
            hint = f"{TYPE_WORDS[type_name]}; blank = unset"
            description = f"{description} ({hint})" if description else hint
            parameters.append(Parameter(field_name, field_name, "str", "", description))
            continue
        parameters.append(
            Parameter(field_name, field_name, type_name, default, description, optional)
        )
    return parameters


def _optional(annotation: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None`` / ``Optional[X]``, else ``(annotation, False)``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def _flatten_parameter_names(tasks: list[AssetTask | OpTask]) -> None:
    """Flat names as in the reference pipeline; prefix with the task only where two tasks share
    a field."""
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


def _op_hints(assets_def: AssetsDefinition) -> dict[str, Any]:
    """``kfp/run_if`` and ``kfp/metrics`` given as tags of the asset's op(s), first found."""
    found: dict[str, Any] = {}
    for op_def in assets_def.node_def.iterate_op_defs():
        for key in (RUN_IF_KEY, METRICS_KEY):
            if key in op_def.tags:
                found.setdefault(key, op_def.tags[key])
    return found


def _metadata_text(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", getattr(value, "text", value)))


def _run_if(
    metadata: dict[str, Any], assets_def: AssetsDefinition, name: str, parents: list[str]
) -> tuple[str, str] | None:
    text = _metadata_text(metadata.get(RUN_IF_KEY))
    optional = any(not o.is_required for o in assets_def.node_def.output_defs)
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


def _retry(policy: RetryPolicy | None, name: str, where: str = "") -> dict[str, Any] | None:
    """Dagster's RetryPolicy as KFP's retry policy, or an error where they differ.

    KFP's backend turns the policy into an Argo retryStrategy of whole seconds (it reads
    ``backoffDuration.seconds``: backend/src/v2/compiler/argocompiler/container.go at 2.14.0)
    with delay * factor ** n; Dagster's exponential backoff is delay * (2 ** n - 1).
    """
    if policy is None:
        return None
    if policy.jitter is not None:
        raise UnsupportedConstructError(
            name, f"{where}RetryPolicy jitter={policy.jitter.value}", "KFP retries have no jitter."
        )
    delay = policy.delay or 0
    if delay != int(delay):
        raise UnsupportedConstructError(
            name,
            f"{where}RetryPolicy delay={delay} (not whole seconds)",
            "KFP's backend keeps whole seconds of a retry delay: use an integer delay.",
        )
    if policy.backoff is Backoff.LINEAR and policy.max_retries > 1:
        raise UnsupportedConstructError(
            name,
            f"{where}RetryPolicy backoff=LINEAR",
            "KFP backs off by a constant factor: use Backoff.EXPONENTIAL or no backoff.",
        )
    factor = 2.0 if policy.backoff is Backoff.EXPONENTIAL else None
    return {
        "num_retries": policy.max_retries,
        "backoff_duration": f"{int(delay)}s",
        "backoff_factor": factor,
    }


def _k8s(tags: dict[str, Any], metadata: dict[str, Any], name: str, where: str = "") -> K8sSettings:
    """``dagster-k8s/config`` (op tag, else the asset's metadata) as kfp-kubernetes settings."""
    config = read_k8s_config(dict(tags), metadata)
    try:
        return k8s_settings(config)
    except (K8sConfigError, KeyError, TypeError, ValueError) as error:
        raise UnsupportedConstructError(name, f"{where}dagster-k8s/config: {error}") from error
