"""A KFP recurring run from a Dagster schedule: cron, and parameters from the tick's run config.

The schedule is evaluated at two sentinel times. Config values equal in both are passed as
they are; a string that changes with the tick is written as the KFP recurring-run macro
``[[ScheduledTime.<Go layout>]]`` (syntax of backend/src/common/util/parameter_formatter.go),
checked by formatting it back at both sentinels. Config outside the exported assets' Config
fields, or a value that cannot be written so, is an error naming the schedule and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dagster import Definitions, ScheduleDefinition, build_schedule_context

from exporters.kfp.model import Parameter, PipelineGraph
from exporters.kfp.runtime import format_macros
from exporters.kfp.values import HINTS, unrepresentable

#: Two ticks whose date parts are all distinct two-digit groups, so each maps to one Go token.
SENTINELS = (
    datetime(2031, 11, 23, 19, 47, 58, tzinfo=UTC),
    datetime(2042, 3, 7, 5, 9, 1, tzinfo=UTC),
)
GO_LAYOUT = {"2031": "2006", "11": "01", "23": "02", "19": "15", "47": "04", "58": "05"}
_TOKEN = "(?:" + "|".join(GO_LAYOUT) + ")"
DATE_SPAN = re.compile(rf"{_TOKEN}(?:[-:T /._]*{_TOKEN})*")


class ScheduleError(ValueError):
    """A Dagster schedule with no faithful KFP recurring run."""


@dataclass(frozen=True)
class RecurringRun:
    """What KFP needs for a recurring run that mirrors a Dagster schedule."""

    job_name: str
    cron_expression: str
    timezone: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


def dagster_cron_to_kfp(cron: str) -> str:
    """Dagster's 5-field cron to KFP's 6-field one (seconds first): 0 2 * * * → 0 0 2 * * *."""
    fields = cron.split()
    if len(fields) != 5:
        raise ScheduleError(f"cron {cron!r} must have 5 fields (minute hour day month weekday)")
    if any(f.startswith("@") for f in fields):
        raise ScheduleError(f"cron macro {cron!r} is not supported; write the 5 fields")
    return " ".join(["0", *fields])


def schedule_names(defs: Definitions) -> list[str]:
    """Names of the Definitions' schedules."""
    return sorted(s.name for s in defs.schedules or [])


def recurring_run_from_schedule(defs: Definitions, graph: PipelineGraph, name: str) -> RecurringRun:
    """Read the Dagster schedule ``name`` and convert it for KFP."""
    if name not in schedule_names(defs):
        known = ", ".join(schedule_names(defs)) or "none"
        raise ScheduleError(f"no schedule {name!r} in the Definitions (schedules: {known})")
    schedule = defs.resolve_schedule_def(name)
    if not isinstance(schedule, ScheduleDefinition) or not isinstance(schedule.cron_schedule, str):
        raise ScheduleError(f"schedule {name!r} needs a single cron string")
    timezone = schedule.execution_timezone or "UTC"
    if timezone != "UTC":
        raise ScheduleError(
            f"schedule {name!r} runs in {timezone}; KFP recurring runs use UTC: "
            "convert the cron to UTC first"
        )
    _check_target(defs, graph, schedule)
    return RecurringRun(
        job_name=name,
        cron_expression=dagster_cron_to_kfp(schedule.cron_schedule),
        timezone=timezone,
        description=schedule.description or f"From the Dagster schedule {name}",
        parameters=schedule_parameters(schedule, graph),
    )


def scheduled_parameter_names(defs: Definitions, graph: PipelineGraph) -> list[str]:
    """Parameters that some schedule of the graph fills with the tick's date."""
    names: set[str] = set()
    for name in schedule_names(defs):
        try:
            run = recurring_run_from_schedule(defs, graph, name)
        except ScheduleError:
            continue  # an error only if this schedule is asked for with --schedule
        names.update(k for k, v in run.parameters.items() if isinstance(v, str) and "[[" in v)
    return sorted(names)


def _check_target(defs: Definitions, graph: PipelineGraph, schedule: ScheduleDefinition) -> None:
    job = defs.resolve_job_def(schedule.job_name)
    selected = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    exported = {t.asset for t in graph.tasks}
    if selected != exported:
        raise ScheduleError(
            f"schedule {schedule.name!r} materialises {len(selected)} of the {len(exported)} "
            "exported assets; the KFP pipeline always runs all of them"
        )


def schedule_parameters(schedule: ScheduleDefinition, graph: PipelineGraph) -> dict[str, Any]:
    """The pipeline arguments of each tick: constants, or a ScheduledTime macro for a date."""
    first, second = (_tick_config(schedule, when) for when in SENTINELS)
    by_op = {(t.op_name, p.field): p for t in graph.owners for p in t.parameters}
    arguments: dict[str, Any] = {}
    for key, value in first.items():
        parameter = by_op.get(key)
        if parameter is None:
            raise ScheduleError(
                f"schedule {schedule.name!r} sets ops.{key[0]}.config.{key[1]}, which is not a "
                "Config field of an exported asset"
            )
        other = second.get(key)
        for given in (value, other):
            if reason := unrepresentable(given):
                raise ScheduleError(
                    f"schedule {schedule.name!r} sets ops.{key[0]}.config.{key[1]} to "
                    f"{given!r} ({reason}). {HINTS[reason]}"
                )
        arguments[parameter.name] = (
            value if value == other else _macro(schedule.name, parameter, value, other)
        )
    return arguments


def _tick_config(schedule: ScheduleDefinition, when: datetime) -> dict[tuple[str, str], Any]:
    context = build_schedule_context(scheduled_execution_time=when)
    requests = schedule.evaluate_tick(context).run_requests or []
    if len(requests) != 1:
        raise ScheduleError(
            f"schedule {schedule.name!r} requests {len(requests)} runs per tick; a KFP "
            "recurring run starts one"
        )
    run_config: Any = requests[0].run_config  # a dict, or a RunConfig object
    config = run_config if isinstance(run_config, dict) else run_config.to_config_dict()
    # How Dagster executes the run's steps (``execution``) has no meaning on KFP, where each task
    # is a pod of its own: left out. Anything else would be lost, so it is refused.
    extra = sorted(set(config) - {"ops", "execution"})
    if extra:
        raise ScheduleError(
            f"schedule {schedule.name!r} sets run config {', '.join(extra)}; only ops config "
            "maps to pipeline parameters"
        )
    return _op_config(config.get("ops") or {})


def _op_config(ops: dict[str, Any], prefix: str = "") -> dict[tuple[str, str], Any]:
    """``{(op path, field): value}``; a graph-backed asset's ops nest: ops.<graph>.ops.<op>."""
    found: dict[tuple[str, str], Any] = {}
    for op, body in ops.items():
        path = f"{prefix}{op}"
        for name, value in ((body or {}).get("config") or {}).items():
            found[(path, name)] = value
        found.update(_op_config((body or {}).get("ops") or {}, f"{path}."))
    return found


def _macro(schedule: str, parameter: Parameter, first: Any, second: Any) -> str:
    """``first`` with its date parts as ``[[ScheduledTime.<layout>]]``, verified on both ticks."""
    where = f"schedule {schedule!r}, parameter {parameter.name!r}"
    if not isinstance(first, str) or not isinstance(second, str):
        raise ScheduleError(f"{where}: changes with the tick but is not a string")

    def layout(match: re.Match[str]) -> str:
        span = re.sub(_TOKEN, lambda m: GO_LAYOUT[m.group(0)], match.group(0))
        return f"[[ScheduledTime.{span}]]"

    template = DATE_SPAN.sub(layout, first)
    if format_macros(template, SENTINELS[0]) != first or (
        format_macros(template, SENTINELS[1]) != second
    ):
        raise ScheduleError(
            f"{where}: {first!r} depends on the tick in a way a KFP macro "
            "([[ScheduledTime.<Go layout>]]) cannot express"
        )
    return template
