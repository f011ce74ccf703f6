"""A KFP run's outcome, decided from what its tasks recorded, not from the exit task's state.

The exit task of a KFP backend receives the MLMD state of the exit handler's DAG
(``backend/src/v2/driver/resolve.go`` at 2.14.0, ``PipelineTaskFinalStatus``). Up to 2.16 the
launcher updates only a finished task's *direct* parent DAG (``backend/src/v2/metadata/client.go``
``UpdateDAGExecutionsState`` at 2.14.0, called from ``backend/src/v2/component/launcher_v2.go``),
so an exit handler group that holds a ``ParallelFor`` or a ``dsl.If`` stays ``RUNNING`` after a
success and after a failure inside them alike; 2.17.0 propagates upward (kubeflow/pipelines#13322).
``kfp.local`` passes ``SUCCEEDED`` / ``FAILED``. The state string therefore decides nothing.

Evidence instead: every task records on the tracking resource (protocol in
:mod:`exporters.kfp.protocols`) that it started and, when its code returned, that it succeeded,
with its ``dsl.If`` gate value or its fan-out's item count. The exit task gets the pipeline's
*plan* (each task, the tasks it runs after, the gates it sits under, its fan-out, whether it
may be cached) and decides: the run succeeded iff every task that should have run succeeded.
A task under a gate that recorded ``false`` should not have run; a task that recorded only
``started`` (or ``failed``) did not finish; a task with no record ran neither, unless a task
after it recorded something (then it was cached: the backend skips a cached task's code, and
a task starts only after its upstream succeeded). Only a cacheable task with no record and no
recorded successor is undecided; the state string breaks that tie.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: States an exit task can be handed that say the group completed (MLMD COMPLETE / CACHED,
#: kfp.local SUCCEEDED). Anything else (RUNNING, FAILED, CANCELED = "not triggered" in
#: backend/src/v2/metadata/client.go at 2.14.0) does not.
SUCCESS_STATES = {"COMPLETE", "SUCCEEDED", "CACHED"}
STARTED, SUCCEEDED, FAILED = "started", "succeeded", "failed"


def state_status(state: str) -> str:
    """``FINISHED`` for a state that says the group completed, else ``FAILED``."""
    return "FINISHED" if (state or "").strip().upper() in SUCCESS_STATES else "FAILED"


def ledgers(resources: dict[str, Any], keys: list[str]) -> list[Any]:
    """The tracking resources among ``keys`` that keep task records (both ledger methods)."""
    found = []
    for key in keys:
        resource = resources[key]
        if callable(getattr(resource, "record_pipeline_task", None)) and callable(
            getattr(resource, "pipeline_task_records", None)
        ):
            found.append(resource)
    return found


def record(ledger_list: list[Any], run_id: str, task: str, state: str, **fields: Any) -> None:
    """Record ``task``'s ``state`` (and e.g. ``gate``, ``items``) on every ledger."""
    text = json.dumps({"state": state, **fields}, sort_keys=True)
    for ledger in ledger_list:
        ledger.record_pipeline_task(run_id, task, text)


@dataclass(frozen=True)
class Verdict:
    status: str  # FINISHED or FAILED
    reason: str


def _parse(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"state": str(text)}
    return value if isinstance(value, dict) else {"state": str(value)}


def decide(plan: list[dict[str, Any]], records: dict[str, str], state: str) -> Verdict:
    """The run's outcome from ``plan`` (see :func:`exporters.kfp.plan.pipeline_plan`) and the
    tasks' ``records`` (task id, ``<task id>/<mapping key>`` in a fan-out -> JSON)."""
    recs = {key: _parse(text) for key, text in records.items()}
    below: dict[str, set[str]] = {entry["task"]: set() for entry in plan}
    for entry in plan:
        for upstream in entry["after"]:
            below.setdefault(upstream, set()).add(entry["task"])

    def keys_of(task: str) -> list[str]:
        return sorted(k for k in recs if k == task or k.startswith(f"{task}/"))

    def touched_after(task: str) -> bool:
        """Whether a task that runs after ``task`` (transitively) recorded anything."""
        seen, todo = set(), list(below.get(task, ()))
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            if keys_of(current):
                return True
            todo.extend(below.get(current, ()))
        return False

    def done(key: str) -> bool:
        return recs.get(key, {}).get("state") == SUCCEEDED

    skipped: set[str] = set()
    problems: list[str] = []
    undecided: list[str] = []
    for entry in plan:
        task = entry["task"]
        gates = entry.get("gates", [])
        if any(g in skipped or (done(g) and recs[g].get("gate") is False) for g in gates):
            skipped.add(task)  # dsl.If did not run it: not a failure
            continue
        if any(not done(g) for g in gates) and not keys_of(task) and not touched_after(task):
            skipped.add(task)  # the gate itself is reported (failed, or cached: unknown value)
            continue
        unfinished = [k for k in keys_of(task) if not done(k)]
        if unfinished:
            problems += [f"task {k} {recs[k].get('state')} and did not finish" for k in unfinished]
            continue
        loop = entry.get("loop")
        if loop:
            if loop in skipped or touched_after(task):
                continue
            expected = recs[loop].get("items") if done(loop) else None
            ran = len(keys_of(task))
            if expected is None and not ran:
                (undecided if entry.get("cache") else problems).append(f"task {task} did not run")
            elif expected is not None and ran < expected:
                message = f"task {task}: {ran} of {expected} iterations finished"
                (undecided if entry.get("cache") else problems).append(message)
            continue
        if done(task) or touched_after(task):
            continue
        if entry.get("cache"):
            undecided.append(f"task {task} left no record (cached, or it never started)")
        else:
            problems.append(f"task {task} did not run")
    if problems:
        return Verdict("FAILED", "; ".join(problems))
    if undecided:
        status = state_status(state)
        return Verdict(status, f"{'; '.join(undecided)}; decided by the KFP state {state!r}")
    return Verdict("FINISHED", "every task that should have run succeeded")


def verdict(ledger: Any, run_id: str, plan_json: str, state: str) -> Verdict:
    """The outcome of KFP run ``run_id``: from the ledger's records when there is a plan, else
    (an exit task emitted before plans existed, or a tracker without a ledger) from ``state``."""
    if not plan_json or ledger is None:
        return Verdict(state_status(state), f"no task records; KFP state {state!r}")
    records = dict(ledger.pipeline_task_records(run_id) or {})
    return decide(json.loads(plan_json), records, state)


class TaskRecorder:
    """What one task records: ``started`` before its code, then ``succeeded`` or ``failed``."""

    def __init__(self, ledger_list: list[Any], run_id: str, task: str) -> None:
        self.ledgers, self.run_id, self.task = ledger_list, run_id, task

    def started(self) -> None:
        record(self.ledgers, self.run_id, self.task, STARTED)

    def succeeded(self, **fields: Any) -> None:
        record(self.ledgers, self.run_id, self.task, SUCCEEDED, **fields)

    def failed(self, error: BaseException) -> None:
        """Best effort: the task fails with ``error`` whether or not this is recorded."""
        first = (str(error).splitlines() or [type(error).__name__])[0][:300]
        try:
            record(self.ledgers, self.run_id, self.task, FAILED, error=first)
        except Exception as unrecorded:  # noqa: BLE001 - never hide the task's own error
            print(f"could not record task {self.task} as failed: {unrecorded}")
