"""What a measured child process runs: ``python -m benchmarks.harness.child <run> ...``.

Each run gets a fresh interpreter, so that it pays what a user's run pays (imports, the
Definitions' load) and its memory is its own. A child reports back through a JSON file, not
its output: its output is the run's log.

* ``in-process CONFIG RESULT [--job NAME] [--ephemeral]``: the job (else every asset and check,
  as ``dagster.materialize``) in this process, on $DAGSTER_HOME's instance (or an ephemeral
  one); RESULT gets its success, events, failure text and chosen model.
* ``kfp-local PACKAGE ROOT ARGUMENTS``: the compiled pipeline under kfp.local's subprocess
  runner in this environment, with the pipeline arguments of the JSON file ARGUMENTS.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def failure_text(result: Any) -> str:
    """The step failures' messages (and causes) of a Dagster run result, one per line."""
    parts = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            parts.append(f"{event.step_key}: {error.message.strip()}")
            error = error.cause
    return "\n".join(parts)


def in_process(config_file: Path, result_file: Path, job: str | None, ephemeral: bool) -> int:
    """Run the graph in this process; write its report to ``result_file``; 0 on success."""
    from dagster import DagsterInstance, materialize

    from benchmarks.harness.events import event_rows
    from benchmarks.harness.models import model_summary
    from stock_assets.definitions import defs

    config = json.loads(config_file.read_text())
    with DagsterInstance.ephemeral() if ephemeral else DagsterInstance.get() as instance:
        if job is not None:
            result = defs.resolve_job_def(job).execute_in_process(
                run_config=config, instance=instance, raise_on_error=False
            )
        else:
            result = materialize(
                [*defs.assets, *defs.asset_checks],  # type: ignore[misc]  # set, typed Optional
                resources=defs.resources,
                run_config=config,
                instance=instance,
                raise_on_error=False,
            )
        model = model_summary(result.output_for_node("model")) if result.success else None
        report: dict[str, Any] = {
            "success": result.success,
            "run_id": result.run_id,
            "events": event_rows(instance, result.run_id),
            "error": "" if result.success else failure_text(result),
            "model": model,
        }
    result_file.write_text(json.dumps(report))
    return 0 if result.success else 1


def kfp_local(package: Path, root: Path, arguments_file: Path) -> int:
    """Run the compiled pipeline under kfp.local; a failed task raises (exit code 1)."""
    from kfp import components, local

    arguments = json.loads(arguments_file.read_text())
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True
    )
    components.load_component_from_file(str(package))(**arguments)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness.child")
    runs = parser.add_subparsers(dest="run", required=True)
    graph = runs.add_parser("in-process")
    graph.add_argument("config", type=Path)
    graph.add_argument("result", type=Path)
    graph.add_argument("--job")
    graph.add_argument("--ephemeral", action="store_true")
    kfp = runs.add_parser("kfp-local")
    kfp.add_argument("package", type=Path)
    kfp.add_argument("root", type=Path)
    kfp.add_argument("arguments", type=Path)
    args = parser.parse_args(argv)
    if args.run == "in-process":
        return in_process(args.config, args.result, args.job, args.ephemeral)
    return kfp_local(args.package, args.root, args.arguments)


if __name__ == "__main__":
    sys.exit(main())
