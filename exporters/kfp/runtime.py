"""What a KFP task runs: exactly one asset of a Dagster ``Definitions``, at KFP's artifact paths.

The generated components are thin: their body imports this module and calls
:func:`materialize_asset`. The asset's real code runs through ``dagster.materialize`` on an
ephemeral instance, with its upstream values loaded from the task's input artifacts and its value
written to the output artifact, so a KFP run and a Dagster run execute the same functions.
Blocking asset checks of the asset run in the same task: a failed check fails the task.
"""

from __future__ import annotations

import importlib
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    ConfigurableIOManager,
    DagsterInstance,
    Definitions,
    InputContext,
    OutputContext,
    materialize,
)

from stock_assets.defs.storage import read_value, write_value

#: A resource whose config has this field shares one MLflow run per KFP run.
KFP_RUN_CONFIG_FIELD = "kfp_run_id"


class ArtifactPathIOManager(ConfigurableIOManager):
    """Loads and stores asset values at the paths KFP assigned to this task's artifacts."""

    paths: dict[str, str]

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is not None:
            write_value(self.paths[context.asset_key.to_user_string()], obj)

    def load_input(self, context: InputContext) -> Any:
        return read_value(self.paths[context.asset_key.to_user_string()])


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
    resources["io_manager"] = ArtifactPathIOManager(paths=paths)
    run_config: dict[str, Any] = {"ops": {op_name: {"config": config}}} if config else {}
    if kfp_run_id:
        run_config["resources"] = {
            k: {"config": {KFP_RUN_CONFIG_FIELD: kfp_run_id}} for k in tracking_resource_keys(defs)
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
    if not tracking_resource_keys(defs):
        return
    from stock_assets.defs.resources import end_pipeline_run

    run_id = end_pipeline_run(kfp_run_id, succeeded=state == "SUCCEEDED")
    print(f"MLflow run {run_id} of KFP run {kfp_run_id} ended: pipeline state {state}")


def _has_output(result: Any, op_name: str) -> bool:
    outputs = [
        event
        for event in result.events_for_node(op_name)
        if event.event_type_value == "STEP_OUTPUT"
    ]
    return bool(outputs)


def _field(value: Any, name: str) -> Any:
    return value[name] if isinstance(value, dict) else getattr(value, name)
