"""The project's resources: the asset value store and ``MlflowTracking``, its one MLflow resource.

``MlflowTracking`` owns the MLflow side of a pipeline run: the tracking URI, the experiment,
the run (one per Dagster run on every launch path, one per KFP run), the ``MlflowClient`` and the
registry calls. Assets take it as a typed parameter, ``mlflow: MlflowTracking``.

Run lifecycle. Each step (each process, with the multiprocess executor) opens the resource: it
finds the run tagged with the Dagster run id (or the KFP run id), or creates it, named
``<job>-<run id[:8]>`` / ``dagster-<run id[:8]>`` / ``kfp-<KFP run id>``, and makes it MLflow's
active run, and names it on the Dagster run (:mod:`stock_assets.defs.run_record`). The run ends
when the Dagster run does, with its outcome: the executor ends it after the last step (FAILED if
any step failed); in a run whose steps all run in the orchestrator's process (``materialize()``,
``in_process``) closing the resource does. A step in a process of its own only detaches, since it
cannot know the outcome. A run that belongs to a KFP run is left open for the pipeline's exit
handler, which calls :meth:`end_pipeline_run`.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from dagster import (
    BetaWarning,
    ConfigurableResource,
    DagsterInstance,
    DagsterLogManager,
    DagsterRun,
    Definitions,
    Failure,
    InitResourceContext,
    definitions,
)
from dagster_mlflow.resources import MlFlow
from mlflow import MlflowClient
from mlflow.entities import Run, RunStatus, RunTag
from pydantic import Field, PrivateAttr

from stock_assets.core.selection import Comparison
from stock_assets.core.training import TrainingResult
from stock_assets.core.values import METRIC_DIGITS, Champion, Promotion, TrainedModel
from stock_assets.defs import liveness, run_record
from stock_assets.mlflow_ops import lineage, pipeline_runs, registry, run_logging, run_status
from stock_assets.mlflow_ops.errors import (  # noqa: F401 - STORE_ERRORS, redact_text: re-exported
    STORE_ERRORS,
    bounded_http_retries,
    redact_text,
    unreachable,
)
from stock_assets.mlflow_ops.run_logging import LoggedModel
from stock_assets.mlflow_ops.store import first_use_lock
from stock_assets.paths import (
    LOCAL_MLFLOW_UI,
    default_artifact_location,
    default_tracking_uri,
    strip_credentials,
)

EXPERIMENT_NAME = "stock-prediction"
EXPERIMENT_TAGS = {"project": "stock-prediction", "team": "ml"}
# MLflow 3's UI reads this experiment tag to choose the experiment's default page; the value
# for classic model training opens the runs list (values in the UI bundle and in
# mlflow/assistant/skills/mlflow-onboarding/SKILL.md: genai_development, custom_model_development).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
DAGSTER_RUN_TAG = "dagster_run_id"
KFP_RUN_TAG = pipeline_runs.KFP_RUN_TAG
END_STATUSES = run_status.END_STATUSES


def _store_call(method: Callable[..., Any]) -> Callable[..., Any]:
    """A resource method whose store errors become :meth:`MlflowTracking.unreachable`."""

    @functools.wraps(method)
    def wrapper(self: MlflowTracking, *args: Any, **kwargs: Any) -> Any:
        with self.reporting_errors():
            return method(self, *args, **kwargs)

    return wrapper


class _AttachedRun(MlFlow):
    """dagster-mlflow's ``MlFlow``, attached to the run ``MlflowTracking`` found or created.

    The one override of dagster-mlflow 0.29.27 (``dagster_mlflow/resources.py``). Given
    ``mlflow_run_id``, ``MlFlow.__init__`` sets the tracking URI and experiment and ``_setup``
    makes the run active and unregisters MLflow's atexit ``end_run``; we keep all of that. Two
    of its steps are replaced, because its public API has no option for them:

    * ``MlFlow._start_run`` passes ``run_name=<Dagster job name>`` (``__ASSET_JOB`` for
      "Materialize all"), which renames an existing run, and logs "Starting a new mlflow run"
      on every step, also when it only resumes;
    * ``MlFlow._set_all_tags`` tags ``dagster_run_id`` on every step, also on a run that belongs
      to a KFP run (each KFP task is its own ephemeral Dagster run). ``MlflowTracking`` tags the
      run when it creates it instead.

    (Ending the run is not dagster-mlflow's either: it ends runs only through the
    ``end_mlflow_on_run_finished`` job hook, which asset runs never get.)
    """

    def _start_run(self, **kwargs: Any) -> None:
        mlflow.start_run(run_id=kwargs["run_id"])

    def _set_all_tags(self) -> None:
        pass


class MlflowTracking(ConfigurableResource):
    """One MLflow run per pipeline run, with the client and the registry calls that go with it."""

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

    # --- the store ----------------------------------------------------------------------

    @property
    def tracking_uri(self) -> str:
        """The store's URI, never with credentials (they go to MLFLOW_TRACKING_USERNAME/...)."""
        if self.mlflow_tracking_uri:
            return strip_credentials(self.mlflow_tracking_uri)
        return default_tracking_uri()

    def unreachable(self, error: BaseException) -> Failure:
        """The one-line failure for a tracking store that is down or refused a request."""
        return unreachable(self.tracking_uri, error)

    @contextlib.contextmanager
    def reporting_errors(self) -> Iterator[None]:
        """Turn a store error (server down, refused request) into :meth:`unreachable`."""
        try:
            yield
        except Failure:
            raise
        except STORE_ERRORS as error:
            raise self.unreachable(error) from None

    @property
    def client(self) -> MlflowClient:
        """The client of the tracking store (and of its model registry)."""
        uri = self.tracking_uri  # MLFLOW_TRACKING_URI may change between runs of one process
        if self._client is None or self._client.tracking_uri != uri:
            self._client = MlflowClient(tracking_uri=uri)
        return self._client

    def experiment_id(self) -> str:
        """The experiment's id, creating it (tagged, with its artifact location) if missing.

        An existing experiment without the experiment-kind tag gets it.
        """
        try:
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                local = not self.tracking_uri.startswith(("http://", "https://", "databricks"))
                return self.client.create_experiment(
                    self.experiment_name,
                    artifact_location=default_artifact_location() if local else None,
                    tags={**EXPERIMENT_TAGS, EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
                )
            if EXPERIMENT_KIND_TAG not in experiment.tags:
                self.client.set_experiment_tag(
                    experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
                )
            return experiment.experiment_id
        except STORE_ERRORS as error:
            raise self.unreachable(error) from None

    # --- the run of this step -------------------------------------------------------------

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

    @contextlib.contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[MlflowTracking]:
        with bounded_http_retries():
            mlflow.set_tracking_uri(self.tracking_uri)  # the fluent API (log_model) reads it
            # One process at a time opens a fresh SQLite store (MLflow creates its schema).
            with first_use_lock(self.tracking_uri), self.reporting_errors():
                self._run_id = self._find_or_create_run(context)
                with warnings.catch_warnings():  # dagster-mlflow marks MlFlow beta; knowingly
                    warnings.filterwarnings(
                        "ignore",
                        message="Class `MlFlow` is currently in beta",
                        category=BetaWarning,
                    )
                    _AttachedRun(
                        context.replace_config(
                            {
                                "experiment_name": self.experiment_name,
                                "mlflow_tracking_uri": self.tracking_uri,
                                "mlflow_run_id": self._run_id,
                            }
                        )
                    )
            try:
                yield self
            finally:
                try:
                    self._end_step(context)
                except STORE_ERRORS as error:  # the server went away: one line, no traceback
                    _detach()
                    _log(context).error(
                        f"{self.unreachable(error).description} The MLflow run stays RUNNING "
                        "until the next run's sweep closes it."
                    )
                self._run_id = None

    def _find_or_create_run(self, context: InitResourceContext) -> str:
        dagster_run = _dagster_run(context)
        experiment_id = self.experiment_id()
        tags = {"environment": self.environment, "author": _author()}
        injected = os.environ.get("MLFLOW_RUN_ID") if self.kfp_run_id else None
        if injected and self.kfp_run_id:  # the platform's own MLflow integration made the run
            run_id, created, name = injected, False, "MLFLOW_RUN_ID"
            tags[KFP_RUN_TAG] = self.kfp_run_id
        else:
            if self.kfp_run_id:
                key, value, name = KFP_RUN_TAG, self.kfp_run_id, f"kfp-{self.kfp_run_id}"
            else:
                job, run_id = dagster_run.job_name, dagster_run.run_id
                prefix = job if not job.startswith("__") else "dagster"
                key, value, name = DAGSTER_RUN_TAG, run_id, f"{prefix}-{run_id[:8]}"
            run_id, created = self._tagged_run(experiment_id, key, value, name, tags)
        if self.owns_run and context.instance is not None:
            tags.update(orchestrator_tags(context.instance, dagster_run.run_id))
            run_record.tag_dagster_run(
                context.instance, dagster_run.run_id, run_id, self.tracking_uri
            )
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        if self.owns_run and context.instance is not None:
            for closed, status in self.sweep_orphans(context.instance, experiment_id, run_id):
                _log(context).warning(
                    f"closed MLflow run {closed} ({status}): its Dagster run is no longer alive"
                )
        _log(context).info(
            f"{'created' if created else 'resuming'} MLflow run {run_id} ({name}) in experiment "
            f"{self.experiment_name!r}"
        )
        return run_id

    def _tagged_run(
        self, experiment_id: str, key: str, value: str, name: str, tags: dict[str, str]
    ) -> tuple[str, bool]:
        """The run tagged ``key=value``, and whether this call created it.

        MLflow cannot create a run only if none exists: two steps that start at once may both
        create one. The earliest is kept and any other deleted, so a pipeline run is one run.
        """
        query = f"tags.{key} = '{value}'"
        order = ["attributes.start_time ASC"]
        found = self.client.search_runs([experiment_id], query, order_by=order, max_results=1)
        if found:
            return found[0].info.run_id, False
        created = self.client.create_run(
            experiment_id, run_name=name, tags={key: value, **tags}
        ).info.run_id
        found = self.client.search_runs([experiment_id], query, order_by=order, max_results=1)
        if found and found[0].info.run_id != created:
            self.client.delete_run(created)
            return found[0].info.run_id, False
        return created, True

    def _end_step(self, context: InitResourceContext) -> None:
        if mlflow.active_run() is None:
            return
        instance, dagster_run_id = context.instance, _dagster_run(context).run_id
        in_orchestrator = instance is not None and liveness.orchestrator_pid(
            instance, dagster_run_id
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
        failed = instance is not None and run_record.step_failed(instance, dagster_run_id)
        current = self.client.get_run(self.run_id).info.status
        mlflow.end_run(status=run_status.worse(current, "FAILED" if failed else "FINISHED"))

    # --- what the assets record -----------------------------------------------------------

    @_store_call
    def log_params(self, params: dict[str, Any]) -> None:
        mlflow.log_params(params)

    @_store_call
    def log_metric(self, name: str, value: float) -> None:
        mlflow.log_metric(name, value)

    @_store_call
    def set_tags(self, tags: dict[str, Any]) -> None:
        mlflow.set_tags(tags)

    @_store_call
    def set_tag(self, key: str, value: Any) -> None:
        mlflow.set_tag(key, value)

    @_store_call
    def log_training(self, result: TrainingResult, train_example: pd.DataFrame) -> LoggedModel:
        """Params, metrics, evaluation plots, the sklearn model and the served pyfunc."""
        return run_logging.log_training(result, train_example)

    @_store_call
    def log_comparison(self, comparison: Comparison, folds: int, metric: str) -> Path:
        """One nested run per candidate, the comparison table and chart; the chart's path."""
        return run_logging.log_comparison(comparison, folds, metric)

    @_store_call
    def run_url(self) -> str:
        """The run in the MLflow UI: the tracking server's, or ``make mlflow-ui``'s."""
        experiment_id = self.client.get_run(self.run_id).info.experiment_id
        uri = self.tracking_uri
        base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_MLFLOW_UI
        return f"{base}/#/experiments/{experiment_id}/runs/{self.run_id}"

    # --- the registry -----------------------------------------------------------------------

    @_store_call
    def register_version(self, model_uri: str, tags: dict[str, Any]) -> str:
        """A new version of the registered model, from this run (stage None)."""
        return registry.register_version(self.client, model_uri, self.run_id, tags)

    @_store_call
    def register_model(
        self, result: TrainingResult, logged: LoggedModel, lineage: Mapping[str, str]
    ) -> TrainedModel:
        """Register the logged model as a new version, tagged with its data ``lineage``."""
        metrics = {
            name: round(float(value), METRIC_DIGITS) for name, value in result.metrics.items()
        }
        version = self.register_version(
            logged.serving_model_uri,
            {"accuracy": metrics["accuracy"], "model_type": result.model_type, **lineage},
        )
        self.set_tag("registered_version", version)
        return TrainedModel(
            model_type=result.model_type,
            hyperparameters=result.hyperparameters,
            feature_columns=tuple(result.feature_columns),
            metrics=metrics,
            train_window=result.train_window,
            test_window=result.test_window,
            model_uri=logged.model_uri,
            serving_model_uri=logged.serving_model_uri,
            registered_version=version,
            mlflow_run_id=self.run_id,
        )

    @_store_call
    def mark_staging(self, version: str) -> None:
        registry.mark_staging(self.client, version)

    @_store_call
    def score_production(
        self, test_rows: pd.DataFrame, feature_columns: Sequence[str], challenger_version: str
    ) -> Champion:
        """The production model's accuracy on the challenger's test rows."""
        return registry.score_production(
            self.client, test_rows, feature_columns, challenger_version
        )

    @_store_call
    def promote(self, version: str) -> Promotion:
        return registry.promote(self.client, version)

    @_store_call
    def production_version(self) -> str | None:
        """The version ``production`` points at now, read from the registry."""
        return registry.production_version(self.client)

    # --- runs that did not end themselves -------------------------------------------------

    def close_open_runs(self, dagster_run_id: str, status: str = "FAILED") -> list[str]:
        """End the runs of this Dagster run still RUNNING (its process died or was cancelled),
        or FINISHED when ``status`` says it failed or was killed."""
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            return []
        return run_status.close_runs(
            self.client, experiment.experiment_id, DAGSTER_RUN_TAG, dagster_run_id, status
        )

    def sweep_orphans(
        self, instance: DagsterInstance, experiment_id: str, current_run_id: str | None = None
    ) -> list[tuple[str, str]]:
        """End the MLflow runs of the experiment whose Dagster run ended otherwise or died.

        A RUNNING run whose Dagster run is not alive (finished, or its orchestrator process on
        this host is gone) ends with the Dagster run's outcome; a FINISHED run whose Dagster run
        (in ``instance``) failed or was cancelled is corrected. A run of a KFP run is left to its
        exit handler. Returns (MLflow run id, status set) pairs.
        """

        def skip(run: Run) -> bool:
            tags = run.data.tags
            return (
                run.info.run_id == current_run_id
                or DAGSTER_RUN_TAG not in tags
                or KFP_RUN_TAG in tags
            )

        def end_status_of(run: Run) -> str | None:
            dagster_run_id = run.data.tags[DAGSTER_RUN_TAG]
            if run.info.status == "RUNNING":
                return liveness.mlflow_end_status(instance, dagster_run_id, run.data.tags)
            dagster_run = instance.get_run_by_id(dagster_run_id)
            return liveness.END_STATUS.get(dagster_run.status) if dagster_run else None

        return run_status.sweep(self.client, experiment_id, end_status_of, skip)

    # --- the MLflow run of a KFP run (exporters/kfp/protocols.py) ----------------------

    def end_pipeline_run(self, kfp_run_id: str, status: str) -> str | None:
        """End the MLflow run of KFP run ``kfp_run_id`` with ``status``; return its id.

        ``MLFLOW_RUN_ID``, when the platform injects it, names the run. None when the KFP run
        never reached MLflow.
        """
        if status not in END_STATUSES:
            raise ValueError(f"status={status!r}; expected one of {', '.join(END_STATUSES)}")
        with bounded_http_retries():
            run_id = pipeline_runs.find_run(self.client, self.experiment_name, kfp_run_id)
            if run_id:
                self.client.set_terminated(run_id, status=status)
            return run_id

    def record_pipeline_task(self, kfp_run_id: str, task: str, record: str) -> None:
        """Record ``task``'s state on KFP run ``kfp_run_id``'s MLflow run, creating the run."""
        with bounded_http_retries(), self.reporting_errors():
            run_id = pipeline_runs.find_run(self.client, self.experiment_name, kfp_run_id)
            if run_id is None:
                tags = {"environment": self.environment, "author": _author()}
                name = f"kfp-{kfp_run_id}"
                run_id = self._tagged_run(
                    self.experiment_id(), KFP_RUN_TAG, kfp_run_id, name, tags
                )[0]
            pipeline_runs.record_task(self.client, run_id, task, record)

    def pipeline_run_lineage(self, kfp_run_id: str) -> str:
        """What KFP run ``kfp_run_id``'s MLflow run holds (exporters/kfp/protocols.py)."""
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

    def pipeline_task_records(self, kfp_run_id: str) -> dict[str, str]:
        """Every task's record on KFP run ``kfp_run_id``'s MLflow run, by task."""
        with bounded_http_retries(), self.reporting_errors():
            run_id = pipeline_runs.find_run(self.client, self.experiment_name, kfp_run_id)
            return pipeline_runs.task_records(self.client, run_id)


def orchestrator_tags(instance: DagsterInstance, dagster_run_id: str) -> dict[str, str]:
    """The MLflow tags that let a sweep tell whether this Dagster run's process is alive."""
    pid = liveness.orchestrator_pid(instance, dagster_run_id)
    tags = {liveness.HOST_TAG: liveness.host_id()}
    run = instance.get_run_by_id(dagster_run_id)
    if run is not None and liveness.HOST_TAG not in run.tags:
        instance.add_run_tags(dagster_run_id, {liveness.HOST_TAG: liveness.host_id()})
    if pid is not None:
        tags[liveness.PID_TAG] = str(pid)
    return tags


def _dagster_run(context: InitResourceContext) -> DagsterRun:
    """The Dagster run the resource is opened for (it is opened only inside a run)."""
    run = context.run
    if run is None:
        raise RuntimeError("MlflowTracking is opened only inside a Dagster run")
    return run


def _log(context: InitResourceContext) -> DagsterLogManager | logging.Logger:
    """The run's log, or this module's logger when Dagster gives none."""
    return context.log if context.log is not None else logging.getLogger(__name__)


def _detach() -> None:
    """Forget the active run locally without calling the (unreachable) server."""
    with contextlib.suppress(Exception):
        mlflow.tracking.fluent._active_run_stack.get().clear()


def _author() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@definitions
def resources() -> Definitions:
    """The resources every asset and check uses: the value store and MLflow."""
    from stock_assets.defs.io_manager import AssetFileIOManager

    return Definitions(resources={"io_manager": AssetFileIOManager(), "mlflow": MlflowTracking()})
