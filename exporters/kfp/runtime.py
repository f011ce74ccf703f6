"""What a KFP task runs: one asset (or one op of a graph-backed asset), at KFP's artifact paths.

The generated components are thin: their body imports this module and calls
:func:`materialize_asset` (or :func:`materialize_op`). The real code runs through
``dagster.materialize`` on an ephemeral instance, with its upstream values loaded from the task's
input artifacts and its value written to the output artifact, so a KFP run and a Dagster run
execute the same functions. Blocking asset checks of the asset run in the task that produces its
value: a failed check fails the task.

The project is reached only through the protocols of :mod:`exporters.kfp.protocols`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    ConfigurableResource,
    DagsterInstance,
    Definitions,
    In,
    InputContext,
    IOManager,
    IOManagerDefinition,
    OpDefinition,
    Out,
    OutputContext,
    materialize,
)

from exporters.kfp.cached import TaskLineage
from exporters.kfp.macros import (  # noqa: F401 - the generated resolver task calls them here
    format_macros,
    go_layout_to_strftime,
    resolve_scheduled_values,
)
from exporters.kfp.outcome import TaskRecorder, ledgers, state_status, verdict
from exporters.kfp.protocols import KFP_RUN_CONFIG_FIELD, PathStorage

#: Environment variable holding the KFP run id, filled from the pod label below.
RUN_ID_ENV = "KFP_RUN_ID"
#: The pod label the KFP API server puts on every pod of a run (backend/src/common/util/consts.go).
RUN_ID_LABEL = "pipeline/runid"
RUN_ID_FIELD_PATH = f"metadata.labels['{RUN_ID_LABEL}']"

PARQUET_MAGIC = b"PAR1"
#: kfp.local's folder for one iteration of a ParallelFor: ``<loop task>-iteration-<i>``
#: (kfp/local/orchestrator/enhanced_dag_orchestrator.py, kfp 2.17.3).
LOCAL_ITERATION_FOLDER = re.compile(r"-iteration-\d+$")

#: The state string an exit task is handed, as a tracking status when there is no other
#: evidence (see exporters/kfp/outcome.py): FINISHED for COMPLETE / SUCCEEDED / CACHED, else FAILED.
pipeline_status = state_status


class RunIdError(RuntimeError):
    """The KFP run id could not be found."""


def kfp_run_id(output_path: str = "", run_name: str = "") -> str:
    """The id of the KFP run this task belongs to, the same in every task of the run.

    On a KFP backend it is the pod label ``pipeline/runid``, passed as ``$KFP_RUN_ID`` by the
    exported YAML (a field-path env var, so it is not a task input and does not defeat caching).
    ``kfp.local`` has no pods: there the variable is absent and the run is named by its folder
    under the pipeline root (``<root>/<pipeline>-<timestamp>/<task>/<output>``, with
    ``for-loop-<n>-iteration-<i>/`` before ``<task>`` inside a ParallelFor), or by
    ``run_name`` in the exit handler (``{{$.pipeline_job_name}}``, which kfp.local resolves to
    that folder's name; kfp/local/placeholder_utils.py).
    """
    value = os.environ.get(RUN_ID_ENV)
    if value is not None:
        if not value:
            raise RunIdError(
                f"${RUN_ID_ENV} is empty: the pod has no '{RUN_ID_LABEL}' label, which the KFP "
                "API server sets on every pod of a run (KFP 2.14 and later)"
            )
        return value
    if run_name:
        return run_name
    if output_path:
        folder = Path(output_path).parent.parent
        while LOCAL_ITERATION_FOLDER.search(folder.name):  # a task inside a ParallelFor
            folder = folder.parent
        return folder.name
    raise RunIdError(f"no ${RUN_ID_ENV} and no local run folder to name the run")


def load_definitions(module_name: str) -> Definitions:
    """The ``Definitions`` object of a module (``defs`` by convention, else the only one)."""
    module = importlib.import_module(module_name)
    if isinstance(getattr(module, "defs", None), Definitions):
        return module.defs
    found = [value for value in vars(module).values() if isinstance(value, Definitions)]
    if len(found) != 1:
        raise ValueError(
            f"module {module_name!r} must define exactly one dagster.Definitions "
            f"(found {len(found)}); name it `defs`"
        )
    return found[0]


def tracking_resource_keys(defs: Definitions) -> list[str]:
    """Resource keys whose config has a ``kfp_run_id`` field (the per-run tracking protocol)."""
    keys = []
    for key, resource in (defs.resources or {}).items():
        if isinstance(resource, ConfigurableResource):
            if KFP_RUN_CONFIG_FIELD in type(resource).model_fields:
                keys.append(key)
            continue
        schema = getattr(resource, "config_schema", None)
        fields = getattr(getattr(schema, "config_type", None), "fields", {}) or {}
        if KFP_RUN_CONFIG_FIELD in fields:
            keys.append(key)
    return keys


def _with_run_id(
    defs: Definitions, run_id: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Resources with ``kfp_run_id`` set, and run config setting it on function-style ones."""
    resources: dict[str, Any] = dict(defs.resources or {})
    run_config: dict[str, dict[str, Any]] = {}
    for key in tracking_resource_keys(defs):
        resource = resources[key]
        if isinstance(resource, ConfigurableResource):
            # Run config would reset the fields set in the constructor; build a copy instead.
            values = {name: getattr(resource, name) for name in type(resource).model_fields}
            resources[key] = type(resource)(**{**values, KFP_RUN_CONFIG_FIELD: run_id})
        else:
            run_config[key] = {"config": {KFP_RUN_CONFIG_FIELD: run_id}}
    return resources, run_config


class ArtifactIOManager(IOManager):
    """Loads and stores values at the paths KFP assigned to this task's artifacts.

    Asset values are found by asset key (``paths``); the outputs of other ops of a graph-backed
    asset by node name and mapping key (``node_paths``); the values the runtime hands in itself
    (a fan-out's items) come from the stand-in ops that emitted them. Each load reports the
    artifact's URI as input metadata ``uri``. Values are stored with the storage protocol of
    the io_manager the output names (:mod:`exporters.kfp.protocols`), else the default storage.
    """

    def __init__(
        self,
        paths: dict[str, str],
        storage: Any = None,
        *,
        uris: dict[str, str] | None = None,
        storages: dict[str, Any] | None = None,
        node_paths: dict[tuple[str, str | None], tuple[str, str, str]] | None = None,
        output: str = "",
        label: str = "",
        stand_ins: frozenset[str] = frozenset(),
    ) -> None:
        self.paths = paths
        self.uris = uris or {}
        self.storages = {"io_manager": storage, **(storages or {})}
        self.node_paths = node_paths or {}  # (node, mapping key) -> (path, uri, io_manager_key)
        self.output = output  # this op task's artifact, for an output that is not an asset
        self.label = label
        self.stand_ins = stand_ins  # op names of the stand-ins for upstream ops
        self.handed_in: dict[tuple[str, str | None], Any] = {}
        self.emitted: list[tuple[str, Any]] = []  # a DynamicOut's (mapping key, value)
        self.value: Any = None  # the last value stored

    def _storage(self, io_manager_key: str) -> PathStorage | None:
        storage = self.storages.get(io_manager_key)
        return storage if isinstance(storage, PathStorage) else None

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        node, key = _node_and_key(context.step_key, context.mapping_key)
        if context.op_def.name in self.stand_ins:
            self.handed_in[(node, key)] = obj
            return
        self.value = obj
        if obj is None:
            return
        io_manager_key = context.op_def.output_def_named(context.name).io_manager_key
        if context.has_asset_key:
            label = context.asset_key.to_user_string()
            path = self.paths[label]
        elif context.mapping_key is not None:
            self.emitted.append((context.mapping_key, obj))
            return
        else:
            label, path = self.label, self.output
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        storage = self._storage(io_manager_key)
        if storage is not None:
            from upath import UPath

            storage.dump_to_path(context, obj, UPath(path))
        else:
            write_value(label, path, obj)

    def load_input(self, context: InputContext) -> Any:
        if context.has_asset_key and context.asset_key.to_user_string() in self.paths:
            asset = context.asset_key.to_user_string()
            path, uri, io_manager_key = self.paths[asset], self.uris.get(asset), "io_manager"
        else:
            upstream = context.upstream_output
            assert upstream is not None, f"input {context.name!r} has no upstream output"
            node, key = _node_and_key(upstream.step_key, upstream.mapping_key)
            if (node, key) not in self.node_paths:
                return self.handed_in[(node, key)]
            path, uri, io_manager_key = self.node_paths[(node, key)]
        context.add_input_metadata({"uri": uri or str(path)})
        storage = self._storage(io_manager_key)
        if storage is not None:
            from upath import UPath

            return storage.load_from_path(context, UPath(path))
        return read_value(path)


def _node_and_key(step_key: str, mapping_key: str | None) -> tuple[str, str | None]:
    """The node name of a step (``asset.op[key]``) and the mapping key it runs or emits for."""
    from dagster._core.execution.plan.handle import StepHandle

    handle = StepHandle.parse_from_key(step_key)
    return handle.node_handle.name, mapping_key or getattr(handle, "mapping_key", None)


def _path(artifact: Any) -> str:
    """The local path of a KFP artifact, or the path itself."""
    return str(getattr(artifact, "path", artifact))


def _uri(artifact: Any) -> str:
    """The URI of a KFP artifact (gs://, s3://, minio://, a local path under kfp.local)."""
    return str(getattr(artifact, "uri", "") or _path(artifact))


def write_value(asset: str, path: str, value: Any) -> None:
    """The default storage: a DataFrame as Parquet, a JSON-able value as JSON, atomically."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        if type(value).__name__ == "DataFrame" and type(value).__module__.startswith("pandas"):
            value.to_parquet(tmp_name, index=False)
        else:
            try:
                text = json.dumps(value, sort_keys=True)
            except (TypeError, ValueError) as error:
                raise TypeError(
                    f"asset {asset!r}: the KFP runtime stores pandas DataFrames (Parquet) and "
                    f"JSON-able values, not a {type(value).__name__}. Give the project's "
                    "io_manager dump_to_path/load_from_path (exporters/kfp/protocols.py)."
                ) from error
            Path(tmp_name).write_text(text)
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)


def read_value(path: str | os.PathLike[str]) -> Any:
    """Read a value written by :func:`write_value`."""
    source = Path(path)
    with source.open("rb") as handle:
        head = handle.read(4)
    if head == PARQUET_MAGIC:
        import pandas as pd

        return pd.read_parquet(source)
    return json.loads(source.read_text())


def materialize_asset(
    *,
    module: str,
    asset: str,
    inputs: dict[str, Any],
    output: Any,
    config: dict[str, Any],
    code_version: str = "",
    metrics: Any = None,
    metrics_field: str = "",
    gate_field: str = "",
    scheduled: dict[str, str] | None = None,
    scheduled_values: str = "",
    parameters: dict[str, str] | None = None,
    task: str = "",
) -> bool:
    """Materialise ``asset`` from ``module``'s Definitions; return its gate value (or True).

    ``inputs`` maps upstream asset keys to their input artifacts (or paths), ``output`` is this
    asset's output artifact (or path), ``config`` its run config. ``metrics`` (a KFP Metrics
    artifact) receives the numbers under ``metrics_field`` of the asset's value; ``gate_field``
    names the boolean a downstream ``dsl.If`` reads. ``code_version`` is only there to be part of
    the task's cache key. ``scheduled`` maps pipeline parameters to config fields whose values
    come resolved, as the JSON ``scheduled_values``, from the run's first task (see
    :func:`resolve_scheduled_values`). ``parameters`` names the pipeline parameter of a config
    field where it differs from the field (for error messages). ``task`` is the KFP task's
    name, under which it records its start and outcome for the exit task
    (:mod:`exporters.kfp.outcome`).
    """
    defs = load_definitions(module)
    recorder = _recorder(defs, task, _path(output))
    recorder.started()
    lineage = _lineage(defs, task or asset, _path(output))
    try:
        lineage.begin(list(inputs.values()))
        gate = _materialize_asset(
            defs, asset, inputs, output, config, metrics, metrics_field, gate_field,
            scheduled, scheduled_values, parameters,
        )  # fmt: skip
    except BaseException as error:
        recorder.failed(error)
        raise
    lineage.end(output)
    recorder.succeeded(**({"gate": gate} if gate_field else {}))
    return gate


def _lineage(defs: Definitions, task: str, output_path: str) -> TaskLineage:
    """What the task carries for runs that reuse its output from KFP's cache."""
    keys = tracking_resource_keys(defs)
    return TaskLineage(
        dict(defs.resources or {}), keys, kfp_run_id(output_path) if keys else "", task
    )


def _recorder(defs: Definitions, task: str, output_path: str) -> TaskRecorder:
    """The task's recorder: on every tracking resource with a ledger, none without a name."""
    found = ledgers(dict(defs.resources or {}), tracking_resource_keys(defs)) if task else []
    return TaskRecorder(found, kfp_run_id(output_path) if found else "", task)


def _materialize_asset(
    defs: Definitions,
    asset: str,
    inputs: dict[str, Any],
    output: Any,
    config: dict[str, Any],
    metrics: Any,
    metrics_field: str,
    gate_field: str,
    scheduled: dict[str, str] | None,
    scheduled_values: str,
    parameters: dict[str, str] | None,
) -> bool:
    config = _with_scheduled(config, scheduled, scheduled_values)
    key = AssetKey.from_user_string(asset)
    assets_def = defs.get_assets_def(key)
    resources, run_config = _resources(defs, _path(output))
    manager = ArtifactIOManager(
        {**{k: _path(v) for k, v in inputs.items()}, asset: _path(output)},
        (defs.resources or {}).get("io_manager"),
        uris={k: _uri(v) for k, v in inputs.items()},
    )
    resources["io_manager"] = IOManagerDefinition.hardcoded_io_manager(manager)
    op_config = coerce_config(assets_def, config, parameters)
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
    return _report(manager.value, metrics, metrics_field, gate_field)


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
    return AssetsDefinition.dagster_internal_init(
        **{**assets_def.get_attributes_dict(), "node_def": _op_without_retries(op_def)}
    )


def _op_without_retries(op_def: OpDefinition) -> OpDefinition:
    """``op_def`` as Dagster copies an op (``OpDefinition.with_replaced_properties``), minus
    its retry policy."""
    if op_def.retry_policy is None:
        return op_def
    return OpDefinition.dagster_internal_init(
        compute_fn=op_def.compute_fn,
        name=op_def.name,
        ins={input_def.name: In.from_definition(input_def) for input_def in op_def.input_defs},
        outs={
            output_def.name: Out.from_definition(output_def) for output_def in op_def.output_defs
        },
        description=op_def.description,
        config_schema=op_def.config_schema,
        required_resource_keys=op_def.required_resource_keys,
        tags=op_def.tags,
        version=None,
        retry_policy=None,
        code_version=op_def._version,  # no public getter; as with_replaced_properties reads it
        pool=op_def.pool,
    )


def _with_scheduled(
    config: dict[str, Any], scheduled: dict[str, str] | None, scheduled_values: str
) -> dict[str, Any]:
    if not scheduled:
        return config
    resolved = json.loads(scheduled_values)
    return {**config, **{field: resolved[name] for name, field in scheduled.items()}}


def _resources(defs: Definitions, output_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Definitions' resources, with the KFP run id set on the tracking ones."""
    resources: dict[str, Any] = dict(defs.resources or {})
    run_config: dict[str, Any] = {}
    if tracking_resource_keys(defs):
        resources, resource_config = _with_run_id(defs, kfp_run_id(output_path))
        if resource_config:
            run_config["resources"] = resource_config
    return resources, run_config


def _report(value: Any, metrics: Any, metrics_field: str, gate_field: str) -> bool:
    """Log the metrics of an asset's value; return its gate (True without one)."""
    if metrics is not None and metrics_field and value is not None:
        for name, number in sorted(_field(value, metrics_field).items()):
            metrics.log_metric(name, float(number))
    if gate_field:
        return bool(value is not None and _field(value, gate_field))
    return True


#: The artifact metadata naming the fan-out item an output belongs to (read back after Collected).
MAPPING_KEY_METADATA = "dagster_mapping_key"


def materialize_op(
    *,
    module: str,
    asset: str,
    op: str,
    assets: dict[str, Any],
    ops: dict[str, Any],
    collected: dict[str, list[Any]],
    items: list[str] | None,
    loop_item: str,
    output: Any,
    config: dict[str, Any],
    code_version: str = "",
    metrics: Any = None,
    metrics_field: str = "",
    gate_field: str = "",
    scheduled: dict[str, str] | None = None,
    scheduled_values: str = "",
    parameters: dict[str, str] | None = None,
    task: str = "",
) -> Any:
    """Run one op of the graph-backed ``asset`` through Dagster; return what its task returns.

    The op runs in a graph of its own where every upstream op is a stand-in that hands over the
    value KFP passed in: ``assets`` (upstream asset key -> artifact) and ``ops`` (op -> artifact)
    load through the storage protocol; ``loop_item`` is this iteration's fan-out item and
    ``items`` all of them (JSON ``{"key", "value"}`` as the fan-out op returned them), so
    Dagster maps, collects and names steps (``asset.op[key]``) as in a run of the whole graph;
    ``collected`` (op -> one artifact per iteration) is matched to the items by the mapping key
    each iteration wrote into its artifact's metadata. The op's value goes to ``output``; a
    ``DynamicOut`` op returns its items, the final op runs the asset's checks and returns its
    gate (or True), like :func:`materialize_asset`, and records as it does (an iteration as
    ``<task>/<mapping key>``).
    """
    defs = load_definitions(module)
    item = json.loads(loop_item) if loop_item else None
    name = f"{task or op}/{item['key']}" if item else task or op
    recorder = _recorder(defs, name if task else "", _path(output))
    recorder.started()
    lineage = _lineage(defs, name, _path(output))
    try:
        lineage.begin([*assets.values(), *ops.values(), *collected.values()])
        value = _materialize_op(
            defs, asset, op, assets, ops, collected, items, item, output, config, metrics,
            metrics_field, gate_field, scheduled, scheduled_values, parameters,
        )  # fmt: skip
    except BaseException as error:
        recorder.failed(error)
        raise
    lineage.end(output)
    if isinstance(value, list):
        recorder.succeeded(items=len(value))
    else:
        recorder.succeeded(**({"gate": value} if gate_field and value is not None else {}))
    return value


def _materialize_op(
    defs: Definitions,
    asset: str,
    op: str,
    assets: dict[str, Any],
    ops: dict[str, Any],
    collected: dict[str, list[Any]],
    items: list[str] | None,
    item: dict[str, Any] | None,
    output: Any,
    config: dict[str, Any],
    metrics: Any,
    metrics_field: str,
    gate_field: str,
    scheduled: dict[str, str] | None,
    scheduled_values: str,
    parameters: dict[str, str] | None,
) -> Any:
    from exporters.kfp.ops import analyze_graph

    config = _with_scheduled(config, scheduled, scheduled_values)
    key = AssetKey.from_user_string(asset)
    assets_def = defs.get_assets_def(key)
    plan = analyze_graph(assets_def, asset)
    node = plan.node(op)
    entries = [json.loads(text) for text in items or []]
    node_paths: dict[tuple[str, str | None], tuple[str, str, str]] = {}
    for name, artifact in ops.items():
        mapping_key = item["key"] if item and plan.node(name).loop else None
        node_paths[(name, mapping_key)] = _node_path(plan, name, artifact)
    for name, artifacts in collected.items():
        for entry, artifact in _match_collected(asset, name, entries, artifacts):
            node_paths[(name, entry["key"])] = _node_path(plan, name, artifact)

    graph_def, stand_ins = one_op_graph(assets_def, plan, node, item, entries)
    output_key = next(iter(assets_def.keys_by_output_name))
    used_inputs = {m.graph_input_name for m in graph_def.input_mappings}
    single = AssetsDefinition.from_graph(
        graph_def,
        keys_by_input_name={
            name: k for name, k in assets_def.keys_by_input_name.items() if name in used_inputs
        },
        keys_by_output_name={output_key: key},
    )
    resources, run_config = _resources(defs, _path(output))
    manager = ArtifactIOManager(
        {**{k: _path(v) for k, v in assets.items()}, asset: _path(output)},
        (defs.resources or {}).get("io_manager"),
        uris={k: _uri(v) for k, v in assets.items()},
        storages={k: v for k, v in (defs.resources or {}).items() if k != "io_manager"},
        node_paths=node_paths,
        output=_path(output),
        label=f"{asset}, op {op}",
        stand_ins=stand_ins,
    )
    for io_manager_key in {"io_manager", node.io_manager_key}:
        resources[io_manager_key] = IOManagerDefinition.hardcoded_io_manager(manager)
    op_config = coerce_config(node.op_def, config, parameters)
    if op_config:
        run_config["ops"] = {plan.graph_name: {"ops": {op: {"config": op_config}}}}
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
    if item is not None and hasattr(output, "metadata"):
        output.metadata[MAPPING_KEY_METADATA] = item["key"]
    if node.dynamic:
        texts = [_item_json(asset, op, k, v) for k, v in manager.emitted]
        Path(_path(output)).parent.mkdir(parents=True, exist_ok=True)
        write_value(f"{asset}, op {op}", _path(output), [json.loads(t) for t in texts])
        return texts
    if node.final:
        return _report(manager.value, metrics, metrics_field, gate_field)
    return None


def _defines(assets_def: Any, key: AssetKey) -> bool:
    return isinstance(assets_def, AssetsDefinition) and key in assets_def.keys


def _node_path(plan: Any, name: str, artifact: Any) -> tuple[str, str, str]:
    return _path(artifact), _uri(artifact), plan.node(name).io_manager_key


def _match_collected(
    asset: str, op: str, entries: list[dict[str, Any]], artifacts: list[Any]
) -> list[tuple[dict[str, Any], Any]]:
    """Each item of the fan-out with the artifact its iteration of ``op`` wrote.

    By the mapping key in the artifact's metadata (the KFP backend carries artifact custom
    properties into a Collected list: backend/src/v2/metadata/converter.go toRuntimeArtifact at
    2.14.0), else by position: both the backend (driver/resolve.go CollectInputs) and kfp.local
    list iterations in item order.
    """
    if len(artifacts) != len(entries):
        raise RuntimeError(
            f"asset {asset!r}, op {op!r}: {len(artifacts)} collected outputs for "
            f"{len(entries)} fan-out items"
        )
    by_key = {(getattr(a, "metadata", None) or {}).get(MAPPING_KEY_METADATA): a for a in artifacts}
    if set(by_key) == {e["key"] for e in entries}:
        return [(e, by_key[e["key"]]) for e in entries]
    return list(zip(entries, artifacts, strict=True))


def _item_json(asset: str, op: str, key: str, value: Any) -> str:
    """A fan-out item as the JSON KFP passes to each iteration; refuse what JSON would change."""
    try:
        text = json.dumps({"key": key, "value": value}, allow_nan=False)  # keeps key order
        same = json.loads(text)["value"] == value and _same_types(json.loads(text)["value"], value)
    except (TypeError, ValueError):
        same = False
    if not same:
        raise TypeError(
            f"asset {asset!r}, op {op!r}: the DynamicOut item {key!r} is a "
            f"{type(value).__name__} that KFP cannot hand to a ParallelFor iteration unchanged; "
            "yield JSON values (str, int, float, bool, None, lists and dicts with str keys)"
        )
    return text


def _same_types(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return True


def one_op_graph(
    assets_def: AssetsDefinition,
    plan: Any,
    node: Any,
    item: dict[str, Any] | None,
    entries: list[dict[str, Any]],
) -> tuple[Any, frozenset[str]]:
    """The asset's graph cut down to ``node``, its upstream ops replaced by stand-ins.

    A stand-in has the upstream op's node name and output name, so the op's inputs resolve as
    in the whole graph (and Dagster's io manager is asked for them); a fan-out op's stand-in
    re-emits the items (this iteration's, or all of them for a collect), and an op mapped over
    it is stood in for once per item. When ``node`` is not the final op, a ``Nothing`` op stands
    for the asset's output (a graph-backed asset must end in it).
    """
    from dagster import DynamicOut, DynamicOutput, In, Nothing, Out, op
    from dagster._core.definitions.dependency import (
        DependencyDefinition,
        DynamicCollectDependencyDefinition,
        NodeInvocation,
    )
    from dagster._core.definitions.graph_definition import GraphDefinition
    from dagster._core.definitions.input import InputMapping
    from dagster._core.definitions.output import OutputMapping

    from exporters.kfp.ops import ASSET, COLLECTED, COLLECTED_ITEMS, ITEM, OP

    graph = assets_def.node_def
    if not isinstance(graph, GraphDefinition):
        raise TypeError(f"{assets_def.key.to_user_string()} is not a graph-backed asset")
    prefix = "kfp_stand_in__"
    definitions: dict[str, Any] = {}
    dependencies: dict[Any, dict[str, Any]] = {}

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
            target[source.name] = DynamicCollectDependencyDefinition(source.source, upstream_output)
        elif source.kind == COLLECTED_ITEMS:
            fan_out(source.source, entries)
            target[source.name] = DynamicCollectDependencyDefinition(source.source, upstream_output)
    # No retry_policy on the invocation, none on the op (see without_retries).
    dependencies[NodeInvocation(node.op_def.name, alias=node.name)] = target
    node_defs = [*definitions.values(), _op_without_retries(node.op_def)]

    (graph_output,) = graph.output_mappings
    last, last_output = node.name, node.output
    if not node.final:

        @op(name=f"{prefix}asset_output", ins={"after": In(Nothing)}, out=Out(Nothing))
        def _asset_output() -> None:
            return None

        collect = node.loop or node.dynamic
        dependency = DynamicCollectDependencyDefinition if collect else DependencyDefinition
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


class ParameterValueError(ValueError):
    """A pipeline parameter's text is not a value of its Config field's type."""


def coerce_config(
    definition: Any, config: dict[str, Any], parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """Config values as the Config class of an asset (or op definition) types them.

    KFP carries numbers inside lists as JSON doubles (``[1, 2]`` arrives as ``[1.0, 2.0]``):
    ints are restored. An ``X | None`` field arrives as text (exported as a STRING parameter
    whose default ``""`` means unset): blank (or ``None``) is left to the field's default, other
    text is parsed as X; text that is not an X raises :class:`ParameterValueError` naming the
    pipeline parameter (``parameters`` maps a field to it where the names differ).
    """
    op_def = definition.op if isinstance(definition, AssetsDefinition) else definition
    fields = getattr(_config_class(op_def), "model_fields", {})
    coerced = {}
    for name, value in config.items():
        info = fields.get(name)
        if info is not None and _is_optional(info.annotation) and _blank(value):
            continue
        if value is None:
            continue
        if info is None:
            coerced[name] = value
            continue
        try:
            coerced[name] = _coerce(info.annotation, value)
        except ValueError as error:
            parameter = (parameters or {}).get(name, name)
            raise ParameterValueError(f"pipeline parameter {parameter!r}: {error}") from None
    return coerced


def _is_optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(annotation)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _config_class(op_def: Any) -> Any:
    fn = op_def.compute_fn.decorated_fn
    try:
        return typing.get_type_hints(fn).get("config")
    except (NameError, TypeError):
        return fn.__annotations__.get("config")


#: Text accepted for a bool field exported as a blank-means-unset STRING parameter.
BOOL_TEXT = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _coerce(annotation: Any, value: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _coerce(inner[0], value) if len(inner) == 1 else value
    if isinstance(value, str) and annotation in (int, float, bool):
        return _parse(annotation, value)
    if annotation is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(annotation) or (Any,)
        return [_coerce(item, v) for v in value]
    return value


def _parse(annotation: type, text: str) -> Any:
    """``text`` as an int, float or bool; ValueError saying what was expected."""
    stripped = text.strip()
    try:
        if annotation is bool:
            return BOOL_TEXT[stripped.lower()]
        return annotation(stripped)
    except (KeyError, ValueError):
        expected = {int: "an integer", float: "a number", bool: "true or false"}[annotation]
        raise ValueError(f"expected {expected} (blank = unset), got {text!r}") from None


def finish_pipeline_run(*, module: str, state: str, run_name: str = "", plan: str = "") -> str:
    """Exit handler: end the run's tracking run on each tracking resource; return the status.

    The status comes from the tasks' records read against ``plan`` (:mod:`exporters.kfp.outcome`),
    whatever ``state`` the backend hands the exit task; from ``state`` alone without a plan or
    on a tracking resource that keeps no records.
    """
    defs = load_definitions(module)
    run_id = kfp_run_id(run_name=run_name)
    resources = dict(defs.resources or {})
    status = state_status(state)
    for key in tracking_resource_keys(defs):
        resource = resources[key]
        (ledger,) = ledgers(resources, [key]) or [None]
        decided = verdict(ledger, run_id, plan, state)
        status = decided.status
        ended = resource.end_pipeline_run(run_id, status)
        print(
            f"{key}: tracking run {ended} of KFP run {run_id} ended {status}: {decided.reason} "
            f"(KFP state {state!r})"
        )
    return status


def _field(value: Any, name: str) -> Any:
    return value[name] if isinstance(value, dict) else getattr(value, name)
