"""What a KFP task runs, in the project's image: the real asset or op, at KFP's artifact paths.

The generated components are stubs that hand their :class:`~exporters.kfp.spec.TaskSpec` and
arguments to :func:`run_task`. By concern:

* :mod:`.entry`: the entry points the components call;
* :mod:`.execute` and :mod:`.op_graph`: the asset or op run through ``dagster.materialize``;
* :mod:`.artifacts`: KFP artifacts as an IO manager, and the default storage;
* :mod:`.parameters`: pipeline parameter values typed as the ``Config`` class declares them;
* :mod:`.macros`: recurring-run date macros, resolved once per run;
* :mod:`.identity`: the KFP run id, the Definitions, the tracking resources.

The project is reached only through the protocols of :mod:`exporters.kfp.protocols`.
"""

from exporters.kfp.outcome import state_status as pipeline_status
from exporters.kfp.runtime.artifacts import MAPPING_KEY_METADATA, read_value, write_value
from exporters.kfp.runtime.entry import finish_pipeline_run, run_task
from exporters.kfp.runtime.identity import (
    RUN_ID_ENV,
    RUN_ID_FIELD_PATH,
    RUN_ID_LABEL,
    RunIdError,
    kfp_run_id,
    load_definitions,
    tracking_resource_keys,
)
from exporters.kfp.runtime.macros import (
    format_macros,
    go_layout_to_strftime,
    resolve_scheduled_values,
)
from exporters.kfp.runtime.parameters import ParameterValueError, coerce_config

__all__ = [
    "MAPPING_KEY_METADATA",
    "RUN_ID_ENV",
    "RUN_ID_FIELD_PATH",
    "RUN_ID_LABEL",
    "ParameterValueError",
    "RunIdError",
    "coerce_config",
    "finish_pipeline_run",
    "format_macros",
    "go_layout_to_strftime",
    "kfp_run_id",
    "load_definitions",
    "pipeline_status",
    "read_value",
    "resolve_scheduled_values",
    "run_task",
    "tracking_resource_keys",
    "write_value",
]
