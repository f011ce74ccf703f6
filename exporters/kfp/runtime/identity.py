"""Who this task is: the KFP run it belongs to, its Definitions and its tracking resources.

The tracking protocol (:mod:`exporters.kfp.protocols`): a resource whose config has a
``kfp_run_id`` field gets the run's id, so every task of one KFP run shares one tracking run.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, Definitions

from exporters.kfp.protocols import KFP_RUN_CONFIG_FIELD

#: Environment variable holding the KFP run id, filled from the pod label below.
RUN_ID_ENV = "KFP_RUN_ID"
#: The pod label the KFP API server puts on every pod of a run (backend/src/common/util/consts.go).
RUN_ID_LABEL = "pipeline/runid"
RUN_ID_FIELD_PATH = f"metadata.labels['{RUN_ID_LABEL}']"

#: kfp.local's folder for one iteration of a ParallelFor: ``<loop task>-iteration-<i>``
#: (kfp/local/orchestrator/enhanced_dag_orchestrator.py, kfp 2.17.3).
LOCAL_ITERATION_FOLDER = re.compile(r"-iteration-\d+$")


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


def with_run_id(defs: Definitions, run_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
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


def run_resources(defs: Definitions, output_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Definitions' resources, with the KFP run id set on the tracking ones."""
    resources: dict[str, Any] = dict(defs.resources or {})
    run_config: dict[str, Any] = {}
    if tracking_resource_keys(defs):
        resources, resource_config = with_run_id(defs, kfp_run_id(output_path))
        if resource_config:
            run_config["resources"] = resource_config
    return resources, run_config
