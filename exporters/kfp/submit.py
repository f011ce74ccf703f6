"""Talking to a KFP cluster: upload, run, and a recurring run from the Dagster schedule.

No KFP server runs in this project's tests, so this stays thin: the arguments are built by pure
functions (tested), and the client calls are one line each.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from dagster import Definitions, ScheduleDefinition


class CronError(ValueError):
    """A Dagster cron that has no KFP equivalent."""


def dagster_cron_to_kfp(cron: str) -> str:
    """Dagster's 5-field cron to KFP's 6-field one (seconds first): 0 2 * * * → 0 0 2 * * *."""
    fields = cron.split()
    if len(fields) != 5:
        raise CronError(f"cron {cron!r} must have 5 fields (minute hour day month weekday)")
    if any(f.startswith("@") for f in fields):
        raise CronError(f"cron macro {cron!r} is not supported; write the 5 fields")
    return " ".join(["0", *fields])


@dataclass(frozen=True)
class RecurringRun:
    """What KFP needs for a recurring run that mirrors a Dagster schedule."""

    job_name: str
    cron_expression: str
    timezone: str
    description: str


def recurring_run_from_schedule(defs: Definitions, schedule_name: str) -> RecurringRun:
    """Read the Dagster schedule and convert it for KFP."""
    schedule = defs.get_schedule_def(schedule_name)
    if not isinstance(schedule, ScheduleDefinition) or not isinstance(schedule.cron_schedule, str):
        raise CronError(f"schedule {schedule_name!r} needs a single cron string")
    timezone = schedule.execution_timezone or "UTC"
    if timezone != "UTC":
        raise CronError(
            f"schedule {schedule_name!r} runs in {timezone}; KFP recurring runs use the "
            "cluster's time zone (UTC): convert the cron to UTC first"
        )
    return RecurringRun(
        job_name=schedule_name,
        cron_expression=dagster_cron_to_kfp(schedule.cron_schedule),
        timezone=timezone,
        description=schedule.description or f"From the Dagster schedule {schedule_name}",
    )


def cli_commands(
    package: str, pipeline_name: str, experiment: str, recurring: RecurringRun | None
) -> list[str]:
    """The ``kfp`` CLI commands equivalent to ``--host URL --run --schedule``."""
    q = shlex.quote
    commands = [
        f"kfp --endpoint $KFP_HOST pipeline create -p {q(pipeline_name)} {q(package)}",
        f"kfp --endpoint $KFP_HOST run create -e {q(experiment)} -r {q(pipeline_name)}-run "
        f"-f {q(package)}",
    ]
    if recurring:
        commands.append(
            f"kfp --endpoint $KFP_HOST recurring-run create --experiment-name {q(experiment)} "
            f"--job-name {q(recurring.job_name)} --cron-expression {q(recurring.cron_expression)} "
            f"--pipeline-package-path {q(package)}"
        )
    return commands


def submit(
    host: str,
    package: str,
    pipeline_name: str,
    experiment: str,
    run: bool,
    recurring: RecurringRun | None,
    arguments: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Upload the pipeline and optionally start a run and a recurring run."""
    import kfp

    client = kfp.Client(host=host)
    done: dict[str, str] = {}
    uploaded = client.upload_pipeline(package, pipeline_name=pipeline_name)
    done["pipeline_id"] = uploaded.pipeline_id
    experiment_id = client.create_experiment(experiment).experiment_id
    if run:
        result = client.create_run_from_pipeline_package(
            package, arguments=arguments or {}, experiment_name=experiment
        )
        done["run_id"] = result.run_id
    if recurring:
        job = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=recurring.job_name,
            description=recurring.description,
            cron_expression=recurring.cron_expression,
            pipeline_package_path=package,
            params=arguments or {},
            no_catchup=True,  # like a Dagster schedule: missed ticks are not backfilled
            enabled=True,
        )
        done["recurring_run_id"] = job.recurring_run_id
    return done
