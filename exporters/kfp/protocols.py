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
   or ``"KILLED"`` (:data:`PIPELINE_STATUSES`).

   The state KFP hands the exit task does not tell a success from a failure on KFP 2.14-2.16
   (:mod:`exporters.kfp.outcome`), so the status is decided from records the tasks leave, if
   the resource also keeps them (:class:`PipelineTaskLedger`): each task calls
   ``record_pipeline_task(kfp_run_id, task, record)`` when it starts and when it ends, and the
   exit task reads them back with ``pipeline_task_records(kfp_run_id)``; ``record`` is a short
   JSON text, ``task`` the KFP task name (``<task>/<mapping key>`` in a ``ParallelFor``).
   ``record_pipeline_task`` may be the first call of a KFP run: it creates the tracking run if
   there is none yet. Without these methods the status follows the state string alone
   (``FINISHED`` for ``COMPLETE``/``SUCCEEDED``, else ``FAILED``), which on 2.14-2.16 marks
   every run whose exit handler group holds a ``ParallelFor`` or a ``dsl.If`` FAILED.

3. **Lineage of cached tasks** (:class:`PipelineRunLineage`). A cached KFP task does not run: the
   backend hands its earlier output artifacts to the next tasks, and nothing it logged reaches
   this run's tracking run. If the tracking resource has ``pipeline_run_lineage(kfp_run_id)``
   (JSON text: ``{"tracking_uri": str, "params": {...}, "tags": {...}, "inputs": {...}}``,
   what the run holds now, each section name -> JSON value) and
   ``log_pipeline_lineage(kfp_run_id, lineage)`` (logs such a JSON text on the run; returns
   notes), each task stores in its output artifact's metadata what its code added to the run
   (and what its inputs carried), and a task whose input artifact was made by another KFP run
   logs that onto its own run with the tag ``kfp_cached_tasks`` (:mod:`exporters.kfp.cached`).
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


@runtime_checkable
class PipelineTaskLedger(Protocol):
    """A tracking resource that keeps what each task of a KFP run recorded."""

    def record_pipeline_task(self, kfp_run_id: str, task: str, record: str) -> None:
        """Store ``record`` (JSON text) for ``task`` of KFP run ``kfp_run_id``, replacing any."""

    def pipeline_task_records(self, kfp_run_id: str) -> dict[str, str]:
        """Every record of KFP run ``kfp_run_id``, by task."""


@runtime_checkable
class PipelineRunLineage(Protocol):
    """A tracking resource that can say what a run holds and log it again on another run."""

    def pipeline_run_lineage(self, kfp_run_id: str) -> str:
        """JSON: the tracking URI, params, tags and dataset inputs of KFP run ``kfp_run_id``."""

    def log_pipeline_lineage(self, kfp_run_id: str, lineage: str) -> list[str]:
        """Log the sections of ``lineage`` on KFP run ``kfp_run_id``'s run; return notes."""
