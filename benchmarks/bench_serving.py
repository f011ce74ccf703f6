"""Latency of the served production model: sequential single-row requests over loopback.

Starts the real server (``stock-serve``, i.e. ``mlflow models serve`` with
one uvicorn worker) on a free port on 127.0.0.1, sends ``--requests`` single-row POSTs to
``/invocations`` one after the other on one keep-alive connection (http.client), and prints
the p50, p90, p99 and max latency (request sent to answer read) and the error count, then
stops the server. Target: p50 <= 10 ms, no errors.

Run: ``.venv/bin/python benchmarks/bench_serving.py [--prepare] [--form FORM]``. Without
``--prepare`` it serves ``models:/stock-prediction@production`` from the current tracking
store (MLFLOW_TRACKING_URI, else ./data/mlflow.db); with it, it first trains and deploys one
by materialising the whole graph with accuracy_threshold=0 into a temporary data directory
and store, removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: benchmarks/ too

from stock_assets.core.data import generate_gbm  # noqa: E402
from stock_assets.core.features import FEATURE_COLUMNS, TARGET_COLUMN, compute_features  # noqa: E402
from tests.support.processes import free_port, stop_group  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FORMS = ("dataframe_records", "dataframe_split")


def prepare(root: Path) -> None:
    """Point this process (and the server it starts) at a fresh store under ``root`` and
    deploy a model there by materialising the whole graph with accuracy_threshold=0."""
    os.environ["STOCK_ASSETS_DATA_DIR"] = str(root / "data")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'data' / 'mlflow.db'}"
    from dagster import DagsterInstance, materialize

    from stock_assets.definitions import defs

    print("training and deploying a model (whole graph, accuracy_threshold=0) ...", flush=True)
    started = time.perf_counter()
    result = materialize(
        [*defs.assets, *defs.asset_checks],
        resources=defs.resources,
        run_config={
            "ops": {"deploy_decision": {"config": {"accuracy_threshold": 0.0}}},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    if not result.success or "deployed_model" not in {
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
    }:
        sys.exit("error: the graph did not deploy a model")
    print(f"deployed in {time.perf_counter() - started:.1f} s", flush=True)


def served_model() -> str:
    """The production version and what it is (model type, hyperparameters), for the report."""
    from mlflow import MlflowClient

    from stock_assets.mlflow_ops.registry import PRODUCTION_ALIAS, REGISTERED_MODEL_NAME
    from stock_assets.mlflow_ops.serving.server import MODEL_URI
    from stock_assets.paths import default_tracking_uri

    client = MlflowClient(tracking_uri=default_tracking_uri())
    try:
        version = client.get_model_version_by_alias(REGISTERED_MODEL_NAME, PRODUCTION_ALIAS)
        run = client.get_run(version.run_id)
    except Exception as error:  # the server will say what is missing
        return f"{MODEL_URI} ({type(error).__name__})"
    params = run.data.params
    hyper = ", ".join(f"{k[3:]}={v}" for k, v in sorted(params.items()) if k.startswith("hp_"))
    return f"{MODEL_URI} = version {version.version}: {params.get('model_type', '?')} ({hyper})"


@contextlib.contextmanager
def running_server(log: Path, timeout: float = 120) -> Iterator[tuple[int, int]]:
    """Start the server on a free port, wait for ``/ping``, yield the port and the server's
    process group id, always stop it."""
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stock_assets.mlflow_ops.serving.server", "--port", str(port)],
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: mlflow CLI + uvicorn
        )
    try:
        started = time.perf_counter()
        while not ping(port):
            if proc.poll() is not None:
                sys.exit(
                    f"error: the server exited with code {proc.returncode}:\n{log.read_text()}"
                )
            if time.perf_counter() - started > timeout:
                sys.exit(f"error: no answer on /ping after {timeout:.0f} s:\n{log.read_text()}")
            time.sleep(0.2)
        print(f"server ready on 127.0.0.1:{port} in {time.perf_counter() - started:.1f} s")
        yield port, proc.pid
    finally:
        stop_group(proc)


def group_cpu_seconds(pgid: int) -> float | None:
    """User + system CPU time of the live processes in process group ``pgid`` (Linux /proc)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    try:
        entries = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in entries:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == pgid:  # state ppid pgrp ... utime stime at 11, 12
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def ping(port: int) -> bool:
    """Whether the server answers ``GET /ping`` with 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def request_bodies(form: str, n: int) -> list[bytes]:
    """``n`` single-row JSON bodies in ``form``, cycling through the default labelled rows."""
    table = compute_features(generate_gbm())
    rows = table.loc[table[TARGET_COLUMN].notna(), FEATURE_COLUMNS].reset_index(drop=True)
    values = rows.to_numpy().tolist()
    bodies = []
    for i in range(n):
        row = values[i % len(values)]
        if form == "dataframe_records":
            payload = {form: [dict(zip(FEATURE_COLUMNS, row, strict=True))]}
        else:
            payload = {form: {"columns": FEATURE_COLUMNS, "data": [row]}}
        bodies.append(json.dumps(payload).encode())
    return bodies


def measure(port: int, bodies: list[bytes]) -> tuple[np.ndarray, list[str]]:
    """Send each body in turn on one keep-alive connection; latencies in ms and the errors."""
    headers = {"Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    errors: list[str] = []
    try:
        for body in bodies:
            started = time.perf_counter()
            try:
                conn.request("POST", "/invocations", body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"{type(error).__name__}: {error}")
                conn.close()  # reconnects on the next request
                continue
            latencies.append((time.perf_counter() - started) * 1e3)
            if response.status != 200:
                errors.append(f"HTTP {response.status}: {answer[:200]!r}")
            elif len(json.loads(answer).get("predictions", [])) != 1:
                errors.append(f"unexpected answer: {answer[:200]!r}")
    finally:
        conn.close()
    return np.asarray(latencies), errors


def report(
    latencies: np.ndarray,
    errors: list[str],
    form: str,
    cpu_ms: dict[str, float],
) -> None:
    """Print the latency percentiles, the CPU time per request and the errors."""
    print(
        f"{len(latencies) + len(errors):,} sequential single-row requests ({form}), one "
        "keep-alive connection"
    )
    if len(latencies):
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
        print(
            f"latency ms: p50 {p50:.2f}  p90 {p90:.2f}  p99 {p99:.2f}  max {latencies.max():.2f}"
            f"  (mean {latencies.mean():.2f}; {1e3 / latencies.mean():.0f} requests/s)"
        )
        cpu = ", ".join(f"{side} {ms:.2f}" for side, ms in cpu_ms.items())
        note = ""
        if p50 > 1.5 * sum(cpu_ms.values()):
            note = f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        print(f"CPU time per request, ms: {cpu}{note}")
        verdict = "met" if p50 <= 10 and not errors else "NOT met"
        print(f"errors: {len(errors)}; target p50 <= 10 ms, no errors: {verdict}")
    else:
        print(f"errors: {len(errors)}; no request succeeded")
    for error in errors[:5]:
        print(f"  {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare", action="store_true", help="train and deploy into a temp store")
    parser.add_argument("--requests", type=int, default=1_000, help="timed requests (1,000)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first (20)")
    parser.add_argument("--form", choices=FORMS, default=FORMS[0], help="request body format")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        root = Path(tmp)
        if args.prepare:
            prepare(root)
        bodies = request_bodies(args.form, args.warmup + args.requests)
        print(f"model: {served_model()}")
        with running_server(root / "server.log") as (port, pgid):
            _, warmup_errors = measure(port, bodies[: args.warmup])
            if warmup_errors:
                sys.exit(f"error: warm-up requests failed: {warmup_errors[0]}")
            server_before, client_before = group_cpu_seconds(pgid), time.process_time()
            latencies, errors = measure(port, bodies[args.warmup :])
            cpu_ms = {"client": (time.process_time() - client_before) * 1e3 / args.requests}
            server_after = group_cpu_seconds(pgid)
            if server_before is not None and server_after is not None:
                cpu_ms = {"server": (server_after - server_before) * 1e3 / args.requests, **cpu_ms}
        report(latencies, errors, args.form, cpu_ms)


if __name__ == "__main__":
    main()
