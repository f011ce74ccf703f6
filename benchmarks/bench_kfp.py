"""Cost of the KFP export: the exporter's own time, and a kfp.local run against Dagster runs.

Two measurements, each in fresh child processes on fresh sandboxes (``benchmarks/harness``):

* ``export``: ``python -m exporters.kfp -o pipeline.yaml`` against the floor it cannot go
  under, ``python -c "import stock_assets.definitions, kfp"``; interleaved repetitions, one
  untimed warm-up of each. The difference of the medians is the exporter's own cost
  (target: <= 0.5 s).
* ``run``: the whole pipeline with its default parameters, run by ``dagster asset materialize
  --select '*'`` (the default executor, as from a user's shell), by ``dagster.materialize`` in
  one process (in-process executor, on an ephemeral instance, for reference) and by kfp.local
  (SubprocessRunner) from the exported YAML. Every run pays the same first-run costs (creating
  the MLflow schema). Target: kfp.local / Dagster CLI <= 1.5x.

Per-step breakdowns come from the Dagster event log (the CLI's read back from its instance) and,
for kfp.local, which keeps none, from its output.

Run: ``.venv/bin/python benchmarks/bench_kfp.py [--repeat N] [--only export|run]``; exit code 1
if a child process failed or a target was missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, from anywhere

from benchmarks.harness import runs  # noqa: E402
from benchmarks.harness.events import (  # noqa: E402
    KfpTask,
    StepTime,
    between,
    kfp_tasks,
    phases,
    run_bounds,
    step_times,
)
from benchmarks.harness.measure import load_average, run_measured  # noqa: E402
from benchmarks.harness.report import fmt_s, table, verdict  # noqa: E402
from benchmarks.harness.sandbox import MODULE, PYTHON, Sandbox, work_dir  # noqa: E402

EXPORT_TARGET_S = 0.5
RATIO_TARGET = 1.5
EXPORT_TIMEOUT_S = 300
RUN_TIMEOUT_S = 1800
EXPORT = [PYTHON, "-m", "exporters.kfp"]


def fmt(seconds: float | None) -> str:
    return fmt_s(seconds, digits=2)


class BenchError(RuntimeError):
    """A child process failed or its output could not be read."""


def bench_export(repeat: int) -> bool:
    """Interleaved timings of the exporter and of its import floor; True if the target holds."""
    print(f"\n== Exporter cost: {repeat} interleaved repetition(s) after one warm-up each ==")
    with work_dir("bench_kfp_export_") as work:
        sandbox = Sandbox(work / "export")
        output = sandbox.root / "pipeline.yaml"
        commands = {
            "import floor": [PYTHON, "-c", f"import {MODULE}, kfp"],
            # the sandbox's store is local: the exporter refuses it for a cluster, not kfp.local
            "exporter": [*EXPORT, "-o", str(output), "--allow-local-tracking-uri"],
        }
        print(f"  import floor: python -c 'import {MODULE}, kfp'")
        print("  exporter:     python -m exporters.kfp -o pipeline.yaml --allow-local-tracking-uri")
        times: dict[str, list[float]] = {label: [] for label in commands}
        order = list(commands)
        for i in range(-1, repeat):  # -1: the untimed warm-up
            for label in order if i % 2 == 0 else order[::-1]:
                output.unlink(missing_ok=True)
                log = sandbox.root / "export.log"
                done = run_measured(commands[label], sandbox.env(), log, EXPORT_TIMEOUT_S, False)
                if not done.ok or (label == "exporter" and not output.is_file()):
                    print(f"  FAILED: {label}: exit code {done.returncode}\n{done.log}")
                    return False
                if i >= 0:
                    times[label].append(done.seconds)

    rows = [
        [label, fmt(statistics.median(ts)), fmt(min(ts)), fmt(max(ts))]
        for label, ts in times.items()
    ]
    print(table(["command", "median", "min", "max"], rows))
    cost_median = statistics.median(times["exporter"]) - statistics.median(times["import floor"])
    cost_min = min(times["exporter"]) - min(times["import floor"])
    ok = cost_median <= EXPORT_TARGET_S
    print(
        f"  exporter's own cost: {fmt(cost_median)} (medians), {fmt(cost_min)} (mins); "
        f"target <= {fmt(EXPORT_TARGET_S)}: {verdict(ok)}"
    )
    return ok


@dataclass
class RunResult:
    """A whole run: wall time, phases (startup, run, exit), steps or tasks since its launch."""

    variant: str
    seconds: float
    phases: dict[str, float]
    steps: dict[str, StepTime]
    tasks: dict[str, KfpTask]
    note: str = ""


def dagster_result(run: runs.GraphRun) -> RunResult:
    """Phases and steps of a Dagster run from its event log, in seconds after its launch."""
    if not run.ok:
        raise BenchError(f"{run.label}: {run.error}")
    launched = run.measured.launched
    start, end = (None if t is None else t - launched for t in run_bounds(run.events))
    found = phases(start, end, run.wall_s)
    if found is None:
        raise BenchError(f"{run.label}: RUN_START/RUN_SUCCESS missing from its event log")
    _, steps = step_times(run.events, origin=launched)
    return RunResult(run.label, run.wall_s, found, {s.key: s for s in steps}, {})


CLI = "dagster CLI (default executor)"
IN_PROCESS = "dagster in-process"
KFP = "kfp.local (subprocess)"


def run_kfp_local(sandbox: Sandbox) -> RunResult:
    """Export the YAML with this sandbox's tracking store, then run it with kfp.local."""
    package = sandbox.root / "pipeline.yaml"
    exported = runs.export(sandbox, package, EXPORT_TIMEOUT_S)
    if not exported.ok:
        raise BenchError(f"export for kfp.local: exit code {exported.returncode}\n{exported.log}")
    run, _ = runs.kfp_local(sandbox, package, {}, KFP, RUN_TIMEOUT_S, memory=False)
    if not run.ok:
        raise BenchError(f"{KFP}: {run.error}")
    log = kfp_tasks(run.output(), run.measured.launched)
    found = phases(log.pipeline_start, log.pipeline_end, run.wall_s)
    if found is None:
        raise BenchError(f"{KFP}: pipeline start/end lines not found in kfp.local's output")
    note = f"export beforehand (not included): {fmt(exported.seconds)}"
    return RunResult(KFP, run.wall_s, found, {}, log.tasks, note)


# Wall times only (memory=False): the three are compared by time, none pays the sampler.
VARIANTS: dict[str, Callable[[Sandbox], RunResult]] = {
    CLI: lambda box: dagster_result(runs.cli(box, None, CLI, "*", RUN_TIMEOUT_S, memory=False)),
    IN_PROCESS: lambda box: dagster_result(
        runs.in_process(box, {}, IN_PROCESS, None, True, RUN_TIMEOUT_S, memory=False)
    ),
    KFP: run_kfp_local,
}


def bench_run(repeat: int) -> bool:
    """Time each variant ``repeat`` times (rotating the order); True if the ratio target holds."""
    print(f"\n== Run cost: whole pipeline, default parameters, {repeat} repetition(s) ==")
    print(
        "  Every run uses a fresh sandbox (DAGSTER_HOME, STOCK_ASSETS_DATA_DIR, MLflow SQLite "
        "store, pipeline root),\n  so each pays the same first-run costs (MLflow schema "
        "creation). Wall = whole child process, interpreter start included."
    )
    results: dict[str, list[RunResult]] = {name: [] for name in VARIANTS}
    failed = False
    names = list(VARIANTS)
    with work_dir("bench_kfp_run_") as work:
        for i in range(repeat):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                try:
                    sandbox = Sandbox(work / f"{i}_{names.index(name)}")
                    results[name].append(VARIANTS[name](sandbox))
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
        last = rs[-1].phases
        wall_min = min(r.seconds for r in rs)
        rows.append([name, fmt(medians[name]), fmt(wall_min)])
        rows[-1] += [fmt(last["startup"]), fmt(last["run"]), fmt(last["exit"])]
    print()
    print(table(["variant", "wall median", "wall min", "startup", "run", "exit"], rows))
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


def print_breakdown(last: dict[str, RunResult]) -> None:
    """Per-task and per-step tables of the last repetition, then a side-by-side by KFP task."""
    kfp, cli, inproc = last[KFP], last[CLI], last[IN_PROCESS]

    print("\n  kfp.local tasks (one Python process each; times from kfp.local's output)")
    rows = []
    for task in sorted(kfp.tasks.values(), key=lambda t: t.launch or 0.0):
        name = task.name + (f" x{task.runs}" if task.runs > 1 else "")
        rows.append([name, task.status, fmt(task.launch), fmt(between(task.launch, task.end))])
        rows[-1] += [fmt(between(task.launch, task.io_start))]
        rows[-1] += [fmt(between(task.io_start, task.io_end)), fmt(task.body)]
        rows[-1] += [fmt(between(task.io_end, task.end))]
        rows[-1] += [", ".join(f"{k} {fmt(v)}" for k, v in task.inner.items()) or "-"]
    header = ["task", "status", "starts at", "wall", "to input", "executor", "steps", "exit"]
    print(table([*header, "dagster steps inside"], rows, left=(0, 8)))
    print(
        "  to input = task start -> executor got its input (interpreter + kfp start); executor ="
        " -> output\n  written (imports, Definitions load, dagster.materialize on an ephemeral "
        "instance, artifact I/O);\n  steps = sum of the Dagster step bodies inside "
        "('Finished execution of step ... in X');\n  exit = output written -> kfp.local "
        "sees the task finish (interpreter shutdown)"
    )

    for result, forked in ((cli, True), (inproc, False)):
        print(f"\n  {result.variant} steps (from the Dagster event log)")
        rows = []
        for step in sorted(result.steps.values(), key=lambda s: s.launch or 0.0):
            row = [step.key, step.status, fmt(step.launch), fmt(step.seconds), fmt(step.end)]
            if forked:
                row.insert(3, fmt(between(step.launch, step.start)))
            rows.append(row)
        header = ["step", "status", "starts at", "body", "ends at"]
        if forked:
            header.insert(3, "worker launch")
        print(table(header, rows))
    print(
        "  worker launch = STEP_WORKER_STARTING -> STEP_START (a new process importing the "
        "Definitions);\n  body = STEP_START -> STEP_SUCCESS; times relative to the child process "
        "launch"
    )

    print("\n  Side by side, grouped by kfp.local task (the Dagster steps each task ran)")
    rows = []
    grouped: set[str] = set()
    for task in sorted(kfp.tasks.values(), key=lambda t: t.launch or 0.0):
        keys = list(task.inner)
        grouped.update(keys)
        rows.append(side_by_side(task.name, task, keys, cli, inproc))
    rest = [k for k in cli.steps if k not in grouped]
    if rest:
        rows.append(side_by_side("(no kfp task)", None, rest, cli, inproc))
    header = ["kfp task", "kfp wall", "kfp steps", "cli span", "cli launch+body", "in-proc body"]
    print(table(header, rows))
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


def side_by_side(
    label: str, task: KfpTask | None, keys: list[str], cli: RunResult, inproc: RunResult
) -> list[str]:
    """One row of the grouped comparison."""
    kfp_wall = between(task.launch, task.end) if task else None
    cli_steps = [cli.steps[k] for k in keys if k in cli.steps]
    starts = [s.launch for s in cli_steps if s.launch is not None]
    ends = [s.end for s in cli_steps if s.end is not None]
    span = max(ends) - min(starts) if starts and ends else None
    work = sum(between(s.launch, s.end) or 0.0 for s in cli_steps)
    inproc_body = sum(inproc.steps[k].seconds or 0.0 for k in keys if k in inproc.steps)
    return [
        label,
        fmt(kfp_wall),
        fmt(task.body if task else None),
        fmt(span),
        fmt(work if cli_steps else None),
        fmt(inproc_body if keys else None),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, help="repetitions (default: 5 for export, 1 for run)")
    parser.add_argument("--only", choices=["export", "run"], help="one of the two measurements")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be >= 1")

    print(f"python: Python {sys.version.split()[0]}; cpus: {os.cpu_count()}")
    print(f"load average at start: {load_average()}")
    ok = True
    if args.only in (None, "export"):
        ok &= bench_export(args.repeat or 5)
    if args.only in (None, "run"):
        ok &= bench_run(args.repeat or 1)
    print(f"\nload average at end: {load_average()}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
