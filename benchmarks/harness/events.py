"""When each step of a run started and ended.

A Dagster run's times come from its event log (STEP_START, STEP_SUCCESS, ... with Dagster's own
timestamps), read from the instance the run used: no log text is parsed. A kfp.local run keeps
no event log (each task runs Dagster on an ephemeral instance that ends with the task), so its
tasks' times are read from kfp.local's output, with the patterns ``make kfp-local`` reads it by.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

EventRow = tuple[float, "str | None", str]  # (timestamp, step key, event type value)


def event_rows(instance: Any, run_id: str) -> list[EventRow]:
    """The Dagster events of a run, as (timestamp, step key, event type)."""
    return [
        (entry.timestamp, entry.step_key, entry.dagster_event.event_type_value)
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None
    ]


def cli_run_events(home: str) -> tuple[int, list[EventRow]]:
    """The events of the one run in the Dagster home ``home``, and how many runs it holds."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(home) as instance:
        runs = instance.get_runs()
        return len(runs), event_rows(instance, runs[0].run_id) if len(runs) == 1 else []


def _kind(raw: str) -> str:
    return raw.replace("PIPELINE_", "RUN_")  # RUN_START's value is PIPELINE_START


@dataclass
class StepTime:
    """One step of a run; times in seconds after the origin (the run's start by default)."""

    key: str
    status: str = ""
    launch: float | None = None  # its worker's start (multiprocess), else its start
    start: float | None = None  # STEP_START
    end: float | None = None  # STEP_SUCCESS / FAILURE / SKIPPED
    seconds: float | None = None  # the body: start -> end
    worker_launch: float | None = None  # STEP_WORKER_STARTING -> STEP_START (multiprocess)


def run_bounds(events: Sequence[Sequence[Any]]) -> tuple[float | None, float | None]:
    """The run's RUN_START and RUN_SUCCESS/RUN_FAILURE timestamps (None when missing)."""
    start = end = None
    for timestamp, _, raw in events:
        kind = _kind(raw)
        if kind == "RUN_START":
            start = timestamp
        elif kind in ("RUN_SUCCESS", "RUN_FAILURE"):
            end = timestamp
    return start, end


def step_times(
    events: Sequence[Sequence[Any]], origin: float | None = None
) -> tuple[float | None, list[StepTime]]:
    """The run's span (RUN_START -> RUN_SUCCESS/FAILURE) and its steps, sorted by start.

    ``origin``: the timestamp times are counted from (default: RUN_START, else the first event).
    """
    run_start, run_end = run_bounds(events)
    if origin is None:
        origin = run_start if run_start is not None else min((e[0] for e in events), default=0.0)
    steps: dict[str, StepTime] = {}
    for timestamp, key, raw in events:
        if key is None:
            continue
        kind, at = _kind(raw), timestamp - origin
        step = steps.setdefault(key, StepTime(key))
        if kind == "STEP_WORKER_STARTING":
            step.launch = at
        elif kind == "STEP_START":
            step.start = at
            if step.launch is not None:
                step.worker_launch = at - step.launch
            else:
                step.launch = at
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            step.status, step.end = kind.removeprefix("STEP_"), at
            if step.start is not None:
                step.seconds = at - step.start
    span = None if run_start is None or run_end is None else run_end - run_start
    ordered = sorted(steps.values(), key=lambda s: (s.start is None, s.start or 0.0, s.key))
    return span, ordered


def phases(start: float | None, end: float | None, wall: float) -> dict[str, float] | None:
    """A run's wall time in three: startup (launch -> run start), run, exit (run end -> process
    end); ``start`` and ``end`` in seconds after the launch."""
    if start is None or end is None:
        return None
    return {"startup": start, "run": end - start, "exit": wall - end}


# --------------------------------------------------------------------------------------
# kfp.local: its output, as it has no event store
# --------------------------------------------------------------------------------------

PIPELINE_START = re.compile(r"^Running pipeline: '([^']+)'")
PIPELINE_END = re.compile(r"^Pipeline '([^']+)' finished with status (\w+)")
# Inside a task: the executor's own log, and Dagster's line at the end of each step.
EXECUTOR = re.compile(
    r"\[KFP Executor (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+\]: "
    r"(Got executor_input|Wrote executor output)"
)
DAGSTER_STEP_DONE = re.compile(r'Finished execution of step "([^"]+)" in ([0-9.hms]+?)\.?\s*$')
DURATION_PART = re.compile(r"([0-9.]+)(ms|h|m|s)")


@dataclass
class KfpTask:
    """One kfp.local task (a ParallelFor's iterations together); times in seconds after the
    run's launch."""

    name: str
    status: str = ""
    runs: int = 0  # iterations of a ParallelFor
    launch: float | None = None  # kfp.local starts it (its first iteration)
    end: float | None = None  # kfp.local sees it finish (its last iteration)
    body: float | None = None  # the Dagster step bodies inside, summed
    inner: dict[str, float] = field(default_factory=dict)  # Dagster step -> its body
    io_start: float | None = None  # its (first) executor got its input
    io_end: float | None = None  # its (last) executor wrote its output


@dataclass
class KfpLog:
    """What kfp.local's output says of a run."""

    pipeline_start: float | None
    pipeline_end: float | None
    tasks: dict[str, KfpTask]


def parse_duration(text: str) -> float:
    """Seconds of a Dagster ``format_duration`` string: 0.83ms, 533ms, 5.6s, 4m52s, 1h4m."""
    scale = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = DURATION_PART.findall(text)
    if not parts:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(number) * scale[unit] for number, unit in parts)


def kfp_tasks(text: str, launched: float) -> KfpLog:
    """The pipeline's and the tasks' times from kfp.local's output of a run launched at epoch
    ``launched``. kfp.local stamps its lines with the local time of day (HH:MM:SS.mmm)."""
    from exporters.kfp.local import ANSI, EXECUTING, FINISHED, LOG_LINE

    launch_time = datetime.fromtimestamp(launched)
    launch_of_day = (
        launch_time.hour * 3600.0
        + launch_time.minute * 60
        + launch_time.second
        + launch_time.microsecond / 1e6
    )

    def since_launch(hours: str, minutes: str, seconds: str) -> float:
        offset = int(hours) * 3600 + int(minutes) * 60 + float(seconds) - launch_of_day
        return offset + 86400 if offset < -3600 else offset  # past midnight

    found = KfpLog(None, None, {})
    current: KfpTask | None = None
    for raw in text.splitlines():
        line = ANSI.sub("", raw)
        if outer := LOG_LINE.match(line):
            at, message = since_launch(*outer.groups()[:3]), outer.group(4)
            if PIPELINE_START.match(message):
                found.pipeline_start = at
            elif PIPELINE_END.match(message):
                found.pipeline_end = at
            elif m := EXECUTING.match(message):
                current = found.tasks.setdefault(m[1], KfpTask(m[1]))
                current.runs += 1
                current.launch = at if current.launch is None else current.launch
            elif m := FINISHED.match(message):
                task = found.tasks.setdefault(m[1], KfpTask(m[1]))
                task.end, task.status = at, m[2]
                current = None
        elif current is not None and (m := DAGSTER_STEP_DONE.search(line)):
            current.inner[m[1]] = parse_duration(m[2])
        elif current is not None and (m := EXECUTOR.search(line)):
            moment = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f")
            offset = (moment - launch_time).total_seconds()
            if m[2].startswith("Got"):
                current.io_start = offset if current.io_start is None else current.io_start
            else:
                current.io_end = offset
    for task in found.tasks.values():
        task.body = sum(task.inner.values()) if task.inner else None
    return found


def between(start: float | None, end: float | None) -> float | None:
    """``end - start``, or None if either is unknown."""
    return None if start is None or end is None else end - start
