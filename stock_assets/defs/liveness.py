"""Is a Dagster run still alive? Its orchestrator process, checked on this host.

Dagster's default run launcher cannot check a run worker's health, so a run whose process was
killed stays STARTED forever. The process that started a run is in the event log (the ``pid`` of
its RUN_START event); the host it ran on is a short hash tagged on the run (``HOST_TAG``) and on
its MLflow run, with the pid (``PID_TAG``). A run is dead when it is unfinished, ran on this host
and that process is gone (or is a zombie, or is no longer a Python process). Runs of other hosts
are left to run monitoring's ``max_runtime_seconds`` (``dagster.yaml``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus

HOST_TAG = "stock_assets/host"
PID_TAG = "stock_assets/orchestrator_pid"
UNFINISHED = (
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
)
END_STATUS = {
    DagsterRunStatus.SUCCESS: "FINISHED",
    DagsterRunStatus.FAILURE: "FAILED",
    DagsterRunStatus.CANCELED: "KILLED",
}


@functools.cache
def host_id() -> str:
    """A short, stable id of this machine (a hash: the host name itself is not recorded)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) Python process on this host."""
    if not Path("/proc/self").exists():  # no procfs (macOS): only whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and (b"python" in cmdline or b"dagster" in cmdline)


def orchestrator_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid of the process that started run ``run_id`` (its RUN_START event), if known."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_START, limit=1
    ).records
    if records and records[0].event_log_entry.dagster_event is not None:
        return records[0].event_log_entry.dagster_event.pid
    return None


def is_dead(instance: DagsterInstance, run: DagsterRun) -> bool:
    """An unfinished run of this host whose orchestrator process is gone."""
    if run.status not in UNFINISHED:
        return False
    if run.tags.get(HOST_TAG, host_id()) != host_id():
        return False
    pid = orchestrator_pid(instance, run.run_id)
    return pid is not None and not process_alive(pid)


def mark_failed(instance: DagsterInstance, run: DagsterRun) -> None:
    """Mark a dead run FAILED in Dagster (the failure sensor then fires for it)."""
    pid = orchestrator_pid(instance, run.run_id)
    instance.report_run_failed(
        run,
        message=(
            f"run {run.run_id} marked FAILED: its process {pid} on this host is gone "
            "(killed or crashed)"
        ),
    )


def mlflow_end_status(
    instance: DagsterInstance, dagster_run_id: str, mlflow_tags: dict[str, str]
) -> str | None:
    """How a RUNNING MLflow run of Dagster run ``dagster_run_id`` should end, or None if alive.

    A dead Dagster run found here is marked FAILED in Dagster too.
    """
    run = instance.get_run_by_id(dagster_run_id)
    if run is not None:
        if run.status in END_STATUS:
            return END_STATUS[run.status]
        if is_dead(instance, run):
            mark_failed(instance, run)
            return "FAILED"
        return None
    # A run of another instance (e.g. an ephemeral one): only its MLflow tags can tell.
    pid = mlflow_tags.get(PID_TAG)
    if mlflow_tags.get(HOST_TAG) == host_id() and pid and pid.isdigit():
        return None if process_alive(int(pid)) else "FAILED"
    return None
