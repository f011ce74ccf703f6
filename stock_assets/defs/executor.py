"""How a run's steps execute locally: in the run's process unless the run config says otherwise.

Measured on 2 cores (README, *Scale*), one process is faster at every size: 9.6 s against
20.0 s for the default run under the CLI, 48.5 s against 59.1 s for the nightly run at 500
tickers x 2,520 days, since the candidates' scoring already uses both cores inside a step (fold
threads, OpenMP). So a run executes ``in_process`` unless its config says ``multiprocess``, for
a machine with more cores: then each step is forked from a ``forkserver`` that preloaded the
project, so no step imports Dagster, MLflow and scikit-learn again. A run config can choose
anything Dagster's default executor takes (``in_process``, ``multiprocess`` with another
``start_method``, ``max_concurrent``: how many steps run at once, default the CPU count).

The executor also ends the run's MLflow run when the last step is done, FAILED if any step
failed, KILLED if the run was interrupted, else FINISHED: step processes leave it open, since
none of them knows the outcome (:mod:`stock_assets.defs.run_record`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dagster import (
    DagsterEvent,
    DagsterExecutionInterruptedError,
    Definitions,
    Executor,
    Field,
    InitExecutorContext,
    definitions,
    executor,
    multi_or_in_process_executor,
)

from stock_assets.defs import run_record
from stock_assets.mlflow_ops.errors import STORE_ERRORS, store_error_message

#: What the forkserver imports once, before forking any step's process: the project, and the
#: libraries its steps import on first use (scikit-learn alone takes about a second per process).
PRELOADED = [
    "stock_assets.definitions",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "skops.io",
]


#: The executor config of a run that sets none.
DEFAULT_EXECUTION: dict[str, Any] = {"in_process": {}}


def with_warm_workers(config: dict[str, Any]) -> dict[str, Any]:
    """The executor config, with a forkserver preloading the project unless one was chosen."""
    if "in_process" in (config or {}):
        return config
    multiprocess = dict((config or {}).get("multiprocess") or {})
    multiprocess.setdefault("start_method", {"forkserver": {"preload_modules": PRELOADED}})
    return {"multiprocess": multiprocess}


class EndsMlflowRun(Executor):
    """Dagster's executor, ending the run's MLflow run with the run's outcome when it is done."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    @property
    def retries(self):  # noqa: ANN201 - Dagster's RetryMode
        return self._inner.retries

    @property
    def step_dependency_config(self):  # noqa: ANN201 - Dagster's StepDependencyConfig
        return self._inner.step_dependency_config

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[DagsterEvent]:
        status = "FAILED"  # an error in the executor itself fails the run
        try:
            failed = False
            for event in self._inner.execute(plan_context, execution_plan):
                failed = failed or event.is_step_failure
                yield event
            status = "FAILED" if failed else "FINISHED"
        except (DagsterExecutionInterruptedError, KeyboardInterrupt, GeneratorExit):
            status = "KILLED"
            raise
        finally:
            _end(plan_context, status)


def _end(plan_context: Any, status: str) -> None:
    instance, run_id = plan_context.instance, plan_context.run_id
    try:
        ended = run_record.end_mlflow_run(instance, run_id, status)
    except STORE_ERRORS as error:  # the store is down or full: the next run's sweep closes it
        uri = (instance.get_run_by_id(run_id) or plan_context.dagster_run).tags.get(
            run_record.MLFLOW_URI_TAG, "?"
        )
        plan_context.log.error(f"{store_error_message(uri, error)} The MLflow run stays open.")
        return
    if ended:
        plan_context.log.info(f"ended MLflow run {ended} {status}")


@executor(
    name="multi_or_in_process_ending_mlflow_run",
    config_schema=multi_or_in_process_executor.config_schema.as_field(),
    requirements=multi_or_in_process_executor.get_requirements,
)
def ending_mlflow_run(init_context: InitExecutorContext) -> Executor:
    """Dagster's default executor, ending the run's MLflow run with the run's outcome."""
    create = multi_or_in_process_executor.executor_creation_fn
    if create is None:  # pragma: no cover - Dagster's own executor always has one
        raise RuntimeError("Dagster's multi_or_in_process_executor has no creation function")
    return EndsMlflowRun(create(init_context))


@definitions
def executor_definitions() -> Definitions:
    """Dagster's default executor, in-process unless told otherwise, warm when multiprocess."""
    return Definitions(
        executor=ending_mlflow_run.configured(
            with_warm_workers,
            name="multi_or_in_process_warm",
            config_schema=Field(
                multi_or_in_process_executor.config_schema.as_field().config_type,
                default_value=DEFAULT_EXECUTION,
            ),
        )
    )
