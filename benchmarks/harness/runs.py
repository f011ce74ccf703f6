"""The graph run three ways, each in a fresh measured child process on its own sandbox.

* :func:`in_process`: the job (or every asset) in one process, by ``execute_in_process`` /
  ``dagster.materialize``: what the nightly schedule's run worker does;
* :func:`cli`: ``dagster asset materialize``, as from a user's shell; its events read back from
  the sandbox's instance afterwards;
* :func:`kfp_local`: the exported pipeline under kfp.local (:func:`export` writes it first).

Every run returns a :class:`GraphRun`: wall time and memory of the process tree, the run's
Dagster events (none under kfp.local), the chosen model when the run reports it, the failure.
``memory=False`` measures wall time only: the /proc sampler takes a few percent of a core,
which a benchmark of wall times alone need not pay.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness.events import EventRow, StepTime, cli_run_events, step_times
from benchmarks.harness.measure import Measured, run_measured
from benchmarks.harness.models import candidate_label, fmt_acc
from benchmarks.harness.report import fmt_mem, fmt_s, table
from benchmarks.harness.sandbox import DAGSTER, MODULE, PYTHON, Sandbox

RUN_TIMEOUT_S = 4 * 3600
EXPORT_TIMEOUT_S = 600


@dataclass
class GraphRun:
    """One measured run of the graph."""

    label: str
    mode: str  # "in-process", "cli" or "kfp.local"
    ok: bool
    measured: Measured
    log: Path  # the child's output
    events: list[EventRow] = field(default_factory=list)
    model: dict[str, Any] | None = None
    error: str = ""

    @property
    def wall_s(self) -> float:
        return self.measured.seconds

    @property
    def timeline(self) -> tuple[float | None, list[StepTime]]:
        """The run's span (RUN_START -> end) and its steps, times from RUN_START."""
        return step_times(self.events)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def record(self) -> dict[str, Any]:
        """The run as JSON-ready figures (steps, not raw events)."""
        span, steps = self.timeline
        m = self.measured
        return {
            "label": self.label,
            "mode": self.mode,
            "ok": self.ok,
            "wall_s": m.seconds,
            "run_span_s": span,
            "peak_rss_bytes": m.tree_peak_bytes,
            "peak_pss_bytes": m.tree_peak_pss_bytes,
            "max_single_rss_bytes": m.single_peak_bytes,
            "max_processes": m.max_processes,
            "steps": [asdict(s) for s in steps],
            "model": self.model,
            "error": self.error,
        }


def in_process(
    sandbox: Sandbox,
    config: dict[str, Any],
    label: str,
    job: str | None = None,
    ephemeral: bool = False,
    timeout: float = RUN_TIMEOUT_S,
    memory: bool = True,
) -> GraphRun:
    """``job`` (default: every asset and check) by ``execute_in_process`` in a fresh process."""
    config_file, result_file = sandbox.root / "run_config.json", sandbox.root / "result.json"
    config_file.write_text(json.dumps(config))
    cmd = [PYTHON, "-m", "benchmarks.harness.child", "in-process", str(config_file)]
    cmd.append(str(result_file))
    if job is not None:
        cmd += ["--job", job]
    if ephemeral:
        cmd.append("--ephemeral")
    log = sandbox.root / "run.log"
    measured = run_measured(cmd, sandbox.env(), log, timeout, memory)
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    ok = measured.ok and bool(result.get("success"))
    return GraphRun(
        label,
        "in-process",
        ok,
        measured,
        log,
        [(at, key, kind) for at, key, kind in result.get("events", [])],
        result.get("model"),
        "" if ok else result.get("error") or measured.log,
    )


def cli(
    sandbox: Sandbox,
    config: dict[str, Any] | None,
    label: str,
    select: str = "*",
    timeout: float = RUN_TIMEOUT_S,
    memory: bool = True,
) -> GraphRun:
    """``dagster asset materialize --select SELECT`` (with ``config`` as a YAML file, if any);
    the run's events read back from the sandbox's instance."""
    import yaml

    cmd = [DAGSTER, "asset", "materialize", "-m", MODULE, "--select", select]
    if config is not None:
        config_file = sandbox.root / "run_config.yaml"
        config_file.write_text(yaml.safe_dump(config))
        cmd += ["-c", str(config_file)]
    log = sandbox.root / "run.log"
    measured = run_measured(cmd, sandbox.env(), log, timeout, memory)
    count, events = cli_run_events(str(sandbox.home))
    ok = measured.ok and count == 1
    error = "" if ok else measured.log or f"{count} runs in the instance, expected 1"
    return GraphRun(label, "cli", ok, measured, log, events, error=error)


def export(sandbox: Sandbox, package: Path, timeout: float = EXPORT_TIMEOUT_S) -> Measured:
    """``python -m exporters.kfp -o PACKAGE``, tracking in the sandbox's local store."""
    cmd = [PYTHON, "-m", "exporters.kfp", "-o", str(package), "--allow-local-tracking-uri"]
    return run_measured(cmd, sandbox.env(), sandbox.root / "export.log", timeout, memory=False)


def kfp_local(
    sandbox: Sandbox,
    package: Path,
    arguments: dict[str, Any],
    label: str,
    timeout: float = RUN_TIMEOUT_S,
    memory: bool = True,
) -> tuple[GraphRun, Path | None]:
    """``package`` under kfp.local with ``arguments``; the run and its folder of outputs."""
    arguments_file = sandbox.root / "arguments.json"
    arguments_file.write_text(json.dumps(arguments))
    root = sandbox.root / "pipeline_root"
    cmd = [PYTHON, "-m", "benchmarks.harness.child", "kfp-local", str(package), str(root)]
    cmd.append(str(arguments_file))
    log = sandbox.root / "kfp.log"
    measured = run_measured(cmd, sandbox.env(), log, timeout, memory)
    folders = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    run_dir = folders[0] if len(folders) == 1 else None
    error = "" if measured.ok else f"kfp.local run failed:\n{measured.log}"
    return GraphRun(label, "kfp.local", measured.ok, measured, log, error=error), run_dir


def print_run(run: GraphRun, size: str) -> None:
    """The run in a few lines, then its steps (with their workers' launch when forked)."""
    m = run.measured
    print(f"\n  [{run.label}] {run.mode}, {size}: {'ok' if run.ok else 'FAILED'}")
    span, steps = run.timeline
    print(
        f"  wall {fmt_s(run.wall_s)} (run span RUN_START->end {fmt_s(span)}); peak memory "
        f"{fmt_mem(m.tree_peak_pss_bytes)} PSS, {fmt_mem(m.tree_peak_bytes)} summed RSS (process "
        f"tree, up to {m.max_processes} processes; largest single process "
        f"{fmt_mem(m.single_peak_bytes)})"
    )
    if run.model:
        print(f"  chosen: {candidate_label(run.model)}; test accuracy {fmt_acc(run.model)}")
    if steps:
        forked = any(s.worker_launch is not None for s in steps)
        rows = [[s.key, s.status, fmt_s(s.start), fmt_s(s.seconds)] for s in steps]
        if forked:
            rows = [[*row, fmt_s(s.worker_launch)] for row, s in zip(rows, steps, strict=True)]
        header = ["step", "status", "starts at", "body", *(["worker launch"] if forked else [])]
        print(table(header, rows, left=(0, 1)))
    if run.error:
        print("  error:\n" + "\n".join("    " + line for line in run.error.splitlines()))
