"""What a KFP task runs: exactly one asset of a Dagster ``Definitions``, at KFP's artifact paths.

The generated components are thin: their body imports this module and calls
:func:`materialize_asset`. The asset's real code runs through ``dagster.materialize`` on an
ephemeral instance, with its upstream values loaded from the task's input artifacts and its value
written to the output artifact, so a KFP run and a Dagster run execute the same functions.
Blocking asset checks of the asset run in the same task: a failed check fails the task.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
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
    OutputContext,
    materialize,
)

#: A resource whose config has this field shares one tracking run per KFP run; the exit
#: handler calls its ``end_pipeline_run(kfp_run_id, status)``.
KFP_RUN_CONFIG_FIELD = "kfp_run_id"
PARQUET_MAGIC = b"PAR1"


class ArtifactPathIOManager(IOManager):
    """Loads and stores asset values at the paths KFP assigned to this task's artifacts.

    With the project's io_manager's ``dump_to_path`` / ``load_from_path`` (the names of
    ``dagster.UPathIOManager``) when it has them, else Parquet for DataFrames and JSON.
    """

    def __init__(self, paths: dict[str, str], storage: Any = None) -> None:
        self.paths = paths
        has_both = hasattr(storage, "dump_to_path") and hasattr(storage, "load_from_path")
        self.storage = storage if has_both else None

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        path = self.paths[context.asset_key.to_user_string()]
        if self.storage is not None:
            self.storage.dump_to_path(context, obj, Path(path))
        else:
            _write_default(path, obj)

    def load_input(self, context: InputContext) -> Any:
        path = self.paths[context.asset_key.to_user_string()]
        if self.storage is not None:
            return self.storage.load_from_path(context, Path(path))
        return read_default(path)


def _write_default(path: str, value: Any) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        if type(value).__name__ == "DataFrame":
            value.to_parquet(tmp_name, index=False)
        else:
            Path(tmp_name).write_text(json.dumps(value, sort_keys=True))
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)


def read_default(path: str | os.PathLike[str]) -> Any:
    """A value the default storage wrote: Parquet or JSON."""
    source = Path(path)
    if source.read_bytes()[:4] == PARQUET_MAGIC:
        import pandas as pd

        return pd.read_parquet(source)
    return json.loads(source.read_text())


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
    """Resource keys whose config accepts ``kfp_run_id`` (the project's MLflow resource)."""
    keys = []
    for key, resource_def in (defs.resources or {}).items():
        if isinstance(resource_def, ConfigurableResource):
            if KFP_RUN_CONFIG_FIELD in type(resource_def).model_fields:
                keys.append(key)
            continue
        schema = getattr(resource_def, "config_schema", None)
        fields = getattr(getattr(schema, "config_type", None), "fields", {}) or {}
        if KFP_RUN_CONFIG_FIELD in fields:
            keys.append(key)
    return keys


def materialize_asset(
    *,
    module: str,
    asset: str,
    inputs: dict[str, str],
    output: str,
    config: dict[str, Any],
    kfp_run_id: str = "",
    code_version: str = "",
    metrics: Any = None,
    metrics_field: str = "",
    gate_field: str = "",
) -> bool:
    """Materialise ``asset`` from ``module``'s Definitions; return its gate value (or True).

    ``inputs`` maps upstream asset keys to artifact paths, ``output`` is this asset's artifact
    path, ``config`` its run config. ``metrics`` (a KFP Metrics artifact) receives the numbers
    under ``metrics_field`` of the asset's value; ``gate_field`` names the boolean a downstream
    ``dsl.If`` reads.
    """
    defs = load_definitions(module)
    key = AssetKey.from_user_string(asset)
    assets_def = defs.get_assets_def(key)
    op_name = assets_def.op.name
    paths = {**inputs, asset: output}

    resources: dict[str, Any] = dict(defs.resources or {})
    resources["io_manager"] = ArtifactPathIOManager(paths, resources.get("io_manager"))
    run_config: dict[str, Any] = {"ops": {op_name: {"config": config}}} if config else {}
    if kfp_run_id:
        for resource_key in tracking_resource_keys(defs):
            resource = resources[resource_key]
            if isinstance(resource, ConfigurableResource):
                # Run config would reset fields set in the constructor: build a copy instead.
                values = {name: getattr(resource, name) for name in type(resource).model_fields}
                resources[resource_key] = type(resource)(
                    **{**values, KFP_RUN_CONFIG_FIELD: kfp_run_id}
                )
            else:
                run_config.setdefault("resources", {})[resource_key] = {
                    "config": {KFP_RUN_CONFIG_FIELD: kfp_run_id}
                }

    result = materialize(
        [*(defs.assets or []), *(defs.asset_checks or [])],
        selection=AssetSelection.assets(key) | AssetSelection.checks_for_assets(key),
        resources=resources,
        run_config=run_config,
        instance=DagsterInstance.ephemeral(),
        tags={"kfp_run_id": kfp_run_id} if kfp_run_id else None,
    )
    value = result.output_for_node(op_name) if _has_output(result, op_name) else None
    if metrics is not None and metrics_field and value is not None:
        for name, number in sorted(_field(value, metrics_field).items()):
            metrics.log_metric(name, float(number))
    if gate_field:
        return bool(value is not None and _field(value, gate_field))
    return True


def finish_pipeline_run(*, module: str, kfp_run_id: str, state: str) -> None:
    """Exit handler: end the KFP run's MLflow run, FINISHED on success and FAILED otherwise."""
    defs = load_definitions(module)
    status = {"SUCCEEDED": "FINISHED", "CANCELED": "KILLED", "CANCELLED": "KILLED"}.get(
        state, "FAILED"
    )
    for key in tracking_resource_keys(defs):
        run_id = defs.resources[key].end_pipeline_run(kfp_run_id, status)
        print(f"MLflow run {run_id} of KFP run {kfp_run_id} ended {status}: pipeline state {state}")


def _has_output(result: Any, op_name: str) -> bool:
    outputs = [
        event
        for event in result.events_for_node(op_name)
        if event.event_type_value == "STEP_OUTPUT"
    ]
    return bool(outputs)


def _field(value: Any, name: str) -> Any:
    return value[name] if isinstance(value, dict) else getattr(value, name)
