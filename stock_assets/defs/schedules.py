"""The nightly retrain: the whole graph at 02:00 UTC, with the tick's date as the as-of date."""

from __future__ import annotations

from dagster import (
    AssetSelection,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from stock_assets.defs.constants import GROUP_NAME

retrain_job = define_asset_job(
    name="retrain",
    selection=AssetSelection.groups(GROUP_NAME),
    description="Materialise the whole stock-prediction graph.",
    tags={"stock_assets/job": "retrain"},  # dagster_instance.yaml: one such run at a time
)

NIGHTLY_CRON = "0 2 * * *"


@schedule(
    cron_schedule=NIGHTLY_CRON,
    job=retrain_job,
    execution_timezone="UTC",
    description="Retrain every night at 02:00 UTC on the data up to the tick's date.",
)
def nightly_retrain(context: ScheduleEvaluationContext) -> RunRequest:
    """One run per tick, keyed by its date, with ``end_date`` set to that date."""
    as_of = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return RunRequest(
        run_key=as_of,
        run_config={"ops": {"stock_data": {"config": {"end_date": as_of}}}},
        tags={"as_of": as_of},
    )
