"""A newcomer's first run: the default graph under the CLI and from the UI, wall time.

1. CLI: ``dagster asset materialize --select '*'`` with the README's one change (deploy
   threshold 0), on a fresh Dagster home, data directory and MLflow store each time; the
   default executor (in-process) and, for comparison, ``multiprocess``.
2. UI: ``dagster dev`` started once; "Materialize all" launched as the button does (the
   webserver's GraphQL ``launchPipelineExecution``), timed from the request to the run's SUCCESS
   as the UI polls it.

Run: ``.venv/bin/python benchmarks/bench_first_run.py [--repeat 3] [--no-ui]``. Targets: the
CLI at most 10 s, the UI at most 15 s. The nightly run at scale is measured by
``bench_scale.py`` (its CLI mode uses the executor the schedule chooses for the size).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, from anywhere

from benchmarks.harness import runs  # noqa: E402
from benchmarks.harness.sandbox import DAGSTER, PROJECT_ROOT, Sandbox, work_dir  # noqa: E402
from tests.support.processes import free_port, stop_group  # noqa: E402

DEPLOY = {"deploy_decision": {"config": {"accuracy_threshold": 0.0}}}
ASSETS = ["stock_data", "features", "model", "deploy_decision", "deployed_model"]
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  }
}"""
STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
TARGETS = {"CLI, default executor": 10.0, "UI, Materialize all": 15.0}


def cli_run(root: Path, execution: dict[str, Any] | None) -> float:
    """Wall seconds of one ``dagster asset materialize --select '*'`` on a fresh sandbox."""
    config: dict[str, Any] = {"ops": DEPLOY}
    if execution is not None:
        config["execution"] = {"config": execution}
    run = runs.cli(Sandbox(root), config, root.name, timeout=600, memory=False)
    if not run.ok:
        raise SystemExit(f"CLI run failed:\n{run.error}")
    return run.wall_s


def graphql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["data"]


def ui_runs(root: Path, repeat: int) -> list[float]:
    """Seconds from "Materialize all" to SUCCESS, ``repeat`` times on one ``dagster dev``."""
    port = free_port()
    sandbox = Sandbox(root)
    env = sandbox.env()
    log = (root / "dagster-dev.log").open("w")
    process = subprocess.Popen(
        [DAGSTER, "dev", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    selector = {
        "repositoryLocationName": "stock_assets",
        "repositoryName": "__repository__",
        "pipelineName": "__ASSET_JOB",
        "assetSelection": [{"path": [name]} for name in ASSETS],
    }
    times = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                graphql(url, "{ version }", {})
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("dagster dev did not answer within 120 s") from None
                time.sleep(1)
        time.sleep(5)  # the code location loaded, the daemon's first sensor ticks done
        for _ in range(repeat):
            params = {"selector": selector, "mode": "default", "runConfigData": {"ops": DEPLOY}}
            started = time.perf_counter()
            launched = graphql(url, LAUNCH, {"params": params})["launchPipelineExecution"]
            run_id = launched["run"]["runId"]
            status = "STARTING"
            while status not in ("SUCCESS", "FAILURE", "CANCELED"):
                time.sleep(0.25)
                status = graphql(url, STATUS, {"id": run_id})["runOrError"]["status"]
            if status != "SUCCESS":
                raise SystemExit(f"UI run {run_id} ended {status}")
            times.append(time.perf_counter() - started)
    finally:
        stop_group(process, grace=30)
        log.close()
    return times


def line(name: str, times: list[float]) -> str:
    target = TARGETS.get(name)
    verdict = "" if target is None else ("  meets" if max(times) <= target else "  MISSES")
    goal = f" (target <= {target:.0f} s)" if target else ""
    runs = ", ".join(f"{t:.1f}" for t in times)
    return f"{name:<28} median {statistics.median(times):5.1f} s  [{runs}]{goal}{verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (default 3)")
    parser.add_argument("--no-ui", action="store_true", help="skip the dagster dev measurement")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with work_dir("bench_first_run_") as root:
        modes: dict[str, Any] = {
            "CLI, default executor": None,
            "CLI, multiprocess": {"multiprocess": {}},
        }
        for name, execution in modes.items():
            times = [cli_run(root / f"{name[5:9]}{i}", execution) for i in range(args.repeat)]
            print(line(name, times), flush=True)
        if not args.no_ui:
            print(line("UI, Materialize all", ui_runs(root / "ui", args.repeat)))


if __name__ == "__main__":
    main()
