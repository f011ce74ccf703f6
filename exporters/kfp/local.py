"""``python -m exporters.kfp.local``: export the pipeline and run it under kfp.local, no cluster.

The Definitions' pipeline is exported to a temporary folder (the exporter's own functions), run
with ``kfp.local.SubprocessRunner(use_venv=False)`` in this Python environment, and summed up
in a few lines: each task with its state and seconds, the run's outcome and, when the project
has a per-run tracking resource (``exporters/kfp/protocols.py``), its MLflow run found by the
tag ``kfp_run_id``. kfp.local's own output (every task's log) goes to ``kfp-local.log``.

The tasks log to the tracking store the environment names (``MLFLOW_TRACKING_URI``, else the
project's default): the exported YAML carries no tracking URI, the tasks inherit this process's
environment. Exit status 0 when the pipeline succeeded, 1 when it failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exporters.kfp.__main__ import UsageError, parse_params, project_defaults
from exporters.kfp.connect import redact
from exporters.kfp.options import ExitOnErrorParser

LOG_NAME = "kfp-local.log"
#: What the summary shows of the tracking run, when the project logged it.
CHOSEN_PARAMS = ("best_candidate", "model_type")
DECISION_TAGS = ("registered_version", "deploy_decision")
CHOSEN_METRIC = "accuracy"
RUN_TAG = "kfp_run_id"

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOG_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d{3}) - [A-Z]+ - (.*)$")
EXECUTING = re.compile(r"^Executing task '([^']+)'")
FINISHED = re.compile(r"^Task '([^']+)' finished with status (\w+)")
FAILED_TASK = re.compile(r"Task '([^']+)' finished with status FAILURE")
EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?(\w*(?:Error|Exception|Failure)): (.+)$")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = project_defaults(Path.cwd())
    parser = ExitOnErrorParser(
        prog="python -m exporters.kfp.local",
        description="Export the Dagster Definitions' pipeline and run it under kfp.local "
        "(no cluster), then print a short summary.",
    )
    parser.add_argument(
        "--module",
        default=defaults.get("module"),
        help="module holding the Dagster Definitions (default: [tool.dagster] module_name "
        f"of ./pyproject.toml: {defaults.get('module', 'none')})",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline argument (repeatable); a list as JSON, e.g. 'tickers=[\"AAA\"]'",
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="keep pipeline.yaml, the run's outputs (DIR/root) and kfp-local.log in DIR "
        "(default: a temporary folder, removed unless the run fails)",
    )
    args = parser.parse_args(argv)
    args.image = defaults.get("image") or "python:3"  # kfp.local's subprocess runner ignores it
    return args


@dataclass
class TaskRow:
    """One task of the summary: a ParallelFor's iterations share a row."""

    name: str
    runs: int = 0
    states: list[str] = field(default_factory=list)
    start: float | None = None
    end: float | None = None

    @property
    def state(self) -> str:
        if not self.states:
            return "NOT RUN" if self.runs == 0 else "UNFINISHED"
        return "FAILURE" if "FAILURE" in self.states else self.states[-1]

    @property
    def seconds(self) -> str:
        if self.start is None or self.end is None:
            return "-"
        return f"{(self.end - self.start) % 86400:.1f}"


def export(module: str, image: str, params: list[str], output: Path) -> dict[str, Any]:
    """Write ``output`` for ``module``'s Definitions; the typed pipeline arguments."""
    sys.path.insert(0, os.getcwd())
    from exporters.kfp.compile import ExportOptions, compile_pipeline
    from exporters.kfp.errors import ExportError
    from exporters.kfp.graph import UnsupportedConstructError, read_graph
    from exporters.kfp.runtime import load_definitions, tracking_resource_keys
    from exporters.kfp.schedule import ScheduleError, scheduled_parameter_names

    try:
        defs = load_definitions(module)
    except ImportError as error:
        raise UsageError(
            f"--module: cannot import {module!r} ({type(error).__name__}: {error})"
        ) from None
    except ValueError as error:
        raise UsageError(f"--module: {error}") from None
    try:
        graph = read_graph(defs, module, tracking_resource_keys(defs))
        graph.scheduled_parameters = scheduled_parameter_names(defs, graph)
    except (UnsupportedConstructError, ScheduleError) as error:
        raise UsageError(f"--module {module}: {error}") from None
    arguments = parse_params(params, {p.name: p for p in graph.parameters})
    try:  # no tracking URI in the YAML: the tasks inherit this process's environment
        compile_pipeline(graph, ExportOptions(image=image), output)
    except ExportError as error:
        raise UsageError(f"--module {module}: {error}") from None
    return arguments


def run(package: Path, root: Path, log: Path, arguments: dict[str, Any]) -> tuple[bool, Path]:
    """Run ``package`` under kfp.local, its output into ``log``; (success, the run's folder)."""
    import builtins

    from kfp import components, local

    root.mkdir(parents=True, exist_ok=True)
    before = set(root.iterdir())
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    pipeline = components.load_component_from_file(str(package))
    original_print = builtins.print  # kfp.local's threads may leave theirs indenting
    with (
        log.open("a") as out,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # "non-Python base image": the runner ignores images
        try:
            pipeline(**arguments)
            succeeded = True
        except RuntimeError as error:  # "Pipeline ... finished with status FAILURE ..."
            print(f"kfp.local: {error}")
            succeeded = False
        finally:
            builtins.print = original_print
    made = sorted(set(root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    return succeeded, made[-1] if made else root


def task_rows(log_text: str, package: Path) -> list[TaskRow]:
    """Every task of the pipeline that runs code, in pipeline order, with what kfp.local logged."""
    rows = {name: TaskRow(name) for name in leaf_tasks(package)}
    for raw in log_text.splitlines():
        line = LOG_LINE.match(ANSI.sub("", raw))
        if not line:
            continue
        hours, minutes, seconds, message = line.groups()
        at = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        if found := EXECUTING.match(message):
            row = rows.setdefault(found[1], TaskRow(found[1]))
            row.runs += 1
            row.start = at if row.start is None else row.start
        elif found := FINISHED.match(message):
            row = rows.setdefault(found[1], TaskRow(found[1]))
            row.states.append(found[2])
            row.end = at
    return list(rows.values())


def leaf_tasks(package: Path) -> list[str]:
    """Tasks that run code (not exit handlers, conditions, loops), upstream first."""
    spec = next(d for d in yaml.safe_load_all(package.read_text()) if d)
    components = spec.get("components", {})

    def walk(dag: dict[str, Any]) -> list[str]:
        tasks = dag.get("tasks", {})
        names: list[str] = []
        done: set[str] = set()
        while len(done) < len(tasks):
            ready = [
                name
                for name, task in sorted(tasks.items())
                if name not in done and set(task.get("dependentTasks", [])) <= done | {name}
            ]
            for name in ready or sorted(set(tasks) - done):  # a cycle cannot happen; be safe
                done.add(name)
                component = components.get(tasks[name].get("componentRef", {}).get("name"), {})
                names.extend(walk(component["dag"]) if "dag" in component else [name])
        return names

    return walk(spec["root"]["dag"])


def tracking_run(module: str, kfp_run_id: str) -> tuple[str, list[Any], dict[str, str]] | None:
    """(tracking URI, MLflow runs tagged ``kfp_run_id``, experiment names by id), or None
    when the project has no tracking resource or MLflow is not installed."""
    from exporters.kfp.protocols import PipelineRunLineage
    from exporters.kfp.runtime import load_definitions, tracking_resource_keys

    defs = load_definitions(module)
    keys = tracking_resource_keys(defs)
    if not keys:
        return None
    try:
        from mlflow import MlflowClient
    except ImportError:
        return None
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    resource = (defs.resources or {})[keys[0]]
    if not uri and isinstance(resource, PipelineRunLineage):
        uri = json.loads(resource.pipeline_run_lineage(kfp_run_id)).get("tracking_uri")
    client = MlflowClient(tracking_uri=uri) if uri else MlflowClient()
    names = {e.experiment_id: e.name for e in client.search_experiments()}
    found = client.search_runs(list(names), f"tags.{RUN_TAG} = '{kfp_run_id}'")
    return client.tracking_uri, found, names


def tracking_lines(uri: str, runs: list[Any], experiments: dict[str, str]) -> list[str]:
    """The tracking run in a few lines: id, status, the chosen model, where to look."""
    if len(runs) != 1:
        return [f"MLflow: {len(runs)} runs tagged {RUN_TAG} at {redact(uri)} (expected 1)"]
    (found,) = runs
    info, data = found.info, found.data
    experiment = f"{experiments.get(info.experiment_id, '?')!r} ({info.experiment_id})"
    lines = [f"MLflow run {info.run_id}: {info.status}, experiment {experiment}"]
    chosen = [data.params.get(k) or data.tags.get(k) for k in CHOSEN_PARAMS]
    if any(chosen):
        label = next(c for c in chosen if c)
        detail = [f"model_type {chosen[1]}"] if chosen[0] and chosen[1] else []
        if CHOSEN_METRIC in data.metrics:
            detail.append(f"{CHOSEN_METRIC} {data.metrics[CHOSEN_METRIC]:.3f}")
        lines.append(f"  chosen model: {label}" + (f" ({', '.join(detail)})" if detail else ""))
    else:
        lines.append("  chosen model: none logged")
    decided = [f"{k.replace('_', ' ')}: {data.tags[k]}" for k in DECISION_TAGS if k in data.tags]
    if decided:
        lines.append("  " + "; ".join(decided))
    lines.append(f"  store: {redact(uri)}")
    page = f"#/experiments/{info.experiment_id}/runs/{info.run_id}"
    if uri.startswith(("http://", "https://")):
        lines.append(f"  open: {uri.rstrip('/')}/{page}")
    else:
        lines.append(f"  browse it: make mlflow-ui (this project's Makefile), then {page}")
    return lines


def summary(rows: list[TaskRow], succeeded: bool, seconds: float, run_dir: Path) -> list[str]:
    """The tasks table and the outcome line."""
    names = [row.name + (f" x{row.runs}" if row.runs > 1 else "") for row in rows]
    width = max([len(name) for name in names] + [4])
    lines = [f"kfp.local run {run_dir.name}", f"  {'task'.ljust(width)}  state       seconds"]
    for name, row in zip(names, rows, strict=True):
        lines.append(f"  {name.ljust(width)}  {row.state.ljust(10)}  {row.seconds:>7}")
    if any(row.runs == 0 for row in rows):
        lines.append("  (NOT RUN: under a condition that was false, or after a failed task)")
    outcome = "SUCCESS" if succeeded else "FAILURE"
    lines.append(f"pipeline: {outcome} in {seconds:.1f} s")
    return lines


def failure_line(log_text: str) -> str:
    """One line: the first failed task and the error it ended with (its last exception line)."""
    plain = [ANSI.sub("", line).strip() for line in log_text.splitlines()]
    end = next((i for i, line in enumerate(plain) if FAILED_TASK.search(line)), len(plain))
    found = FAILED_TASK.search(plain[end]) if end < len(plain) else None
    task = found[1] if found else "a task"
    before = [line for line in plain[:end] if line]
    errors = [m for line in before if (m := EXCEPTION.match(line))]
    if errors:
        return f"{task} failed: {errors[-1][1]}: {errors[-1][2]}"[:1000]
    return f"{task} failed: {before[-1] if before else 'no output'}"[:1000]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _main(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    if not args.module:
        raise UsageError("--module: none given and no [tool.dagster] module_name in pyproject")
    if args.keep and Path(args.keep).exists() and not Path(args.keep).is_dir():
        raise UsageError(f"--keep: {args.keep} is a file; give a directory")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kfp-local-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--keep: cannot create {work}: {error.strerror}") from None
    package, log = work / "pipeline.yaml", work / LOG_NAME
    keep = bool(args.keep)
    try:
        arguments = export(args.module, args.image, args.param, package)
        given = ", ".join(f"{k}={v}" for k, v in arguments.items()) or "defaults"
        print(f"exported {args.module}; running it under kfp.local ({given}) ...", flush=True)
        started = time.perf_counter()
        succeeded, run_dir = run(package, work / "root", log, arguments)
        elapsed = time.perf_counter() - started
        text = log.read_text(errors="replace")
        print("\n".join(summary(task_rows(text, package), succeeded, elapsed, run_dir)))
        if not succeeded:
            keep = True
            print(failure_line(text))
        found = tracking_run(args.module, run_dir.name)
        if found is not None:
            print("\n".join(tracking_lines(*found)))
        if keep:
            print(f"kept in {work}: pipeline.yaml, {LOG_NAME} (kfp.local's output), root/")
        return 0 if succeeded else 1
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
