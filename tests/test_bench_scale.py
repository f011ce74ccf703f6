"""The scale benchmark's own logic: the /proc memory sampler and the run config it builds."""

import os
import sys
import textwrap
from pathlib import Path

from dagster import validate_run_config

from benchmarks.bench_scale import (
    pipeline_arguments,
    reference_candidates,
    run_config,
    run_measured,
    step_times,
)
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
