"""What the generated components call: one entry point per kind of task.

* :func:`run_task`: every asset or op task (its stub passes its :class:`TaskSpec` and arguments);
* :func:`finish_pipeline_run`: the exit handler;
* :func:`exporters.kfp.runtime.macros.resolve_scheduled_values`: a scheduled run's first task.
"""

from __future__ import annotations

from typing import Any

from dagster import Definitions

from exporters.kfp.cached import TaskLineage
from exporters.kfp.outcome import TaskRecorder, ledgers, state_status, verdict
from exporters.kfp.runtime.artifacts import artifact_path
from exporters.kfp.runtime.execute import TaskValues, run_asset, run_op
from exporters.kfp.runtime.identity import kfp_run_id, load_definitions, tracking_resource_keys
from exporters.kfp.spec import TaskSpec


def run_task(spec: TaskSpec | str, arguments: dict[str, Any]) -> Any:
    """Run the task ``spec`` describes with the component's ``arguments``; return its output.

    ``arguments`` maps the component's argument names to what KFP passed (artifacts, parameter
    values); the spec says which argument carries what. The task records its start and outcome
    for the exit task (:mod:`exporters.kfp.outcome`; an iteration of a fan-out as
    ``<task>/<mapping key>``) and the lineage of its inputs for runs that reuse its output from
    KFP's cache. It returns the gate of an asset a ``dsl.If`` reads, the items of a fan-out op,
    else None (a component without a return annotation must return None).
    """
    if isinstance(spec, str):
        spec = TaskSpec.from_json(spec)
    defs = load_definitions(spec.module)
    values = TaskValues.of(spec, arguments)
    name = f"{spec.task}/{values.item['key']}" if values.item else spec.task
    output = artifact_path(values.output)
    recorder = _recorder(defs, name, output)
    recorder.started()
    lineage = _lineage(defs, name, output)
    try:
        lineage.begin(values.inputs())
        returned = run_op(defs, spec, values) if spec.op else run_asset(defs, spec, values)
    except BaseException as error:
        recorder.failed(error)
        raise
    lineage.end(values.output)
    if isinstance(returned, list):  # a fan-out op's items
        recorder.succeeded(items=len(returned))
        return returned
    if spec.gate_field and returned is not None:
        recorder.succeeded(gate=returned)
        return returned
    recorder.succeeded()
    return None


def finish_pipeline_run(*, module: str, state: str, run_name: str = "", plan: str = "") -> str:
    """Exit handler: end the run's tracking run on each tracking resource; return the status.

    The status comes from the tasks' records read against ``plan`` (:mod:`exporters.kfp.outcome`),
    whatever ``state`` the backend hands the exit task; from ``state`` alone without a plan or
    on a tracking resource that keeps no records.
    """
    defs = load_definitions(module)
    run_id = kfp_run_id(run_name=run_name)
    resources = dict(defs.resources or {})
    status = state_status(state)
    for key in tracking_resource_keys(defs):
        resource = resources[key]
        (ledger,) = ledgers(resources, [key]) or [None]
        decided = verdict(ledger, run_id, plan, state)
        status = decided.status
        ended = resource.end_pipeline_run(run_id, status)
        print(
            f"{key}: tracking run {ended} of KFP run {run_id} ended {status}: {decided.reason} "
            f"(KFP state {state!r})"
        )
    return status


def _lineage(defs: Definitions, task: str, output_path: str) -> TaskLineage:
    """What the task carries for runs that reuse its output from KFP's cache."""
    keys = tracking_resource_keys(defs)
    return TaskLineage(
        dict(defs.resources or {}), keys, kfp_run_id(output_path) if keys else "", task
    )


def _recorder(defs: Definitions, task: str, output_path: str) -> TaskRecorder:
    """The task's recorder: on every tracking resource with a ledger."""
    found = ledgers(dict(defs.resources or {}), tracking_resource_keys(defs))
    return TaskRecorder(found, kfp_run_id(output_path) if found else "", task)
