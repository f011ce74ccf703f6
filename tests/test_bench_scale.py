"""The benchmarks' own logic: the /proc memory sampler, the run config, the event log's times."""

import os
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from dagster import validate_run_config

from benchmarks.harness.events import kfp_tasks, step_times
from benchmarks.harness.measure import run_measured
from benchmarks.harness.models import pipeline_arguments, reference_candidates, run_config
from stock_assets.definitions import defs

ALLOCATED = 200 * 2**20

# A child holding nothing extra, a grandchild holding ALLOCATED bytes (written, so resident).
TREE = textwrap.dedent(
    f"""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c",
        "import time; block = b'x' * {ALLOCATED}; time.sleep(1.5)"])
    child.wait()
    """
)


@pytest.mark.slow
def test_tree_sampler_counts_a_grandchilds_memory(tmp_path: Path) -> None:
    """The peak is the sum over the tree: the child's own RSS plus the grandchild's block."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    measured = run_measured([sys.executable, "-c", TREE], env, tmp_path / "log", timeout=60)
    assert measured.returncode == 0, measured.log
    assert measured.max_processes == 2
    assert measured.tree_peak_processes == 2
    # The block plus two interpreters (several MiB each), not the block alone; the largest
    # single process is the grandchild.
    assert ALLOCATED + 5 * 2**20 <= measured.tree_peak_bytes <= ALLOCATED + 100 * 2**20
    assert ALLOCATED <= measured.single_peak_bytes <= ALLOCATED + 50 * 2**20
    # the block is the grandchild's alone: its proportional share counts in full
    assert ALLOCATED <= measured.tree_peak_pss_bytes <= measured.tree_peak_bytes
    assert 1.5 <= measured.seconds < 30


@pytest.mark.slow
def test_failed_command_reports_its_output(tmp_path: Path) -> None:
    code = "import sys; print('bad input: days'); sys.exit(3)"
    measured = run_measured([sys.executable, "-c", code], dict(os.environ), tmp_path / "log", 60)
    assert measured.returncode == 3
    assert "bad input: days" in measured.log


def test_run_config_is_valid_for_the_retrain_job() -> None:
    """Whatever shape the model asset has, the config the benchmark builds reaches it."""
    config = run_config(3, 300, reference_candidates())
    validated = validate_run_config(defs.resolve_job_def("retrain"), config)
    assert validated["ops"]["stock_data"]["config"]["tickers"] == ["T0000", "T0001", "T0002"]
    arguments = pipeline_arguments(config)
    assert arguments["candidates"] == reference_candidates()
    assert arguments["days"] == 300
    assert arguments["challenge_production"] is False


def test_step_times_orders_steps_and_times_their_bodies() -> None:
    """Per-step times and order from event rows as the event log gives them (PIPELINE_START)."""
    events = [
        (100.0, None, "PIPELINE_START"),
        (101.0, "b", "STEP_WORKER_STARTING"),
        (100.5, "a", "STEP_START"),
        (102.0, "b", "STEP_START"),
        (103.0, "a", "STEP_SUCCESS"),
        (104.5, "b", "STEP_FAILURE"),
        (105.0, None, "PIPELINE_FAILURE"),
    ]
    span, steps = step_times(events)
    assert span == 5.0
    assert [(s.key, s.start, s.seconds, s.status) for s in steps] == [
        ("a", 0.5, 2.5, "SUCCESS"),
        ("b", 2.0, 2.5, "FAILURE"),
    ]
    assert steps[1].worker_launch == 1.0


def test_kfp_tasks_reads_kfp_locals_output() -> None:
    """Tasks from kfp.local's output: a ParallelFor's iterations in one row, from the first
    start to the last end, and the Dagster steps each ran."""
    launched = datetime(2026, 1, 1, 12, 0, 0).timestamp()
    log = "\n".join(
        [
            "12:00:00.500 - INFO - Running pipeline: \x1b[95m'p'\x1b[0m",
            "12:00:01.000 - INFO - Executing task \x1b[96m'score'\x1b[0m",
            "    [KFP Executor 2026-01-01 12:00:01,250 INFO]: Got executor_input: {}",
            '    ... STEP_SUCCESS - Finished execution of step "score[c0]" in 1.5s.',
            "    [KFP Executor 2026-01-01 12:00:03,000 INFO]: Wrote executor output file",
            "12:00:03.500 - INFO - Task \x1b[96m'score'\x1b[0m finished with status "
            "\x1b[92mSUCCESS\x1b[0m",
            "12:00:04.000 - INFO - Executing task \x1b[96m'score'\x1b[0m",
            "    [KFP Executor 2026-01-01 12:00:04,250 INFO]: Got executor_input: {}",
            '    ... STEP_SUCCESS - Finished execution of step "score[c1]" in 533ms.',
            "    [KFP Executor 2026-01-01 12:00:05,000 INFO]: Wrote executor output file",
            "12:00:05.500 - INFO - Task \x1b[96m'score'\x1b[0m finished with status "
            "\x1b[92mSUCCESS\x1b[0m",
            "12:00:06.000 - INFO - Pipeline \x1b[95m'p'\x1b[0m finished with status "
            "\x1b[92mSUCCESS\x1b[0m",
        ]
    )
    found = kfp_tasks(log, launched)
    assert (found.pipeline_start, found.pipeline_end) == (0.5, 6.0)
    (task,) = found.tasks.values()
    assert (task.name, task.status, task.runs) == ("score", "SUCCESS", 2)
    assert (task.launch, task.end, task.io_start, task.io_end) == (1.0, 5.5, 1.25, 5.0)
    assert task.inner == {"score[c0]": 1.5, "score[c1]": 0.533}
    assert task.body == 1.5 + 0.533
