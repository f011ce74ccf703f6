"""The project's resources: the asset value store and ``MlflowTracking``, its one MLflow resource.

``MlflowTracking`` holds the MLflow side of a pipeline run: the tracking URI, the experiment, the
run (one per Dagster run on every launch path, one per KFP run) and the ``MlflowClient``. Assets
take it as ``mlflow: MlflowTracking`` and log with :mod:`stock_assets.mlflow_ops.run_logging` and
:mod:`stock_assets.mlflow_ops.registry`, passing ``mlflow.client`` and ``mlflow.run_id``.

Run lifecycle. Each step (each process, with the multiprocess executor) opens the resource: it
finds the run tagged with the Dagster run id (or the KFP run id), or creates it, named
``<job>-<run id[:8]>`` / ``dagster-<run id[:8]>`` / ``kfp-<KFP run id>``, names it on the Dagster
run (:mod:`stock_assets.defs.run_record`), and has dagster-mlflow's ``mlflow_tracking`` resource
make it MLflow's active run. The run ends when the Dagster run does, with its outcome: the
executor ends it after the last step (FAILED if any step failed); in a run whose steps all run in
the orchestrator's process (``materialize()``, ``in_process``) closing the resource does. A step
in a process of its own only detaches, since it cannot know the outcome. A run that belongs to a
KFP run is left open for the pipeline's exit handler, which calls :meth:`end_pipeline_run`.
Opened outside a run (by a sensor), the resource is only its store and client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Generator, Iterator
from typing import Any, cast

import mlflow
from dagster import (
    BetaWarning,
    ConfigurableResource,
    DagsterLogManager,
    DagsterRun,
    Definitions,
    Failure,
    InitResourceContext,
    definitions,
)
from dagster_mlflow import mlflow_tracking
from mlflow import MlflowClient
from mlflow.entities import RunStatus, RunTag
from mlflow.exceptions import MlflowException
from pydantic import Field, PrivateAttr

from stock_assets.defs import liveness, run_record
from stock_assets.mlflow_ops import experiment, lineage, pipeline_runs, run_status
from stock_assets.mlflow_ops.errors import STORE_ERRORS, bounded_http_retries, unreachable
from stock_assets.mlflow_ops.experiment import (  # noqa: F401 - the experiment's names, re-exported
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_NAME,
)
from stock_assets.mlflow_ops.pipeline_runs import KFP_RUN_TAG
from stock_assets.mlflow_ops.registry import is_missing
from stock_assets.mlflow_ops.store import first_use_lock
from stock_assets.paths import default_tracking_uri, strip_credentials

DAGSTER_RUN_TAG = run_record.DAGSTER_RUN_TAG


class MlflowTracking(ConfigurableResource):
    """One MLflow run per pipeline run, and the client of its store."""

    experiment_name: str = Field(
        default=EXPERIMENT_NAME, description="MLflow experiment for every run."
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="Tracking URI; default MLFLOW_TRACKING_URI, else sqlite in the data dir.",
    )
    environment: str = Field(
        default="development", description="Value of the run's 'environment' tag."
    )
    kfp_run_id: str | None = Field(
        default=None,
        description=(
            "Set by the KFP runtime: every task of one KFP run shares the MLflow run tagged "
            "kfp_run_id=<id>, left open for the pipeline's exit handler to end."
        ),
    )

    _client: MlflowClient | None = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)

    @property
    def tracking_uri(self) -> str:
        """The store's URI, never with credentials (they go to MLFLOW_TRACKING_USERNAME/...)."""
        if self.mlflow_tracking_uri:
            return strip_credentials(self.mlflow_tracking_uri)
        return default_tracking_uri()

    @property
    def client(self) -> MlflowClient:
        """The client of the tracking store (and of its model registry)."""
        uri = self.tracking_uri  # MLFLOW_TRACKING_URI may change between runs of one process
        if self._client is None or self._client.tracking_uri != uri:
            self._client = MlflowClient(tracking_uri=uri)
        return self._client

    @contextlib.contextmanager
    def reporting_errors(self) -> Iterator[None]:
        """Turn a store error (server down, refused request, full disk) into one-line Failure."""
        try:
            yield
        except Failure:
            raise
        except STORE_ERRORS as error:
            raise unreachable(self.tracking_uri, error) from None

    def experiment_id(self) -> str:
        """The experiment's id, creating it (tagged, with its artifact location) if missing."""
        with self.reporting_errors():
            return experiment.experiment_id(self.client, self.experiment_name)

    @property
    def run_id(self) -> str:
        """The MLflow run this pipeline run logs to."""
        if self._run_id is None:
            raise RuntimeError("MlflowTracking has no run outside a step")
        return self._run_id

    @property
    def owns_run(self) -> bool:
        """False when the run belongs to a KFP run (or to the platform, via MLFLOW_RUN_ID)."""
        return self.kfp_run_id is None

    # --- the run of this step -------------------------------------------------------------

    @contextlib.contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[MlflowTracking]:
        if context.run is None:  # a sensor's: the store only
            yield self
            return
        with bounded_http_retries():
            mlflow.set_tracking_uri(self.tracking_uri)  # the fluent API (log_model) reads it
            # One process at a time opens a fresh SQLite store (MLflow creates its schema).
            with first_use_lock(self.tracking_uri), self.reporting_errors():
                self._run_id = self._open_run(context, context.run)
            try:
                yield self
            finally:
                try:
                    self._end_step(context, context.run)
                except STORE_ERRORS as error:  # the server went away: one line, no traceback
                    _detach()
                    _log(context).error(
                        f"{unreachable(self.tracking_uri, error).description} The MLflow run "
                        "stays RUNNING until the next run's sweep closes it."
                    )
                self._run_id = None

    def _open_run(self, context: InitResourceContext, dagster_run: DagsterRun) -> str:
        """Find or create the pipeline run's MLflow run, tag it, sweep, and attach the step."""
        experiment_id = self.experiment_id()
        tags = {"environment": self.environment, "author": experiment.author()}
        injected = os.environ.get("MLFLOW_RUN_ID") if self.kfp_run_id else None
        if injected and self.kfp_run_id:  # the platform's own MLflow integration made the run
            run_id, created = injected, False
            name = self.client.get_run(injected).info.run_name
            tags[KFP_RUN_TAG] = self.kfp_run_id
        else:
            if self.kfp_run_id:
                key, value, name = KFP_RUN_TAG, self.kfp_run_id, f"kfp-{self.kfp_run_id}"
            else:
                job, dagster_run_id = dagster_run.job_name, dagster_run.run_id
                prefix = job if not job.startswith("__") else "dagster"
                key, value = DAGSTER_RUN_TAG, dagster_run_id
                name = f"{prefix}-{dagster_run_id[:8]}"
            run_id, name, created = experiment.tagged_run(
                self.client, experiment_id, key, value, name, tags
            )
        instance = context.instance
        if self.owns_run and instance is not None:
            tags.update(run_record.orchestrator_tags(instance, dagster_run.run_id))
            run_record.tag_dagster_run(instance, dagster_run.run_id, run_id, self.tracking_uri)
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        if self.owns_run and instance is not None:
            swept = run_record.sweep_orphans(self.client, instance, experiment_id, run_id)
            for closed, status in swept:
                _log(context).warning(
                    f"closed MLflow run {closed} ({status}): its Dagster run is no longer alive"
                )
        self._attach(context, run_id, name)
        _log(context).info(
            f"{'created' if created else 'resuming'} MLflow run {run_id} "
            f"({'MLFLOW_RUN_ID' if injected else name}) in experiment {self.experiment_name!r}"
        )
        return run_id

    def _attach(self, context: InitResourceContext, run_id: str, name: str) -> None:
        """Make ``run_id`` the step's active run with dagster-mlflow's ``mlflow_tracking``.

        Given ``mlflow_run_id``, the resource sets the tracking URI and experiment, makes the run
        active and unregisters MLflow's atexit ``end_run``; all of that is kept. Its teardown is
        not run: it ends the run only on an error in flight, and a step cannot know the run's
        outcome. Three of its side effects are undone here: it renames the run after the Dagster
        job (``__ASSET_JOB`` for "Materialize all"), tags ``dagster_run_id`` also on a KFP run's
        run (each KFP task is an ephemeral Dagster run of its own), and logs "Starting a new
        mlflow run" on every step, also when it only resumes.
        """
        config = {
            "experiment_name": self.experiment_name,
            "mlflow_tracking_uri": self.tracking_uri,
            "mlflow_run_id": run_id,
        }
        with warnings.catch_warnings(), _warnings_only(context.log):
            warnings.filterwarnings("ignore", category=BetaWarning)  # dagster-mlflow is beta
            attach = cast(Callable[[InitResourceContext], Any], mlflow_tracking.resource_fn)
            attaching = attach(context.replace_config(config))
            if isinstance(attaching, Generator):  # set up on the first next(); no teardown
                next(attaching)
                attaching.close()
        self.client.update_run(run_id, name=name)
        if not self.owns_run:
            try:
                self.client.delete_tag(run_id, DAGSTER_RUN_TAG)
            except MlflowException as error:  # another task of the run deleted it first
                if not is_missing(error):
                    raise

    def _end_step(self, context: InitResourceContext, dagster_run: DagsterRun) -> None:
        if mlflow.active_run() is None:
            return
        instance = context.instance
        in_orchestrator = instance is not None and liveness.orchestrator_pid(
            instance, dagster_run.run_id
        ) in (None, os.getpid())
        if not self.owns_run or not in_orchestrator:
            # A KFP run's MLflow run stays open for its exit handler, a multiprocess run's for
            # its executor; only detach this process (end_run also drops MLFLOW_RUN_ID from the
            # environment: keep it).
            injected = os.environ.get("MLFLOW_RUN_ID")
            mlflow.end_run(status=RunStatus.to_string(RunStatus.RUNNING))
            if injected:
                os.environ["MLFLOW_RUN_ID"] = injected
            return
        # Every step ran in this process (in_process, materialize()): this is the run's end.
        failed = instance is not None and run_record.step_failed(instance, dagster_run.run_id)
        current = self.client.get_run(self.run_id).info.status
        mlflow.end_run(status=run_status.worse(current, "FAILED" if failed else "FINISHED"))

    # --- the MLflow run of a KFP run (exporters/kfp/protocols.py) ----------------------

    def end_pipeline_run(self, kfp_run_id: str, status: str) -> str | None:
        """End the MLflow run of KFP run ``kfp_run_id`` with ``status``; return its id.

        ``MLFLOW_RUN_ID``, when the platform injects it, names the run. None when the KFP run
        never reached MLflow.
        """
        with bounded_http_retries():
            return pipeline_runs.end(self.client, self.experiment_name, kfp_run_id, status)

    def record_pipeline_task(self, kfp_run_id: str, task: str, record: str) -> None:
        """Record ``task``'s state on KFP run ``kfp_run_id``'s MLflow run, creating the run."""
        tags = {"environment": self.environment, "author": experiment.author()}
        with bounded_http_retries(), self.reporting_errors():
            pipeline_runs.record(self.client, self.experiment_name, kfp_run_id, task, record, tags)

    def pipeline_task_records(self, kfp_run_id: str) -> dict[str, str]:
        """Every task's record on KFP run ``kfp_run_id``'s MLflow run, by task."""
        with bounded_http_retries(), self.reporting_errors():
            run_id = pipeline_runs.find_run(self.client, self.experiment_name, kfp_run_id)
            return pipeline_runs.task_records(self.client, run_id)

    def pipeline_run_lineage(self, kfp_run_id: str) -> str:
        """JSON: what KFP run ``kfp_run_id``'s MLflow run holds."""
        with bounded_http_retries(), self.reporting_errors():
            return lineage.pipeline_lineage(
                self.client, self.experiment_name, kfp_run_id, self.tracking_uri
            )

    def log_pipeline_lineage(self, kfp_run_id: str, record: str) -> list[str]:
        """Log a cached task's record on KFP run ``kfp_run_id``'s MLflow run; return notes."""
        with bounded_http_retries(), self.reporting_errors():
            return lineage.log_pipeline_lineage(
                self.client, self.experiment_name, kfp_run_id, record
            )


def _log(context: InitResourceContext) -> DagsterLogManager | logging.Logger:
    """The run's log, or this module's logger when Dagster gives none."""
    return context.log if context.log is not None else logging.getLogger(__name__)


@contextlib.contextmanager
def _warnings_only(log: logging.Logger | None) -> Iterator[None]:
    """``log`` keeps only its warnings and errors for the duration."""

    def serious(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING

    if log is not None:
        log.addFilter(serious)
    try:
        yield
    finally:
        if log is not None:
            log.removeFilter(serious)


def _detach() -> None:
    """Forget the active run locally without calling the (unreachable) server."""
    with contextlib.suppress(Exception):
        mlflow.tracking.fluent._active_run_stack.get().clear()


@definitions
def resources() -> Definitions:
    """The resources every asset, check and sensor uses: the value store and MLflow."""
    from stock_assets.defs.io_manager import AssetFileIOManager

    return Definitions(resources={"io_manager": AssetFileIOManager(), "mlflow": MlflowTracking()})
