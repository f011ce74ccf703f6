"""Issue 10's scale targets, measured in one invocation: the nightly retrain at N tickers x D days.

Every run is a fresh subprocess of the venv's Python, from the project root, on its own temporary
DAGSTER_HOME (with the project's ``dagster_instance.yaml``), data directory and MLflow SQLite
store. The config is the default one except ``stock_data`` (tickers ``T0000``.., days) and the
deploy gate opened (``accuracy_threshold: 0.0``, ``challenge_production: false``).

1. In-process: the ``retrain`` job (the whole group, checks included) by ``execute_in_process``.
   Wall time of the subprocess, per-step times from the run's event log (STEP_START ->
   STEP_SUCCESS per step key), peak RSS (the process tree sampled from /proc every 0.2 s, and
   the largest single process's own peak, VmHWM).
2. CLI: ``dagster asset materialize`` (multiprocess executor) with the same config as a YAML
   file; wall time, per-step times from its instance, peak memory of the process tree (summed
   PSS: the project the forkserver preloaded counts once, not once per forked step; summed RSS
   as the upper bound). Ratio to the in-process wall time.
3. Features step: ``benchmarks.features_step.measure_features_step`` when that module exists.
4. Parity: the real exporter's pipeline.yaml run by ``kfp.local`` against Dagster in-process,
   same config as pipeline arguments; same candidate, metrics equal to 1e-9.
5. Reference set (last, the slow one): the reference pipeline's seven candidates on the same rows
   and test window, in-process (``--reference-tickers``: which size; default the largest); its
   chosen candidate and test accuracy next to the default set's on those rows.

Each run has its own session (so a timeout can kill its process group). Under Linux's
autogroup scheduling a session competes with every other session as one unit, whatever its
``nice``: measure on an otherwise idle machine (the load average is printed at start and end).

Targets (issue 10, at 500 x 2,520 on the 2-core machine): in-process <= 120 s and <= 4 GiB; CLI
<= 1.3x in-process; default set's test accuracy >= the reference set's; parity at 50 tickers.

Run: ``.venv/bin/python -m benchmarks.bench_scale [--tickers 10 100 500] [--days 2520] ...``;
exit code 1 if a run failed, parity failed or a target was missed (targets are judged at the
largest size measured, and labelled with it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stock_assets.defs.config import run_config as asset_run_config

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_VENV_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
# Not resolved: the venv's python is a symlink, and resolving it would leave the venv.
PYTHON = str(_VENV_PYTHON if _VENV_PYTHON.exists() else Path(sys.executable))
DAGSTER = str(Path(PYTHON).with_name("dagster"))
MODULE = "stock_assets.definitions"
JOB = "retrain"
ASSET_SELECTION = "group:stock_prediction"  # the retrain job's selection, for the CLI

WALL_TARGET_S = 120.0
RSS_TARGET_BYTES = 4 * 2**30
CLI_RATIO_TARGET = 1.3
PARITY_TOLERANCE = 1e-9
TARGET_SCALE = (500, 2_520)
DEPLOY_ALLOWED = {"accuracy_threshold": 0.0, "challenge_production": False}
RUN_TIMEOUT_S = 4 * 3600
SAMPLE_INTERVAL_S = 0.2


# --------------------------------------------------------------------------------------
# The run config: one place for the candidate set and for where the model's config lives
# --------------------------------------------------------------------------------------


def reference_candidates() -> list[str]:
    """The reference pipeline's seven configurations, by their preset name."""
    return ["reference"]


def ticker_names(count: int) -> list[str]:
    """``count`` synthetic ticker symbols, T0000, T0001, ..."""
    return [f"T{i:04d}" for i in range(count)]


def run_config(tickers: int, days: int, candidates: list[str] | None = None) -> dict[str, Any]:
    """Default config except the data's size, the open deploy gate and (optionally) candidates."""
    config: dict[str, dict[str, Any]] = {
        "stock_data": {"tickers": ticker_names(tickers), "days": days},
        "deploy_decision": dict(DEPLOY_ALLOWED),
    }
    if candidates is not None:
        config["model"] = {"candidates": candidates}
    return asset_run_config(config)


def pipeline_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """Every ``config`` leaf of a run config, as KFP pipeline arguments (field name -> value)."""
    arguments: dict[str, Any] = {}

    def walk(node: dict[str, Any]) -> None:
        for key, value in node.items():
            if key == "config":
                clash = set(arguments) & set(value)
                if clash:
                    raise ValueError(f"config fields {sorted(clash)} appear in two steps")
                arguments.update(value)
            elif isinstance(value, dict):
                walk(value)

    walk(config)
    return arguments


# --------------------------------------------------------------------------------------
# Memory: the RSS of a process tree, sampled from /proc
# --------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant, from the parent pids in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "stat")) as handle:
                stat = handle.read()
        except OSError:  # the process ended meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # after "(comm)": state, ppid, ...
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def memory_bytes(pid: int) -> tuple[int, int, int]:
    """(VmRSS, VmHWM, Pss) of ``pid`` from /proc; zeros for a zombie or a gone process.

    Pss (``/proc/<pid>/smaps_rollup``) counts each page shared by n processes as 1/n of a page
    in each: summed over a tree it is the tree's real footprint, where a sum of RSS counts the
    project a forkserver preloaded once per forked step.

    VmHWM is the process's own peak RSS since its exec. (``wait4``'s ``ru_maxrss`` is not used:
    Linux carries the high-water mark across fork and exec, so a child of a large parent reports
    at least the parent's RSS.)
    """
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    break  # VmRSS follows VmHWM
    except OSError:
        pass
    pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return rss, hwm, pss


class TreeRssSampler(threading.Thread):
    """Samples the summed RSS of a process tree until stopped; keeps the peak.

    A sum of RSS counts pages shared between processes (libraries, forked memory) once per
    process, so it is an upper bound of the tree's real footprint. Each process's own peak
    (VmHWM) is kept too: the largest is exact for a one-process run, whatever the sampling missed.
    """

    def __init__(self, root: int, interval: float = SAMPLE_INTERVAL_S) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self.peak_processes = 0
        self.max_processes = 0
        self.process_peaks: dict[int, int] = {}  # pid -> largest VmHWM seen
        self._stop_event = threading.Event()

    def sample(self) -> None:
        pids = process_tree(self.root)
        total = total_pss = 0
        for pid in pids:
            rss, hwm, pss = memory_bytes(pid)
            total += rss
            total_pss += pss
            self.process_peaks[pid] = max(self.process_peaks.get(pid, 0), hwm)
        self.peak_pss_bytes = max(self.peak_pss_bytes, total_pss)
        self.max_processes = max(self.max_processes, len(pids))
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_processes = total, len(pids)

    def run(self) -> None:
        while True:
            self.sample()
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


@dataclass
class Measured:
    """One finished subprocess: wall time, exit code and memory."""

    seconds: float
    returncode: int
    tree_peak_bytes: int  # summed RSS of the process tree, sampled
    tree_peak_pss_bytes: int  # summed Pss of the process tree, sampled
    tree_peak_processes: int  # processes in the tree at that sample
    max_processes: int  # most processes seen in the tree at once
    single_peak_bytes: int  # the largest VmHWM of one process of the tree
    log: str = ""  # the output's tail, on failure


def run_measured(cmd: Sequence[str], env: dict[str, str], log: Path, timeout: float) -> Measured:
    """Run ``cmd`` from the project root in its own session, output to ``log``, and measure it."""
    with log.open("w") as out:
        start = time.perf_counter()
        process = subprocess.Popen(
            list(cmd),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        sampler = TreeRssSampler(process.pid)
        sampler.start()
        timer = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
        timer.start()
        try:
            returncode = process.wait()
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        finally:
            timer.cancel()
            sampler.stop()
        seconds = time.perf_counter() - start
    return Measured(
        seconds=seconds,
        returncode=returncode,
        tree_peak_bytes=sampler.peak_bytes,
        tree_peak_pss_bytes=sampler.peak_pss_bytes,
        tree_peak_processes=sampler.peak_processes,
        max_processes=sampler.max_processes,
        single_peak_bytes=max(sampler.process_peaks.values(), default=0),
        log="" if returncode == 0 else tail(log.read_text(errors="replace")),
    )


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty)"


# --------------------------------------------------------------------------------------
# Isolation
# --------------------------------------------------------------------------------------


class Sandbox:
    """A DAGSTER_HOME (the project's instance settings), data directory and MLflow store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "dagster_home"
        self.data = root / "data"
        self.home.mkdir(parents=True)
        self.data.mkdir()
        shutil.copy(PROJECT_ROOT / "dagster_instance.yaml", self.home / "dagster.yaml")
        self.tracking_uri = f"sqlite:///{root / 'mlflow.db'}"

    def env(self) -> dict[str, str]:
        """This environment without MLflow/Dagster/data settings, pointed at the sandbox."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "DAGSTER_")) and k != "STOCK_ASSETS_DATA_DIR"
        }
        env.update(
            DAGSTER_HOME=str(self.home),
            STOCK_ASSETS_DATA_DIR=str(self.data),
            MLFLOW_TRACKING_URI=self.tracking_uri,
            PATH=f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
        )
        return env


# --------------------------------------------------------------------------------------
# What a run reports: steps from the event log, the chosen model
# --------------------------------------------------------------------------------------

EventRow = tuple[float, "str | None", str]  # (timestamp, step key, event type value)


def event_rows(instance: Any, run_id: str) -> list[EventRow]:
    """The Dagster events of a run, as (timestamp, step key, event type)."""
    return [
        (entry.timestamp, entry.step_key, entry.dagster_event.event_type_value)
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None
    ]


@dataclass
class StepTime:
    """One step of a run: when it started (from RUN_START), its body's duration, its status."""

    key: str
    start: float | None = None
    seconds: float | None = None
    status: str = ""
    worker_launch: float | None = None  # STEP_WORKER_STARTING -> STEP_START (multiprocess)


def step_times(events: Sequence[Sequence[Any]]) -> tuple[float | None, list[StepTime]]:
    """The run's span (RUN_START -> RUN_SUCCESS/FAILURE) and its steps, sorted by start."""
    run_start = run_end = None
    steps: dict[str, StepTime] = {}
    worker_start: dict[str, float] = {}
    for timestamp, key, raw_kind in events:
        kind = raw_kind.replace("PIPELINE_", "RUN_")  # RUN_START's value is PIPELINE_START
        if kind == "RUN_START":
            run_start = timestamp
        elif kind in ("RUN_SUCCESS", "RUN_FAILURE"):
            run_end = timestamp
        if key is None:
            continue
        step = steps.setdefault(key, StepTime(key))
        if kind == "STEP_WORKER_STARTING":
            worker_start[key] = timestamp
        elif kind == "STEP_START":
            step.start = timestamp
            if key in worker_start:
                step.worker_launch = timestamp - worker_start[key]
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            step.status = kind.removeprefix("STEP_")
            if step.start is not None:
                step.seconds = timestamp - step.start
    origin = run_start if run_start is not None else min((e[0] for e in events), default=0.0)
    for step in steps.values():
        step.start = None if step.start is None else step.start - origin
    span = None if run_start is None or run_end is None else run_end - run_start
    ordered = sorted(steps.values(), key=lambda s: (s.start is None, s.start or 0.0, s.key))
    return span, ordered


def model_summary(trained: Any) -> dict[str, Any]:
    """What the benchmark compares of a ``TrainedModel``: type, hyperparameters, test figures."""
    return {
        "model_type": trained.model_type,
        "hyperparameters": dict(trained.hyperparameters),
        "metrics": dict(trained.metrics),
        "train_window": str(trained.train_window),
        "test_window": str(trained.test_window),
    }


def accuracy_margin(run: RunReport) -> float:
    """Half-width of a 95 % interval of a test accuracy near 0.5 on ``run``'s test rows.

    Synthetic tickers have a bar on every business day: the test rows are the tickers times
    the business days of the test window. On a random walk no model is much better than a coin,
    so two sets' accuracies closer than this are equal within sampling noise.
    """
    import numpy as np

    first, _, last = (run.model or {}).get("test_window", "").partition("..")
    if not first or not last:
        return float("nan")
    days = int(np.busday_count(first, np.datetime64(last) + np.timedelta64(1, "D")))
    return 1.96 * math.sqrt(0.25 / max(days * run.tickers, 1))


def candidate_label(model: dict[str, Any] | None) -> str:
    if not model:
        return "-"
    # Sorted: the stored JSON sorts its keys, the in-memory value keeps the config's order.
    params = ", ".join(f"{k}={v}" for k, v in sorted(model["hyperparameters"].items()))
    return f"{model['model_type']}: {params}" if params else model["model_type"]


def failure_text(result: Any) -> str:
    """The step failures' messages (and causes) of a Dagster run result, one per line."""
    parts = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            parts.append(f"{event.step_key}: {error.message.strip()}")
            error = error.cause
    return "\n".join(parts)


def child_in_process(argv: Sequence[str] | None = None) -> None:
    """In the fresh subprocess: run the job in process; write its events and model as JSON.

    ``argv``: the run config file and the result file.
    """
    config_file, result_file = argv if argv is not None else sys.argv[1:3]
    from dagster import DagsterInstance

    from stock_assets.definitions import defs

    config = json.loads(Path(config_file).read_text())
    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def(JOB).execute_in_process(
            run_config=config, instance=instance, raise_on_error=False
        )
        report: dict[str, Any] = {
            "success": result.success,
            "run_id": result.run_id,
            "events": event_rows(instance, result.run_id),
            "error": "" if result.success else failure_text(result),
            "model": model_summary(result.output_for_node("model")) if result.success else None,
        }
    Path(result_file).write_text(json.dumps(report))
    sys.exit(0 if result.success else 1)


# --------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------


@dataclass
class RunReport:
    """One measured run of the graph."""

    label: str
    mode: str  # "in-process" or "cli"
    tickers: int
    days: int
    rows: int
    ok: bool
    wall_s: float
    run_span_s: float | None
    peak_rss_bytes: int  # process tree, sampled
    peak_pss_bytes: int  # process tree, sampled: shared pages counted once
    max_single_rss_bytes: int  # largest single process's own peak (VmHWM)
    max_processes: int
    steps: list[StepTime] = field(default_factory=list)
    model: dict[str, Any] | None = None
    error: str = ""

    @classmethod
    def of(
        cls,
        measured: Measured,
        label: str,
        mode: str,
        tickers: int,
        days: int,
        events: Sequence[Sequence[Any]],
        model: dict[str, Any] | None,
        ok: bool,
        error: str,
    ) -> RunReport:
        """The report of a measured run, its steps read from the run's ``events``."""
        span, steps = step_times(events)
        return cls(
            label=label,
            mode=mode,
            tickers=tickers,
            days=days,
            rows=tickers * days,
            ok=ok,
            wall_s=measured.seconds,
            run_span_s=span,
            peak_rss_bytes=measured.tree_peak_bytes,
            peak_pss_bytes=measured.tree_peak_pss_bytes,
            max_single_rss_bytes=measured.single_peak_bytes,
            max_processes=measured.max_processes,
            steps=steps,
            model=model,
            error="" if ok else error,
        )


def run_in_process(
    work: Path, label: str, tickers: int, days: int, candidates: list[str] | None = None
) -> RunReport:
    """The ``retrain`` job by ``execute_in_process`` in a fresh subprocess on a fresh sandbox."""
    sandbox = Sandbox(work / label)
    config_file, result_file = sandbox.root / "run_config.json", sandbox.root / "result.json"
    config_file.write_text(json.dumps(run_config(tickers, days, candidates)))
    code = "from benchmarks.bench_scale import child_in_process; child_in_process()"
    cmd = [PYTHON, "-c", code, str(config_file), str(result_file)]
    measured = run_measured(cmd, sandbox.env(), sandbox.root / "run.log", RUN_TIMEOUT_S)
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    ok = measured.returncode == 0 and bool(result.get("success"))
    return RunReport.of(
        measured,
        label,
        "in-process",
        tickers,
        days,
        result.get("events", []),
        result.get("model"),
        ok,
        result.get("error") or measured.log,
    )


def run_cli(work: Path, label: str, tickers: int, days: int) -> RunReport:
    """``dagster asset materialize`` with the config as a YAML file, on the multiprocess executor
    (each step a process forked warm), beside the in-process run of the same size."""
    import yaml
    from dagster import DagsterInstance

    sandbox = Sandbox(work / label)
    config_file = sandbox.root / "run_config.yaml"
    config = {**run_config(tickers, days), "execution": {"config": {"multiprocess": {}}}}
    config_file.write_text(yaml.safe_dump(config))
    cmd = [DAGSTER, "asset", "materialize", "-m", MODULE, "--select", ASSET_SELECTION]
    cmd += ["-c", str(config_file)]
    measured = run_measured(cmd, sandbox.env(), sandbox.root / "run.log", RUN_TIMEOUT_S)
    events: list[EventRow] = []
    model = None
    with DagsterInstance.from_config(str(sandbox.home)) as instance:
        runs = instance.get_runs()
        if len(runs) == 1:
            events = event_rows(instance, runs[0].run_id)
    if measured.returncode == 0:
        model = stored_model(sandbox.data)
    ok = measured.returncode == 0 and len(runs) == 1
    error = measured.log or f"{len(runs)} runs in the instance, expected 1"
    return RunReport.of(measured, label, "cli", tickers, days, events, model, ok, error)


def stored_model(data: Path) -> dict[str, Any] | None:
    """The ``model`` value the IO manager stored under data directory ``data``."""
    from stock_assets.defs.io_manager import latest_path
    from stock_assets.defs.storage import read_value

    path = latest_path(data, "model")
    return model_summary(read_value(path)) if path.is_file() else None


# --------------------------------------------------------------------------------------
# Parity: the exported pipeline under kfp.local against Dagster
# --------------------------------------------------------------------------------------

KFP_LOCAL_CODE = """
import json, sys
from kfp import components, local

package, root, arguments = sys.argv[1], sys.argv[2], json.loads(open(sys.argv[3]).read())
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root, raise_on_error=True)
components.load_component_from_file(package)(**arguments)
"""


@dataclass
class Parity:
    tickers: int
    days: int
    ok: bool
    kfp_seconds: float
    dagster_seconds: float
    kfp_model: dict[str, Any] | None
    dagster_model: dict[str, Any] | None
    differences: list[str]
    error: str = ""


def kfp_model_artifact(run_dir: Path) -> Any:
    """The ``TrainedModel`` the kfp.local run stored: the ``model`` task's output artifact.

    ``<run>/model/model`` while ``model`` is one task; otherwise the one task output that reads
    back as a TrainedModel (e.g. the last op's of a graph-backed ``model``).
    """
    from stock_assets.core.values import TrainedModel
    from stock_assets.defs.storage import read_value

    preferred = run_dir / "model" / "model"
    for path in [preferred, *sorted(p for p in run_dir.glob("*/*") if p != preferred)]:
        if not path.is_file():
            continue
        with path.open("rb") as handle:
            if handle.read(1) != b"{":  # typed JSON values only; Parquet tables are skipped
                continue
        try:
            value = read_value(path)
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if isinstance(value, TrainedModel):
            return value
    raise FileNotFoundError(f"no TrainedModel among the outputs of kfp.local run {run_dir.name}")


def compare_models(kfp: dict[str, Any], dagster: dict[str, Any]) -> list[str]:
    """What differs between two model summaries (metrics within PARITY_TOLERANCE)."""
    differences = []
    for key in ("model_type", "hyperparameters", "train_window", "test_window"):
        if kfp[key] != dagster[key]:
            differences.append(f"{key}: kfp {kfp[key]!r} != dagster {dagster[key]!r}")
    for name in sorted(set(kfp["metrics"]) | set(dagster["metrics"])):
        a, b = kfp["metrics"].get(name), dagster["metrics"].get(name)
        if a is None or b is None or not math.isclose(a, b, rel_tol=0, abs_tol=PARITY_TOLERANCE):
            differences.append(f"metrics[{name!r}]: kfp {a!r} != dagster {b!r}")
    return differences


def run_parity(work: Path, tickers: int, days: int, dagster: RunReport | None) -> Parity:
    """Export, run under kfp.local with the config as arguments, compare with Dagster's run."""
    sandbox = Sandbox(work / f"parity_kfp_{tickers}")
    env = sandbox.env()
    package = sandbox.root / "pipeline.yaml"
    export = subprocess.run(
        [PYTHON, "-m", "exporters.kfp", "-o", str(package), "--allow-local-tracking-uri"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    failed = Parity(tickers, days, False, 0.0, 0.0, None, None, [])
    if export.returncode != 0:
        failed.error = f"export failed: {tail(export.stderr)}"
        return failed
    arguments_file = sandbox.root / "arguments.json"
    arguments_file.write_text(json.dumps(pipeline_arguments(run_config(tickers, days))))
    root = sandbox.root / "pipeline_root"
    cmd = [PYTHON, "-c", KFP_LOCAL_CODE, str(package), str(root), str(arguments_file)]
    measured = run_measured(cmd, env, sandbox.root / "kfp.log", RUN_TIMEOUT_S)
    failed.kfp_seconds = measured.seconds
    if measured.returncode != 0:
        failed.error = f"kfp.local run failed:\n{measured.log}"
        return failed
    (run_dir,) = [p for p in root.iterdir() if p.is_dir()]
    kfp_model = model_summary(kfp_model_artifact(run_dir))

    if dagster is None or not dagster.ok:
        dagster = run_in_process(work, f"parity_dagster_{tickers}", tickers, days)
    failed.dagster_seconds, failed.kfp_model = dagster.wall_s, kfp_model
    if not dagster.ok or dagster.model is None:
        failed.error = f"Dagster run failed:\n{dagster.error}"
        return failed
    differences = compare_models(kfp_model, dagster.model)
    return Parity(
        tickers,
        days,
        not differences,
        measured.seconds,
        dagster.wall_s,
        kfp_model,
        dagster.model,
        differences,
    )


# --------------------------------------------------------------------------------------
# Features step (benchmarks/features_step.py, another engineer's, when merged)
# --------------------------------------------------------------------------------------


def run_features_step(tickers: int, days: int) -> dict[str, Any] | None:
    """``measure_features_step(tickers, days, repeats=3)``, or None if the module is absent."""
    try:
        from benchmarks.features_step import measure_features_step
    except ImportError as error:
        print(f"  skipped: benchmarks.features_step is not available here ({error})")
        return None
    figures = measure_features_step(tickers, days, repeats=3)
    for name, value in figures.items():
        print(f"  {name}: {value}")
    return figures


# --------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:,.1f} s"


def fmt_mem(n_bytes: int | None) -> str:
    return "-" if not n_bytes else f"{n_bytes / 2**30:.2f} GiB"


def fmt_acc(model: dict[str, Any] | None) -> str:
    return "-" if not model else f"{model['metrics']['accuracy']:.4f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)) -> str:
    """A plain-text table; columns in ``left`` left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i in left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), "-" * len(line(header)), *(line(r) for r in rows)]
    return "\n".join("  " + text for text in out)


def print_run(report: RunReport) -> None:
    status = "ok" if report.ok else "FAILED"
    print(
        f"\n  [{report.label}] {report.mode}, {report.tickers} tickers x {report.days:,} days "
        f"({report.rows:,} rows): {status}"
    )
    print(
        f"  wall {fmt_s(report.wall_s)} (run span RUN_START->end {fmt_s(report.run_span_s)}); "
        f"peak memory {fmt_mem(report.peak_pss_bytes)} PSS, {fmt_mem(report.peak_rss_bytes)} "
        f"summed RSS (process tree, up to {report.max_processes} processes; largest single "
        f"process {fmt_mem(report.max_single_rss_bytes)})"
    )
    if report.model:
        print(f"  chosen: {candidate_label(report.model)}; test accuracy {fmt_acc(report.model)}")
    if report.steps:
        multiprocess = any(s.worker_launch is not None for s in report.steps)
        header = ["step", "status", "starts at", "body"]
        rows = []
        for step in report.steps:
            row = [step.key, step.status, fmt_s(step.start), fmt_s(step.seconds)]
            if multiprocess:
                row.append(fmt_s(step.worker_launch))
            rows.append(row)
        if multiprocess:
            header.append("worker launch")
        print(table(header, rows, left=(0, 1)))
    if report.error:
        print("  error:\n" + "\n".join("    " + line for line in report.error.splitlines()))


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("dagster", "kfp", "mlflow", "scikit-learn", "pandas")
    return {"python": platform.python_version(), **{n: version(n) for n in names}}


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--tickers",
        type=int,
        nargs="+",
        default=[10, 100, 500],
        help="sizes to run in-process (default: 10 100 500)",
    )
    parser.add_argument(
        "--days", type=int, default=2_520, help="business days per ticker (default: 2520)"
    )
    parser.add_argument(
        "--cli-tickers",
        type=int,
        nargs="*",
        help="sizes also run by `dagster asset materialize` (default: the largest; none: skip)",
    )
    parser.add_argument(
        "--parity-tickers",
        type=int,
        default=50,
        help="size of the kfp.local parity run (default: 50; 0: skip)",
    )
    parser.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the reference pipeline's candidate set, last (slow)",
    )
    parser.add_argument(
        "--reference-tickers",
        type=int,
        help="size of the reference set's run, one of --tickers (default: the largest); the "
        "default set's run of that size is its comparison",
    )
    parser.add_argument(
        "--features",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time the features step at the largest size (benchmarks/features_step.py)",
    )
    parser.add_argument("--json", type=Path, help="write the full report as JSON to this file")
    parser.add_argument("--markdown", type=Path, help="write the README's tables to this file")
    parser.add_argument("--keep", action="store_true", help="keep the runs' temporary folders")
    args = parser.parse_args(argv)
    if min([*args.tickers, *(args.cli_tickers or [1])]) < 1 or args.days < 1:
        parser.error("--tickers, --cli-tickers and --days must be >= 1")
    if args.parity_tickers < 0:
        parser.error("--parity-tickers must be >= 0 (0: skip the parity run)")
    if args.cli_tickers is None:
        args.cli_tickers = [max(args.tickers)]
    if args.reference_tickers is None:
        args.reference_tickers = max(args.tickers)
    elif args.reference_tickers not in args.tickers:
        parser.error(
            f"--reference-tickers {args.reference_tickers} must be one of --tickers "
            f"{' '.join(map(str, args.tickers))}: the default set's run of that size is compared"
        )
    return args


@dataclass
class Target:
    name: str
    measured: str
    target: str
    ok: bool


def targets(
    largest: RunReport | None,
    cli: RunReport | None,
    reference: RunReport | None,
    parity: Parity | None,
    default_same_rows: RunReport | None = None,
) -> list[Target]:
    """Issue 10's targets, judged on what this invocation measured.

    ``default_same_rows`` is the default set's run on the reference run's rows (default: the
    largest run).
    """
    found = []
    if largest is not None and largest.ok:
        scale = f"{largest.tickers} x {largest.days:,}"
        found.append(
            Target(
                f"in-process wall ({scale})",
                fmt_s(largest.wall_s),
                f"<= {fmt_s(WALL_TARGET_S)}",
                largest.wall_s <= WALL_TARGET_S,
            )
        )
        found.append(
            Target(
                f"in-process peak RSS ({scale})",
                fmt_mem(largest.peak_rss_bytes),
                f"<= {fmt_mem(RSS_TARGET_BYTES)}",
                largest.peak_rss_bytes <= RSS_TARGET_BYTES,
            )
        )
        if cli is not None and cli.ok:
            found.append(
                Target(
                    f"CLI peak memory, PSS of the process tree ({scale})",
                    fmt_mem(cli.peak_pss_bytes),
                    f"<= {fmt_mem(RSS_TARGET_BYTES)}",
                    cli.peak_pss_bytes <= RSS_TARGET_BYTES,
                )
            )
            ratio = cli.wall_s / largest.wall_s
            found.append(
                Target(
                    f"CLI / in-process wall ({scale})",
                    f"{ratio:.2f}x ({fmt_s(cli.wall_s)})",
                    f"<= {CLI_RATIO_TARGET}x",
                    ratio <= CLI_RATIO_TARGET,
                )
            )
        compared = default_same_rows or largest
        if reference is not None and reference.ok and compared.model and reference.model:
            default, seed = (
                compared.model["metrics"]["accuracy"],
                reference.model["metrics"]["accuracy"],
            )
            same_window = compared.model["test_window"] == reference.model["test_window"]
            margin = accuracy_margin(compared)
            found.append(
                Target(
                    f"default vs reference test accuracy ({compared.tickers} x {compared.days:,})",
                    f"{default:.4f} vs {seed:.4f} (95 % margin of each: ±{margin:.4f})"
                    + ("" if same_window else " (DIFFERENT test windows)"),
                    "default >= reference",
                    default >= seed and same_window,
                )
            )
    if parity is not None:
        found.append(
            Target(
                f"parity Dagster vs kfp.local ({parity.tickers} x {parity.days:,})",
                "same candidate, equal metrics" if parity.ok else "differs or failed",
                f"equal to {PARITY_TOLERANCE:g}",
                parity.ok,
            )
        )
    return found


def scaling_rows(runs: list[RunReport], cli_runs: dict[int, RunReport]) -> list[list[str]]:
    rows = []
    for run in runs:
        cli = cli_runs.get(run.tickers)
        rows.append(
            [
                f"{run.tickers:,}",
                f"{run.rows:,}",
                fmt_s(run.wall_s) if run.ok else "failed",
                "-" if cli is None else (fmt_s(cli.wall_s) if cli.ok else "failed"),
                fmt_mem(run.peak_rss_bytes),
                "-" if cli is None else fmt_mem(cli.peak_pss_bytes),
                candidate_label(run.model),
                fmt_acc(run.model),
            ]
        )
    return rows


SCALING_HEADER = [
    "tickers",
    "rows",
    "in-process",
    "CLI (multiprocess)",
    "peak RSS in-process",
    "peak memory CLI (PSS)",
    "chosen candidate",
    "test accuracy",
]


def markdown(
    runs: list[RunReport],
    cli_runs: dict[int, RunReport],
    reference: RunReport | None,
    found: list[Target],
    days: int,
) -> str:
    def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return lines + ["| " + " | ".join(row) + " |" for row in rows]

    lines = [
        f"Nightly retrain, default config, {days:,} business days per ticker, deploy allowed; "
        f"{os.cpu_count()} cores. Wall = whole subprocess; peak memory = summed RSS (in-process) "
        "or PSS (CLI) of the process tree, sampled every 0.2 s.",
        "",
        *md_table(SCALING_HEADER, scaling_rows(runs, cli_runs)),
    ]
    if reference is not None:
        lines += [
            "",
            f"Reference candidate set ({reference.tickers:,} tickers, same rows and test window): "
            f"{fmt_s(reference.wall_s) if reference.ok else 'failed'}, chose "
            f"{candidate_label(reference.model)}, test accuracy {fmt_acc(reference.model)}.",
        ]
    if found:
        lines += [
            "",
            *md_table(
                ["target", "measured", "goal", "verdict"],
                [[t.name, t.measured, t.target, verdict(t.ok)] for t in found],
            ),
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sorted(set(args.tickers))
    largest_size = sizes[-1]
    started = time.time()
    print(f"bench_scale: {os.cpu_count()} cpus; load average at start: {load_average()}")
    print(f"versions: {', '.join(f'{k} {v}' for k, v in versions().items())}")
    print(
        f"sizes: {', '.join(map(str, sizes))} tickers x {args.days:,} days; CLI at "
        f"{', '.join(map(str, args.cli_tickers)) or 'none'}; parity at "
        f"{args.parity_tickers or 'skipped'}; reference set: {'on' if args.reference else 'off'}"
    )
    if (largest_size, args.days) != TARGET_SCALE:
        print(
            f"note: the targets are defined at {TARGET_SCALE[0]} x {TARGET_SCALE[1]:,}; they are "
            f"judged below at {largest_size} x {args.days:,}"
        )

    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    runs: list[RunReport] = []
    cli_runs: dict[int, RunReport] = {}
    reference = parity = None
    features = None
    try:
        print("\n== 1. Nightly retrain in one process (execute_in_process), per size ==")
        for size in sizes:
            runs.append(run_in_process(work, f"inproc_{size}", size, args.days))
            print_run(runs[-1])
        by_size = {run.tickers: run for run in runs}

        if args.cli_tickers:
            print("\n== 2. The same under `dagster asset materialize` (multiprocess) ==")
        for size in sorted(set(args.cli_tickers)):
            cli_runs[size] = run_cli(work, f"cli_{size}", size, args.days)
            print_run(cli_runs[size])
            base = by_size.get(size)
            if base is not None and base.ok and cli_runs[size].ok:
                ratio = cli_runs[size].wall_s / base.wall_s
                print(f"  CLI / in-process wall: {ratio:.2f}x (target <= {CLI_RATIO_TARGET}x)")

        if args.features:
            print(f"\n== 3. Features step at {largest_size} x {args.days:,} ==")
            features = run_features_step(largest_size, args.days)

        if args.parity_tickers:
            print(f"\n== 4. Parity: Dagster vs kfp.local at {args.parity_tickers} tickers ==")
            parity = run_parity(
                work, args.parity_tickers, args.days, by_size.get(args.parity_tickers)
            )
            print(
                f"  kfp.local run: {fmt_s(parity.kfp_seconds)}; Dagster in-process: "
                f"{fmt_s(parity.dagster_seconds)}"
            )
            for name, model in (("kfp.local", parity.kfp_model), ("Dagster", parity.dagster_model)):
                if model:
                    print(
                        f"  {name:<9}: {candidate_label(model)}; test window "
                        f"{model['test_window']}; metrics {json.dumps(model['metrics'])}"
                    )
            for difference in parity.differences:
                print(f"  differs: {difference}")
            if parity.error:
                print("  error:\n" + "\n".join("    " + x for x in parity.error.splitlines()))
            print(f"  parity: {verdict(parity.ok)}")

        if args.reference:
            size = args.reference_tickers
            print(f"\n== 5. Reference candidate set at {size} x {args.days:,} (last) ==")
            reference = run_in_process(
                work, f"reference_{size}", size, args.days, reference_candidates()
            )
            print_run(reference)
    finally:
        if args.keep:
            print(f"\nkept the runs' folders under {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    largest = by_size.get(largest_size) if runs else None
    found = targets(
        largest,
        cli_runs.get(largest_size),
        reference,
        parity,
        by_size.get(args.reference_tickers),
    )
    print(f"\n== Scaling ({args.days:,} days per ticker) ==")
    print(table(SCALING_HEADER, scaling_rows(runs, cli_runs), left=(6,)))
    if reference is not None:
        same = by_size.get(reference.tickers)
        print(
            f"\n  reference set at {reference.tickers} tickers: "
            f"{fmt_s(reference.wall_s) if reference.ok else 'failed'}, chose "
            f"{candidate_label(reference.model)}, test accuracy {fmt_acc(reference.model)} "
            f"(default set: {candidate_label(same.model if same else None)}, "
            f"{fmt_acc(same.model if same else None)})"
        )
    print("\n== Targets ==")
    print(
        table(
            ["target", "measured", "goal", "verdict"],
            [[t.name, t.measured, t.target, verdict(t.ok)] for t in found],
        )
    )
    elapsed = time.time() - started
    print(f"\nload average at end: {load_average()}; benchmark took {fmt_s(elapsed)}")

    failed = [r.label for r in [*runs, *cli_runs.values(), reference] if r is not None and not r.ok]
    if args.json:
        report = {
            "days": args.days,
            "cpus": os.cpu_count(),
            "versions": versions(),
            "runs": [asdict(r) for r in runs],
            "cli_runs": [asdict(r) for r in cli_runs.values()],
            "reference": asdict(reference) if reference else None,
            "parity": asdict(parity) if parity else None,
            "features_step": features,
            "targets": [asdict(t) for t in found],
            "failed_runs": failed,
        }
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    if args.markdown:
        args.markdown.write_text(markdown(runs, cli_runs, reference, found, args.days))
        print(f"wrote {args.markdown}")
    if failed:
        print(f"failed runs: {', '.join(failed)}")
    return 1 if failed or not all(t.ok for t in found) else 0


if __name__ == "__main__":
    raise SystemExit(main())
