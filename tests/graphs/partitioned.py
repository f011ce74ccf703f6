"""A graph with a construct the exporter does not translate: partitions."""

from dagster import DailyPartitionsDefinition, Definitions, asset


@asset
def raw() -> int:
    return 1


@asset(partitions_def=DailyPartitionsDefinition(start_date="2026-01-01"))
def daily(raw: int) -> int:
    return raw + 1


defs = Definitions(assets=[raw, daily])
