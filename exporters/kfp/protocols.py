"""The two protocols between the KFP exporter and the Dagster project it exports.

The exporter knows nothing of any one project. What it needs from a project's ``Definitions``
is asked through these two small protocols; a project that implements neither still exports
and runs, with the defaults described below.

1. **Value storage** (:class:`PathStorage`). If the project's ``io_manager`` resource object, as
   found in ``defs.resources``, has ``dump_to_path(self, context, obj, path)`` and
   ``load_from_path(self, context, path)`` (the names and signatures of
   ``dagster.UPathIOManager``), a KFP task stores its asset value with ``dump_to_path`` at the
   path of its output artifact and loads its upstream values with ``load_from_path`` from the
   paths of its input artifacts; ``path`` is a ``upath.UPath``. Otherwise the runtime's own
   storage writes pandas DataFrames as Parquet and JSON-able values as JSON, and fails with an
   error naming the asset for anything else (it never pickles).

2. **Per-run tracking** (:class:`PipelineRunTracker`). A resource in ``defs.resources`` whose
   config has a field named ``kfp_run_id`` (:data:`KFP_RUN_CONFIG_FIELD`; a function-style
   ``config_schema`` field or a ``ConfigurableResource`` field) gets the KFP run id in every
   task of a run, so all tasks can share one tracking run. The pipeline then has an exit handler
   that calls, on that resource object as found in ``defs.resources``,
   ``end_pipeline_run(kfp_run_id, status)`` with ``status`` one of ``"FINISHED"``, ``"FAILED"``
   or ``"KILLED"`` (:data:`PIPELINE_STATUSES`), mapped from the state KFP reports.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from dagster import InputContext, OutputContext
from upath import UPath

#: The config field that marks a resource as the project's per-run tracking resource.
KFP_RUN_CONFIG_FIELD = "kfp_run_id"

PipelineStatus = Literal["FINISHED", "FAILED", "KILLED"]
PIPELINE_STATUSES: tuple[PipelineStatus, ...] = ("FINISHED", "FAILED", "KILLED")


@runtime_checkable
class PathStorage(Protocol):
    """An io_manager that can store and load a value at a given path (as UPathIOManager)."""

    def dump_to_path(self, context: OutputContext, obj: Any, path: UPath) -> None:
        """Write ``obj``, the value of ``context.asset_key``, to ``path``."""

    def load_from_path(self, context: InputContext, path: UPath) -> Any:
        """Read back the value written to ``path``."""


@runtime_checkable
class PipelineRunTracker(Protocol):
    """A tracking resource that ends the run shared by all tasks of one KFP run."""

    def end_pipeline_run(self, kfp_run_id: str, status: str) -> str | None:
        """End the tracking run of KFP run ``kfp_run_id`` with ``status``; return its id."""
