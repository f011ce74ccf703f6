"""Start-up cost of ``make mlflow-ui``: seconds until the UI answers, and processes started.

Runs the Makefile target itself (``make -s mlflow-ui MLFLOW_UI_PORT=<free port>``) in its own
process group, against a temporary data directory with an empty SQLite store, polls
``/health`` until it answers 200, counts the processes in the group (make excluded) once the
count has been stable for 3 s, prints both figures and stops the group. Repeats ``--repeat``
times and prints the median start time.

Run: ``.venv/bin/python benchmarks/bench_mlflow_ui.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: tests/ too

from tests.support.processes import free_port, group_processes, stop_group  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def measure_once(data_dir: Path) -> tuple[float, list[str]]:
    """Seconds until ``/health`` answers 200, and the group's processes once stable."""
    port = free_port()
    env = {**os.environ, "STOCK_ASSETS_DATA_DIR": str(data_dir)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["make", "-s", "mlflow-ui", f"MLFLOW_UI_PORT={port}"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"make mlflow-ui exited with code {proc.returncode}")
            try:
                with HTTP.open(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - started > 180:
                raise TimeoutError("the MLflow UI did not answer within 180 s")
            time.sleep(0.1)
        ready = time.perf_counter() - started
        processes, stable_since = group_processes(proc.pid), time.perf_counter()
        while time.perf_counter() - stable_since < 3:
            time.sleep(0.5)
            now = group_processes(proc.pid)
            if now != processes:
                processes, stable_since = now, time.perf_counter()
        return ready, processes
    finally:
        stop_group(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-ui-") as tmp:
        for attempt in range(1, args.repeat + 1):
            seconds, processes = measure_once(Path(tmp))
            times.append(seconds)
            print(
                f"run {attempt}: ready in {seconds:.1f} s, {len(processes)} processes "
                f"({', '.join(f'{n}×{processes.count(n)}' for n in sorted(set(processes)))})",
                flush=True,
            )
    print(f"median start time: {statistics.median(times):.1f} s over {len(times)} runs")


if __name__ == "__main__":
    main()
