"""Config defaults a careless or hostile user might write, one graph per case.

``$HOSTILE_CASE`` picks the case ``defs`` is built from (so the exporter's CLI and the tasks
kfp.local starts load the same graph); :func:`definitions` builds any case in-process. The
default case, ``json``, has a str field named ``json`` fed the tick's date by a schedule, next
to a str field whose default would rewrite the YAML's settings if written unescaped; a second
schedule sets that field to a NUL.
"""

import os
from typing import Any

from dagster import (
    Config,
    Definitions,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)
from dagster import asset as asset_decorator

#: A default that, written unescaped into the YAML's comment header, sets the pipeline root.
INJECTION = "a\ndefaultPipelineRoot: /tmp/x\n#"

#: Defaults YAML and JSON can carry: the export must write them so they read back unchanged.
ESCAPED: dict[str, Any] = {
    "newline": INJECTION,
    "after_newline": "first line\nsecond: line\n  - item",
    "line_separator": "a\u2028defaultPipelineRoot: /tmp/y\u2029b\x85c",
    "controls": "tab\tbell\x07escape\x1b\rreturn ' \" \\ [Default: x]",
    "unicode": "café ☃ \U0001f600 \ufeff",
}

#: Defaults the pipeline cannot carry exactly: (field type, default).
REFUSED: dict[str, tuple[Any, Any]] = {
    "nul": (str, "a\x00b"),
    "surrogate": (str, "a\ud800b"),
    "inf": (float, float("inf")),
    "nan": (float, float("nan")),
    "list_inf": (list[float], [1.0, float("-inf")]),
    "list_nul": (list[str], ["ok", "x\x00"]),
    "big_int": (int, 2**53 + 1),
}


def definitions(case: str) -> Definitions:
    """The graph of one case: an asset ``stamp`` whose Config field ``value`` has the default."""
    if case == "json":
        return _json_definitions()
    if case in ESCAPED:
        kind, default = str, ESCAPED[case]
    else:
        kind, default = REFUSED[case]
    config_class = type(
        "HostileConfig", (Config,), {"__annotations__": {"value": kind}, "value": default}
    )

    def stamp(config: config_class) -> dict:  # type: ignore[valid-type]
        return {"value": config.value}

    return Definitions(assets=[asset_decorator(name="stamp", description="Echo.")(stamp)])


def _json_definitions() -> Definitions:
    class StampConfig(Config):
        json: str = "1970-01-01"  # shadowed by `import json` in the date resolver, once
        note: str = INJECTION

    @asset_decorator(description="The scheduled date and the note, as given.")
    def stamp(config: StampConfig) -> dict:
        return {"json": config.json, "note": config.note}

    job = define_asset_job("stamp_job", selection="*")

    @schedule(cron_schedule="0 2 * * *", job=job, execution_timezone="UTC")
    def nightly(context: ScheduleEvaluationContext) -> RunRequest:
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        return RunRequest(run_config={"ops": {"stamp": {"config": {"json": day}}}})

    @schedule(cron_schedule="0 3 * * 0", job=job, execution_timezone="UTC")
    def weekly_nul(context: ScheduleEvaluationContext) -> RunRequest:
        """Sets a value no pipeline argument can carry."""
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        config = {"json": day, "note": "x\x00"}
        return RunRequest(run_config={"ops": {"stamp": {"config": config}}})

    return Definitions(assets=[stamp], jobs=[job], schedules=[nightly, weekly_nul])


defs = definitions(os.environ.get("HOSTILE_CASE", "json"))
