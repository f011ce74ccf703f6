"""Cost of the KFP export: the exporter's own time, and a kfp.local run against Dagster runs.

Two measurements, each in fresh subprocesses of the venv's Python, from the project root:

* ``export``: ``python -m exporters.kfp -o pipeline.yaml`` against the floor it cannot go
  under, ``python -c "import stock_assets.definitions, kfp"``; interleaved repetitions, one
  untimed warm-up of each. The difference of the medians is the exporter's own cost
  (target: <= 0.5 s).
* ``run``: the whole pipeline with its default parameters, run by ``dagster asset materialize
  --select '*'`` (the default executor, as from a user's shell), by ``dagster.materialize`` in
  one process (in-process executor, for reference) and by kfp.local (SubprocessRunner) from the
  exported YAML. Every run gets fresh temporary directories (DAGSTER_HOME, data directory,
  MLflow SQLite store, pipeline root), so each pays the same first-run costs (creating the
  MLflow schema). Target: kfp.local / Dagster CLI <= 1.5x.

Per-step breakdowns come from the Dagster event log (CLI and in-process runs; the CLI's is read
back from its DAGSTER_HOME afterwards) and from kfp.local's log lines.

Run: ``.venv/bin/python benchmarks/bench_kfp.py [--repeat N] [--only export|run]``; exit code 1
if a subprocess failed or a target was missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_VENV_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
# Not resolved: the venv's python is a symlink, and resolving it would leave the venv.
PYTHON = str(_VENV_PYTHON if _VENV_PYTHON.exists() else Path(sys.executable))
DAGSTER = str(Path(PYTHON).with_name("dagster"))
MODULE = "stock_assets.definitions"

EXPORT_TARGET_S = 0.5
RATIO_TARGET = 1.5
EXPORT_TIMEOUT_S = 300
RUN_TIMEOUT_S = 1800
EVENTS_MARKER = "BENCH_EVENTS_JSON:"

# Prints the Dagster events of a run as JSON: (timestamp, step key, event type).
_DUMP_EVENTS = f"""
def dump_events(instance, run_id):
    import json
    rows = [
        (e.timestamp, e.step_key, e.dagster_event.event_type_value)
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None
    ]
    print({EVENTS_MARKER!r} + json.dumps(rows), flush=True)
"""

# The in-process run: dagster.materialize on an ephemeral instance, then its event log.
IN_PROCESS_CODE = (
    _DUMP_EVENTS
    + f"""
import sys
from dagster import DagsterInstance, materialize
from {MODULE} import defs

instance = DagsterInstance.ephemeral()
result = materialize(
    [*defs.assets, *defs.asset_checks],
    resources=defs.resources,
    instance=instance,
    raise_on_error=False,
)
dump_events(instance, result.run_id)
sys.exit(0 if result.success else 1)
"""
)

# After a CLI run: the event log of the (only) run in $DAGSTER_HOME.
READ_CLI_EVENTS_CODE = (
    _DUMP_EVENTS
    + """
from dagster import DagsterInstance

with DagsterInstance.get() as instance:
    (run,) = instance.get_runs()
    dump_events(instance, run.run_id)
"""
)

# The kfp.local run of an exported YAML: argv = [package, pipeline_root].
KFP_LOCAL_CODE = """
import sys
from kfp import components, local

local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
components.load_component_from_file(sys.argv[1])()
"""

ANSI = re.compile(r"\x1b\[[0-9;]*m")
KFP_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) - [A-Z]+ - (.*)$")
KFP_EXECUTING = re.compile(r"Executing task '([^']+)'")
KFP_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
KFP_PIPELINE_START = re.compile(r"Running pipeline: '([^']+)'")
KFP_PIPELINE_END = re.compile(r"Pipeline '([^']+)' finished with status (\w+)")
KFP_EXECUTOR = re.compile(
    r"\[KFP Executor (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+\]: "
    r"(Got executor_input|Wrote executor output)"
)
DAGSTER_STEP_DONE = re.compile(r'Finished execution of step "([^"]+)" in ([0-9.hms]+?)\.?\s*$')
DURATION_PART = re.compile(r"([0-9.]+)(ms|h|m|s)")


class BenchError(RuntimeError):
    """A subprocess failed or its output could not be read."""


# --------------------------------------------------------------------------------------
# Subprocesses
# --------------------------------------------------------------------------------------


@dataclass
class Timed:
    """One finished subprocess: its wall time, launch epoch and output."""

    label: str
    seconds: float
    launched: float
    stdout: str
    stderr: str


def tail(text: str | bytes | None, lines: int = 40) -> str:
    """The last ``lines`` lines of a subprocess stream."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").rstrip().splitlines()[-lines:]) or "(empty)"


def run(label: str, cmd: Sequence[str], env: dict[str, str], timeout: float) -> Timed:
    """Run ``cmd`` from the project root; raise BenchError with its output's tail on failure."""
    launched = time.time()
    start = time.perf_counter()
    try:
        done = subprocess.run(
            list(cmd),
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise BenchError(
            f"{label}: timed out after {timeout:.0f} s\n--- stderr tail ---\n{tail(error.stderr)}"
        ) from error
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchError(
            f"{label}: exit code {done.returncode}\n--- stderr tail ---\n{tail(done.stderr)}"
            f"\n--- stdout tail ---\n{tail(done.stdout, 15)}"
        )
    return Timed(label, seconds, launched, done.stdout, done.stderr)


def bench_env(tmp: Path) -> dict[str, str]:
    """This environment without MLflow/Dagster/data settings, pointed at ``tmp`` instead."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "DAGSTER_")) and k != "STOCK_ASSETS_DATA_DIR"
    }
    (tmp / "dagster_home").mkdir(parents=True, exist_ok=True)
    env["DAGSTER_HOME"] = str(tmp / "dagster_home")
    env["STOCK_ASSETS_DATA_DIR"] = str(tmp / "data")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    return env


# --------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.0f} ms" if abs(seconds) < 1 else f"{seconds:.2f} s"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def print_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)
) -> None:
    """Columns in ``left`` left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i in left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print("  " + line(header))
    print("  " + "-" * len(line(header)))
    for row in rows:
        print("  " + line(row))


# --------------------------------------------------------------------------------------
# 1. Exporter cost
# --------------------------------------------------------------------------------------


def bench_export(repeat: int) -> bool:
    """Interleaved timings of the exporter and of its import floor; True if the target holds."""
    print(f"\n== Exporter cost: {repeat} interleaved repetition(s) after one warm-up each ==")
    with tempfile.TemporaryDirectory(prefix="bench_kfp_export_") as name:
        tmp = Path(name)
        env = bench_env(tmp)
        output = tmp / "pipeline.yaml"
        commands = {
            "import floor": [PYTHON, "-c", f"import {MODULE}, kfp"],
            "exporter": [PYTHON, "-m", "exporters.kfp", "-o", str(output)],
        }
        print(f"  import floor: python -c 'import {MODULE}, kfp'")
        print(f"  exporter:     python -m exporters.kfp -o {output}")
        times: dict[str, list[float]] = {label: [] for label in commands}
        try:
            for label, cmd in commands.items():
                run(f"{label} (warm-up)", cmd, env, EXPORT_TIMEOUT_S)
            for i in range(repeat):
                order = list(commands) if i % 2 == 0 else list(reversed(commands))
                for label in order:
                    output.unlink(missing_ok=True)
                    timed = run(label, commands[label], env, EXPORT_TIMEOUT_S)
                    if label == "exporter" and not output.is_file():
                        raise BenchError(f"exporter exited 0 but did not write {output}")
                    times[label].append(timed.seconds)
        except BenchError as error:
            print(f"  FAILED: {error}")
            return False

    rows = [
        [label, fmt(statistics.median(ts)), fmt(min(ts)), fmt(max(ts))]
        for label, ts in times.items()
    ]
    print_table(["command", "median", "min", "max"], rows)
    cost_median = statistics.median(times["exporter"]) - statistics.median(times["import floor"])
    cost_min = min(times["exporter"]) - min(times["import floor"])
    ok = cost_median <= EXPORT_TARGET_S
    print(
        f"  exporter's own cost: {fmt(cost_median)} (medians), {fmt(cost_min)} (mins); "
        f"target <= {fmt(EXPORT_TARGET_S)}: {verdict(ok)}"
    )
    return ok


# --------------------------------------------------------------------------------------
# 2. Run cost: parsing
# --------------------------------------------------------------------------------------


@dataclass
class Step:
    """One Dagster step, or one kfp.local task, with times relative to its run's launch."""

    name: str
    status: str = ""
    launch: float | None = None  # worker/task start
    start: float | None = None  # step body start (Dagster)
    end: float | None = None
    body: float | None = None  # step body duration (sum of inner steps for a KFP task)
    inner: dict[str, float] = field(default_factory=dict)  # KFP: Dagster step -> duration
    io_start: float | None = None  # KFP: the task's executor got its input
    io_end: float | None = None  # KFP: the task's executor wrote its output


@dataclass
class RunResult:
    """A whole run: wall time, phases (startup, run, exit) and steps."""

    variant: str
    seconds: float
    phases: dict[str, float]
    steps: dict[str, Step]
    note: str = ""


def parse_duration(text: str) -> float:
    """Seconds of a Dagster ``format_duration`` string: 0.83ms, 533ms, 5.6s, 4m52s, 1h4m."""
    scale = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = DURATION_PART.findall(text)
    if not parts:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(number) * scale[unit] for number, unit in parts)


def events_from(timed: Timed) -> list[tuple[float, str | None, str]]:
    """The events a helper printed after EVENTS_MARKER."""
    for line in reversed(timed.stdout.splitlines()):
        if line.startswith(EVENTS_MARKER):
            return [tuple(row) for row in json.loads(line[len(EVENTS_MARKER) :])]
    raise BenchError(f"{timed.label}: no event log in its output\n{tail(timed.stdout, 15)}")


def dagster_run(
    variant: str, timed: Timed, events: list[tuple[float, str | None, str]]
) -> RunResult:
    """Phases and steps of a Dagster run from its event log."""
    steps: dict[str, Step] = {}
    run_start = run_end = None
    for ts, key, raw_kind in events:
        rel = ts - timed.launched
        kind = raw_kind.replace("PIPELINE_", "RUN_")  # RUN_START's value is PIPELINE_START
        if kind == "RUN_START":
            run_start = rel
        elif kind in ("RUN_SUCCESS", "RUN_FAILURE"):
            run_end = rel
        if key is None:
            continue
        step = steps.setdefault(key, Step(key))
        if kind == "STEP_WORKER_STARTING":
            step.launch = rel
        elif kind == "STEP_START":
            step.start = rel
            step.launch = rel if step.launch is None else step.launch
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            step.end = rel
            step.status = kind.removeprefix("STEP_")
            if step.start is not None:
                step.body = rel - step.start
    if run_start is None or run_end is None:
        raise BenchError(f"{timed.label}: RUN_START/RUN_SUCCESS missing from its event log")
    phases = {
        "startup": run_start,
        "run": run_end - run_start,
        "exit": timed.seconds - run_end,
    }
    return RunResult(variant, timed.seconds, phases, steps)


def kfp_run(variant: str, timed: Timed) -> RunResult:
    """Phases and tasks of a kfp.local run from its log lines (local HH:MM:SS.mmm clock)."""
    launched_at = datetime.fromtimestamp(timed.launched)

    def rel(clock: str) -> float:
        moment = datetime.combine(
            launched_at.date(), datetime.strptime(clock, "%H:%M:%S.%f").time()
        )
        if moment < launched_at - timedelta(hours=1):  # past midnight
            moment += timedelta(days=1)
        return (moment - launched_at).total_seconds()

    steps: dict[str, Step] = {}
    current: Step | None = None
    pipeline_start = pipeline_end = None
    for raw in (timed.stdout + "\n" + timed.stderr).splitlines():
        line = ANSI.sub("", raw)
        outer = KFP_LINE.match(line)
        if outer:
            clock, message = outer.groups()
            if m := KFP_PIPELINE_START.search(message):
                pipeline_start = rel(clock)
            elif m := KFP_PIPELINE_END.search(message):
                pipeline_end = rel(clock)
            elif m := KFP_EXECUTING.search(message):
                current = steps.setdefault(m.group(1), Step(m.group(1)))
                current.launch = rel(clock)
            elif m := KFP_FINISHED.search(message):
                step = steps.setdefault(m.group(1), Step(m.group(1)))
                step.end, step.status = rel(clock), m.group(2)
                current = None
        elif current is not None and (m := DAGSTER_STEP_DONE.search(line)):
            current.inner[m.group(1)] = parse_duration(m.group(2))
        elif current is not None and (m := KFP_EXECUTOR.search(line)):
            moment = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            offset = (moment - launched_at).total_seconds()
            if m.group(2).startswith("Got"):
                current.io_start = offset
            else:
                current.io_end = offset
    if pipeline_start is None or pipeline_end is None:
        raise BenchError(f"{timed.label}: pipeline start/end lines not found in kfp.local's log")
    for step in steps.values():
        step.body = sum(step.inner.values()) if step.inner else None
    phases = {
        "startup": pipeline_start,
        "run": pipeline_end - pipeline_start,
        "exit": timed.seconds - pipeline_end,
    }
    return RunResult(variant, timed.seconds, phases, steps)


# --------------------------------------------------------------------------------------
# 2. Run cost: the three variants
# --------------------------------------------------------------------------------------

CLI = "dagster CLI (default executor)"
IN_PROCESS = "dagster in-process"
KFP = "kfp.local (subprocess)"


def run_dagster_cli(tmp: Path) -> RunResult:
    """``dagster asset materialize --select '*'``, then its event log from DAGSTER_HOME."""
    env = bench_env(tmp)
    cmd = [DAGSTER, "asset", "materialize", "--select", "*", "-m", MODULE]
    timed = run(CLI, cmd, env, RUN_TIMEOUT_S)
    events = events_from(run("read CLI event log", [PYTHON, "-c", READ_CLI_EVENTS_CODE], env, 300))
    return dagster_run(CLI, timed, events)


def run_dagster_in_process(tmp: Path) -> RunResult:
    """``dagster.materialize`` of every asset and check in one fresh process."""
    timed = run(IN_PROCESS, [PYTHON, "-c", IN_PROCESS_CODE], bench_env(tmp), RUN_TIMEOUT_S)
    return dagster_run(IN_PROCESS, timed, events_from(timed))


def run_kfp_local(tmp: Path) -> RunResult:
    """Export the YAML with this run's MLFLOW_TRACKING_URI, then run it with kfp.local."""
    env = bench_env(tmp)
    package = tmp / "pipeline.yaml"
    exported = run(
        "export for kfp.local",
        [PYTHON, "-m", "exporters.kfp", "-o", str(package), "--allow-local-tracking-uri"],
        env,
        EXPORT_TIMEOUT_S,
    )
    root = tmp / "pipeline_root"
    timed = run(KFP, [PYTHON, "-c", KFP_LOCAL_CODE, str(package), str(root)], env, RUN_TIMEOUT_S)
    result = kfp_run(KFP, timed)
    result.note = f"export beforehand (not included): {fmt(exported.seconds)}"
    return result


VARIANTS: dict[str, Callable[[Path], RunResult]] = {
    CLI: run_dagster_cli,
    IN_PROCESS: run_dagster_in_process,
    KFP: run_kfp_local,
}


def bench_run(repeat: int) -> bool:
    """Time each variant ``repeat`` times (rotating the order); True if the ratio target holds."""
    print(f"\n== Run cost: whole pipeline, default parameters, {repeat} repetition(s) ==")
    print(
        "  Every run uses fresh temp dirs (DAGSTER_HOME, STOCK_ASSETS_DATA_DIR, MLflow SQLite "
        "store, pipeline root),\n  so each pays the same first-run costs (MLflow schema "
        "creation). Wall = whole subprocess, interpreter start included."
    )
    results: dict[str, list[RunResult]] = {name: [] for name in VARIANTS}
    failed = False
    names = list(VARIANTS)
    for i in range(repeat):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            with tempfile.TemporaryDirectory(prefix="bench_kfp_run_") as tmp:
                try:
                    results[name].append(VARIANTS[name](Path(tmp)))
                except BenchError as error:
                    failed = True
                    print(f"  FAILED ({name}, repetition {i + 1}): {error}")
            done = results[name][-1].seconds if results[name] else None
            print(f"  [{i + 1}/{repeat}] {name}: {fmt(done)}  (load average {load_average()})")

    medians = {n: statistics.median(r.seconds for r in rs) for n, rs in results.items() if rs}
    rows = []
    for name, rs in results.items():
        if not rs:
            rows.append([name, "failed", "-", "-", "-", "-"])
            continue
        last = rs[-1]
        rows.append(
            [
                name,
                fmt(medians[name]),
                fmt(min(r.seconds for r in rs)),
                fmt(last.phases["startup"]),
                fmt(last.phases["run"]),
                fmt(last.phases["exit"]),
            ]
        )
    print()
    print_table(["variant", "wall median", "wall min", "startup", "run", "exit"], rows)
    print(
        "  startup = launch -> RUN_START / 'Running pipeline'; run = -> RUN_SUCCESS / "
        "'Pipeline finished'; exit = -> process end (last repetition)"
    )
    for rs in results.values():
        if rs and rs[-1].note:
            print(f"  {rs[-1].variant}: {rs[-1].note}")

    ok = not failed
    if KFP in medians and CLI in medians:
        ratio = medians[KFP] / medians[CLI]
        ok = ok and ratio <= RATIO_TARGET
        print(
            f"\n  kfp.local / Dagster CLI:        {ratio:.2f}x  "
            f"(target <= {RATIO_TARGET}x: {verdict(ratio <= RATIO_TARGET)})"
        )
    if KFP in medians and IN_PROCESS in medians:
        print(f"  kfp.local / Dagster in-process: {medians[KFP] / medians[IN_PROCESS]:.2f}x")

    if all(results.values()):
        print_breakdown({name: rs[-1] for name, rs in results.items()})
    return ok


# --------------------------------------------------------------------------------------
# 2. Run cost: per-step breakdown
# --------------------------------------------------------------------------------------


def print_breakdown(last: dict[str, RunResult]) -> None:
    """Per-task and per-step tables of the last repetition, then a side-by-side by KFP task."""
    kfp, cli, inproc = last[KFP], last[CLI], last[IN_PROCESS]

    print("\n  kfp.local tasks (one Python process each; times from kfp.local's log lines)")
    rows = []
    for step in sorted(kfp.steps.values(), key=lambda s: s.launch or 0.0):
        rows.append(
            [
                step.name,
                step.status,
                fmt(step.launch),
                fmt(between(step.launch, step.end)),
                fmt(between(step.launch, step.io_start)),
                fmt(between(step.io_start, step.io_end)),
                fmt(step.body),
                fmt(between(step.io_end, step.end)),
                ", ".join(f"{k} {fmt(v)}" for k, v in step.inner.items()) or "-",
            ]
        )
    header = ["task", "status", "starts at", "wall", "to input", "executor", "steps", "exit"]
    print_table([*header, "dagster steps inside"], rows, left=(0, 8))
    print(
        "  to input = task start -> executor got its input (interpreter + kfp start); executor ="
        " -> output\n  written (imports, Definitions load, dagster.materialize on an ephemeral "
        "instance, artifact I/O);\n  steps = sum of the Dagster step bodies inside "
        "('Finished execution of step ... in X');\n  exit = output written -> kfp.local "
        "sees the task finish (interpreter shutdown)"
    )

    for result, launch_note in ((cli, True), (inproc, False)):
        print(f"\n  {result.variant} steps (from the Dagster event log)")
        rows = []
        for step in sorted(result.steps.values(), key=lambda s: s.launch or 0.0):
            launch = between(step.launch, step.start)
            row = [step.name, step.status, fmt(step.launch), fmt(step.body), fmt(step.end)]
            if launch_note:
                row.insert(3, fmt(launch))
            rows.append(row)
        header = ["step", "status", "starts at", "body", "ends at"]
        if launch_note:
            header.insert(3, "worker launch")
        print_table(header, rows)
    print(
        "  worker launch = STEP_WORKER_STARTING -> STEP_START (a new process importing the "
        "Definitions);\n  body = STEP_START -> STEP_SUCCESS; times relative to the subprocess "
        "launch"
    )

    print("\n  Side by side, grouped by kfp.local task (the Dagster steps each task ran)")
    rows = []
    grouped: set[str] = set()
    for task in sorted(kfp.steps.values(), key=lambda s: s.launch or 0.0):
        keys = list(task.inner)
        grouped.update(keys)
        rows.append(side_by_side(task.name, task, keys, cli, inproc))
    rest = [k for k in cli.steps if k not in grouped]
    if rest:
        rows.append(side_by_side("(no kfp task)", None, rest, cli, inproc))
    print_table(
        ["kfp task", "kfp wall", "kfp steps", "cli span", "cli launch+body", "in-proc body"],
        rows,
    )
    print(
        "  cli span = first worker launch -> last step end of the group (its checks run in "
        "parallel);\n  cli launch+body = summed over the group's steps; in-proc body = summed "
        "step bodies"
    )
    if rest:
        print(
            f"  (no kfp task) = Dagster steps no kfp.local task ran ({', '.join(rest)}): a task "
            "under a false dsl.If\n  is skipped, while Dagster still runs the step "
            "(deployed_model returns nothing on a rejection)"
        )


def between(start: float | None, end: float | None) -> float | None:
    """``end - start``, or None if either is unknown."""
    return None if start is None or end is None else end - start


def side_by_side(
    label: str, task: Step | None, keys: list[str], cli: RunResult, inproc: RunResult
) -> list[str]:
    """One row of the grouped comparison."""
    kfp_wall = between(task.launch, task.end) if task else None
    cli_steps = [cli.steps[k] for k in keys if k in cli.steps]
    starts = [s.launch for s in cli_steps if s.launch is not None]
    ends = [s.end for s in cli_steps if s.end is not None]
    span = max(ends) - min(starts) if starts and ends else None
    work = sum(between(s.launch, s.end) or 0.0 for s in cli_steps)
    inproc_body = sum(inproc.steps[k].body or 0.0 for k in keys if k in inproc.steps)
    return [
        label,
        fmt(kfp_wall),
        fmt(task.body if task else None),
        fmt(span),
        fmt(work if cli_steps else None),
        fmt(inproc_body if keys else None),
    ]


# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, help="repetitions (default: 5 for export, 1 for run)")
    parser.add_argument("--only", choices=["export", "run"], help="one of the two measurements")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be >= 1")

    print(f"python: {PYTHON} (Python {sys.version.split()[0]}); cwd: {PROJECT_ROOT}")
    print(f"cpus: {os.cpu_count()}; load average at start: {load_average()}")
    ok = True
    if args.only in (None, "export"):
        ok &= bench_export(args.repeat or 5)
    if args.only in (None, "run"):
        ok &= bench_run(args.repeat or 1)
    print(f"\nload average at end: {load_average()}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
