"""What a KFP task runs: exactly one asset of a Dagster ``Definitions``, at KFP's artifact paths.

The generated components are thin: their body imports this module and calls
:func:`materialize_asset`. The asset's real code runs through ``dagster.materialize`` on an
ephemeral instance, with its upstream values loaded from the task's input artifacts and its value
written to the output artifact, so a KFP run and a Dagster run execute the same functions.
Blocking asset checks of the asset run in the same task: a failed check fails the task.

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    ConfigurableResource,
    DagsterInstance,
    Definitions,
    InputContext,
    IOManager,
    IOManagerDefinition,
    OutputContext,
    materialize,
)

from exporters.kfp.protocols import KFP_RUN_CONFIG_FIELD, PathStorage

#: Environment variable holding the KFP run id, filled from the pod label below.
RUN_ID_ENV = "KFP_RUN_ID"
#: The pod label the KFP API server puts on every pod of a run (backend/src/common/util/consts.go).
RUN_ID_LABEL = "pipeline/runid"
RUN_ID_FIELD_PATH = f"metadata.labels['{RUN_ID_LABEL}']"

PARQUET_MAGIC = b"PAR1"

#: The state KFP hands an exit handler, to the status of the tracking run. The backend passes the
#: MLMD execution state of the exit handler's DAG (backend/src/v2/driver/resolve.go); kfp.local
#: passes SUCCEEDED / FAILED. A DAG still RUNNING when the exit handler starts did not complete.
FINISHED_STATES = {"COMPLETE", "SUCCEEDED", "CACHED"}
KILLED_STATES = {"CANCELED", "CANCELLED"}


def pipeline_status(state: str) -> str:
    """``FINISHED``, ``KILLED`` or ``FAILED`` for any state string KFP reports."""
    normalized = (state or "").strip().upper()
    if normalized in FINISHED_STATES:
        return "FINISHED"
    if normalized in KILLED_STATES:
        return "KILLED"
    return "FAILED"


class RunIdError(RuntimeError):
    """The KFP run id could not be found."""


def kfp_run_id(output_path: str = "", run_name: str = "") -> str:
    """The id of the KFP run this task belongs to, the same in every task of the run.

    On a KFP backend it is the pod label ``pipeline/runid``, passed as ``$KFP_RUN_ID`` by the
    exported YAML (a field-path env var, so it is not a task input and does not defeat caching).
    ``kfp.local`` has no pods: there the variable is absent and the run is named by its folder
    under the pipeline root (``<root>/<pipeline>-<timestamp>/<task>/<output>``), or by
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
        return Path(output_path).parent.parent.name
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
    """Loads and stores asset values at the paths KFP assigned to this task's artifacts."""

    def __init__(self, paths: dict[str, str], storage: Any = None) -> None:
        self.paths = paths
        self.storage = storage if isinstance(storage, PathStorage) else None

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        asset = context.asset_key.to_user_string()
        path = self.paths[asset]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if self.storage is not None:
            from upath import UPath

            self.storage.dump_to_path(context, obj, UPath(path))
        else:
            write_value(asset, path, obj)

    def load_input(self, context: InputContext) -> Any:
        path = self.paths[context.asset_key.to_user_string()]
        if self.storage is not None:
            from upath import UPath

            return self.storage.load_from_path(context, UPath(path))
        return read_value(path)


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
    inputs: dict[str, str],
    output: str,
    config: dict[str, Any],
    code_version: str = "",
    metrics: Any = None,
    metrics_field: str = "",
    gate_field: str = "",
    scheduled: dict[str, str] | None = None,
    scheduled_values: str = "",
) -> bool:
    """Materialise ``asset`` from ``module``'s Definitions; return its gate value (or True).

    ``inputs`` maps upstream asset keys to artifact paths, ``output`` is this asset's artifact
    path, ``config`` its run config. ``metrics`` (a KFP Metrics artifact) receives the numbers
    under ``metrics_field`` of the asset's value; ``gate_field`` names the boolean a downstream
    ``dsl.If`` reads. ``code_version`` is only there to be part of the task's cache key.
    ``scheduled`` maps pipeline parameters to config fields whose values come resolved, as the
    JSON ``scheduled_values``, from the run's first task (see :func:`resolve_scheduled_values`).
    """
    if scheduled:
        resolved = json.loads(scheduled_values)
        config = {**config, **{field: resolved[name] for name, field in scheduled.items()}}
    defs = load_definitions(module)
    key = AssetKey.from_user_string(asset)
    assets_def = defs.get_assets_def(key)
    op_name = assets_def.op.name

    resources: dict[str, Any] = dict(defs.resources or {})
    run_config: dict[str, Any] = {}
    if tracking_resource_keys(defs):
        resources, resource_config = _with_run_id(defs, kfp_run_id(output))
        if resource_config:
            run_config["resources"] = resource_config
    storage = (defs.resources or {}).get("io_manager")
    resources["io_manager"] = IOManagerDefinition.hardcoded_io_manager(
        ArtifactIOManager({**inputs, asset: output}, storage)
    )
    op_config = coerce_config(assets_def, config)
    if op_config:
        run_config["ops"] = {op_name: {"config": op_config}}

    result = materialize(
        [*(defs.assets or []), *(defs.asset_checks or [])],
        selection=AssetSelection.assets(key) | AssetSelection.checks_for_assets(key),
        resources=resources,
        run_config=run_config,
        instance=DagsterInstance.ephemeral(),
    )
    value = result.output_for_node(op_name) if _has_output(result, op_name) else None
    if metrics is not None and metrics_field and value is not None:
        for name, number in sorted(_field(value, metrics_field).items()):
            metrics.log_metric(name, float(number))
    if gate_field:
        return bool(value is not None and _field(value, gate_field))
    return True


def coerce_config(assets_def: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Config values as the asset's Config class types them.

    KFP carries numbers inside lists as JSON doubles (``[1, 2]`` arrives as ``[1.0, 2.0]``), and
    an unset optional parameter arrives as ``None``: ints are restored and ``None`` left to the
    field's default.
    """
    fields = getattr(_config_class(assets_def), "model_fields", {})
    coerced = {}
    for name, value in config.items():
        if value is None:
            continue
        info = fields.get(name)
        coerced[name] = _coerce(info.annotation, value) if info is not None else value
    return coerced


def _config_class(assets_def: Any) -> Any:
    fn = assets_def.op.compute_fn.decorated_fn
    try:
        return typing.get_type_hints(fn).get("config")
    except (NameError, TypeError):
        return fn.__annotations__.get("config")


def _coerce(annotation: Any, value: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _coerce(inner[0], value) if len(inner) == 1 else value
    if annotation is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(annotation) or (Any,)
        return [_coerce(item, v) for v in value]
    return value


#: A KFP recurring-run macro: [[ScheduledTime.<Go layout>]], [[CurrentTime.<Go layout>]], or bare.
MACRO = re.compile(r"\[\[(ScheduledTime|CurrentTime)(?:\.(.*?))?\]\]")
DEFAULT_LAYOUT = "20060102150405"  # backend/src/common/util/parameter_formatter.go
GO_TOKENS = {"2006": "%Y", "01": "%m", "02": "%d", "15": "%H", "04": "%M", "05": "%S"}
LAYOUT_LITERALS = set("-:T /._")


def go_layout_to_strftime(layout: str) -> str:
    """The strftime format of a Go time layout made of 2006 01 02 15 04 05 and separators."""
    out, i = [], 0
    while i < len(layout):
        token = next((t for t in GO_TOKENS if layout.startswith(t, i)), None)
        if token:
            out.append(GO_TOKENS[token])
            i += len(token)
        elif layout[i] in LAYOUT_LITERALS:
            out.append(layout[i])
            i += 1
        else:
            raise ValueError(
                f"Go time layout {layout!r}: only 2006 01 02 15 04 05 and '-:T /._' are supported"
            )
    return "".join(out)


def format_macros(text: str, when: datetime) -> str:
    """``text`` with every ScheduledTime/CurrentTime macro replaced by ``when`` (UTC)."""
    utc = when.astimezone(UTC)

    def replace(match: re.Match[str]) -> str:
        return utc.strftime(go_layout_to_strftime(match.group(2) or DEFAULT_LAYOUT))

    return MACRO.sub(replace, text)


def resolve_scheduled_values(values: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The scheduled-date parameters with any macro the backend left in place resolved.

    KFP 2.14/2.15 do not substitute ``[[ScheduledTime...]]`` in a v2 recurring run's parameters
    (see the README); this runs once per run, in its first task, so every task sees one date.
    """
    moment = now or datetime.now(UTC)
    return {
        name: format_macros(value, moment) if isinstance(value, str) else value
        for name, value in values.items()
    }


def finish_pipeline_run(*, module: str, state: str, run_name: str = "") -> str:
    """Exit handler: end the run's tracking run on each tracking resource; return the status."""
    defs = load_definitions(module)
    status = pipeline_status(state)
    run_id = kfp_run_id(run_name=run_name)
    for key in tracking_resource_keys(defs):
        resource = defs.resources[key]
        ended = resource.end_pipeline_run(run_id, status)
        print(f"{key}: tracking run {ended} of KFP run {run_id} ended {status} (KFP state {state})")
    return status


def _has_output(result: Any, op_name: str) -> bool:
    outputs = [
        event
        for event in result.events_for_node(op_name)
        if event.event_type_value == "STEP_OUTPUT"
    ]
    return bool(outputs)


def _field(value: Any, name: str) -> Any:
    return value[name] if isinstance(value, dict) else getattr(value, name)
