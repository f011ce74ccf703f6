"""The final status of an MLflow run, set once the pipeline run's outcome is known.

Plain functions taking an ``MlflowClient``. A run ends FINISHED only when its pipeline run
succeeded; FAILED and KILLED are never turned back into FINISHED, and a FINISHED run whose
pipeline run turned out failed or killed is corrected. The sweep closes the runs of pipeline
runs that died without ending them.
"""

from __future__ import annotations

from collections.abc import Callable

from mlflow import MlflowClient
from mlflow.entities import Run

END_STATUSES = ("FINISHED", "FAILED", "KILLED")
#: What a run's status may become: an outcome overrides only a less severe one.
_SEVERITY = {"RUNNING": 0, "SCHEDULED": 0, "FINISHED": 1, "KILLED": 2, "FAILED": 3}


def worse(current: str, outcome: str) -> str:
    """The status a run at ``current`` takes for ``outcome``: the more severe of the two."""
    return outcome if _SEVERITY[outcome] > _SEVERITY.get(current, 0) else current


def end_run(client: MlflowClient, run_id: str, status: str) -> bool:
    """End ``run_id`` with ``status`` unless it already ended as badly; whether it changed."""
    if status not in END_STATUSES:
        raise ValueError(f"status={status!r}; expected one of {', '.join(END_STATUSES)}")
    current = client.get_run(run_id).info.status
    if worse(current, status) == current:
        return False
    client.set_terminated(run_id, status=status)
    return True


def runs_tagged(
    client: MlflowClient, experiment_id: str, key: str, value: str, statuses: tuple[str, ...]
) -> list[Run]:
    """Top-level runs of the experiment tagged ``key=value`` whose status is in ``statuses``."""
    found: list[Run] = []
    for status in statuses:
        found += client.search_runs(
            [experiment_id], f"tags.{key} = '{value}' and attributes.status = '{status}'"
        )
    return found


def close_runs(
    client: MlflowClient, experiment_id: str, key: str, value: str, status: str
) -> list[str]:
    """End the runs tagged ``key=value`` that are RUNNING, or FINISHED when ``status`` is worse."""
    candidates = runs_tagged(client, experiment_id, key, value, ("RUNNING", "FINISHED"))
    return [run.info.run_id for run in candidates if end_run(client, run.info.run_id, status)]


def sweep(
    client: MlflowClient,
    experiment_id: str,
    end_status_of: Callable[[Run], str | None],
    skip: Callable[[Run], bool],
    recent: int = 200,
) -> list[tuple[str, str]]:
    """End the RUNNING or FINISHED runs whose pipeline run ended otherwise or died.

    ``end_status_of(run)`` is the status the run should have (None while its pipeline run is
    alive, or when nothing is known); ``skip(run)`` leaves a run alone. The ``recent`` newest
    runs of each status are looked at. Returns (run id, status set) pairs.
    """
    closed = []
    for current in ("RUNNING", "FINISHED"):
        runs = client.search_runs(
            [experiment_id],
            f"attributes.status = '{current}'",
            order_by=["attributes.start_time DESC"],
            max_results=recent,
        )
        for run in runs:
            if skip(run):
                continue
            status = end_status_of(run)
            if status is not None and end_run(client, run.info.run_id, status):
                closed.append((run.info.run_id, status))
    return closed
