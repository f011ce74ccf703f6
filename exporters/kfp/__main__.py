"""``python -m exporters.kfp``: translate the Dagster Definitions into ``pipeline.yaml``.

Every mistake in the options is one line naming the option and what is expected, exit status
2, and nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from exporters.kfp.connect import redact
from exporters.kfp.options import (
    DEFAULT_SECRET_KEYS,
    ExitOnErrorParser,
    UsageError,
    check_host,
    check_tracking_uri,
    fail,
    parse_params,
    parse_secret,
    project_defaults,
    validate,
)

__all__ = ["main", "parse_args", "redact"]


def parse_args(argv: list[str] | None = None, root: Path | None = None) -> argparse.Namespace:
    defaults = project_defaults(root or Path.cwd())
    parser = ExitOnErrorParser(
        prog="python -m exporters.kfp",
        description=(
            "Translate a Dagster asset graph into a Kubeflow Pipelines v2 pipeline.yaml: one "
            "task per asset running the asset's own code, parameters from its Config."
        ),
    )
    add = parser.add_argument
    add("-o", "--output", default="pipeline.yaml", help="file to write (default: pipeline.yaml)")
    add(
        "--module",
        default=defaults.get("module"),
        help="module holding the Dagster Definitions (default: [tool.dagster] module_name "
        f"of ./pyproject.toml: {defaults.get('module', 'none')})",
    )
    add(
        "--image",
        default=defaults.get("image"),
        help="container image of every task (default: <project name>:<version> of "
        f"./pyproject.toml: {defaults.get('image', 'none')})",
    )
    add(
        "--pipeline-name",
        default="",
        help="pipeline name, [a-z0-9-] (default: the assets' group if they share one)",
    )
    add(
        "--mlflow-tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI") or None,
        help="tracking URI set in every task (default: $MLFLOW_TRACKING_URI at export time); "
        "must be reachable from the cluster's pods and carry no credentials",
    )
    add(
        "--allow-local-tracking-uri",
        action="store_true",
        help="accept a loopback, file: or sqlite: tracking URI (for kfp.local, not a cluster)",
    )
    add(
        "--mlflow-secret",
        metavar="NAME[:KEY,KEY]",
        help="Kubernetes secret whose keys become env vars of the same name (default keys: "
        f"{', '.join(DEFAULT_SECRET_KEYS)}); every key named must exist in the secret",
    )
    add("--disable-caching", action="store_true", help="turn KFP caching off for every task")
    add("--host", help="KFP API endpoint: upload the pipeline (or a new version) there")
    add("--namespace", help="with --host: the Kubeflow profile namespace (multi-user KFP)")
    add("--run", action="store_true", help="with --host: start a run of the uploaded version")
    add("--run-name", default="", help="with --run: the run's name (default: the pipeline name)")
    add(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline argument for the run and the recurring run (repeatable)",
    )
    add("--wait", action="store_true", help="with --run: follow the run; exit 1 unless it succeeds")
    add("--timeout", type=int, default=3600, help="with --wait: seconds to wait (default: 3600)")
    add(
        "--request-timeout",
        type=float,
        default=30.0,
        help="with --host: seconds one request to the KFP API may take to connect, and again "
        "to answer (default: 30)",
    )
    add(
        "--schedule",
        nargs="?",
        const="",
        metavar="NAME",
        help="recurring run from this Dagster schedule, replacing the one of the same name "
        "(default NAME: the Definitions' only schedule)",
    )
    add("--experiment", default="", help="KFP experiment (default: the pipeline name)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _main(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    validate(args)
    from_env = args.mlflow_tracking_uri == (os.environ.get("MLFLOW_TRACKING_URI") or None)
    secret, secret_keys = parse_secret(args.mlflow_secret)

    sys.path.insert(0, os.getcwd())
    from exporters.kfp.compile import ExportOptions, compile_pipeline, pipeline_name
    from exporters.kfp.errors import ExportError
    from exporters.kfp.graph import UnsupportedConstructError, read_graph
    from exporters.kfp.runtime import load_definitions, tracking_resource_keys
    from exporters.kfp.schedule import (
        ScheduleError,
        recurring_run_from_schedule,
        schedule_names,
        scheduled_parameter_names,
    )

    try:
        defs = load_definitions(args.module)
    except ImportError as error:
        fail("--module", f"cannot import {args.module!r} ({type(error).__name__}: {error})")
    except ValueError as error:
        fail("--module", str(error))
    try:
        graph = read_graph(defs, args.module, tracking_resource_keys(defs))
        graph.scheduled_parameters = scheduled_parameter_names(defs, graph)
        recurring = None
        if args.schedule is not None:
            name = args.schedule
            if not name:
                names = schedule_names(defs)
                if len(names) != 1:
                    fail("--schedule", f"name one of the schedules: {', '.join(names) or 'none'}")
                name = names[0]
            recurring = recurring_run_from_schedule(defs, graph, name)
    except ScheduleError as error:
        fail("--schedule", str(error))
    except UnsupportedConstructError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for key in graph.tracking_keys:
        if not callable(getattr((defs.resources or {})[key], "end_pipeline_run", None)):
            print(
                f"error: resource {key!r} takes kfp_run_id but has no "
                "end_pipeline_run(kfp_run_id, status) method (exporters/kfp/protocols.py)",
                file=sys.stderr,
            )
            return 2
    note = check_tracking_uri(args.mlflow_tracking_uri, args.allow_local_tracking_uri, from_env)
    if note and graph.uses_tracking:
        print(note, file=sys.stderr)
    arguments = parse_params(args.param, {p.name: p for p in graph.parameters})
    if args.host:
        check_host(args.host, min(args.request_timeout, 10.0))

    options = ExportOptions(
        image=args.image,
        pipeline_name=args.pipeline_name,
        mlflow_tracking_uri=args.mlflow_tracking_uri,
        mlflow_secret=secret,
        mlflow_secret_keys=secret_keys,
        disable_caching=args.disable_caching,
    )
    output = Path(args.output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)  # `-o build/pipeline.yaml`, fresh clone
    except OSError as error:
        fail("-o/--output", f"cannot create directory {output.parent}: {error.strerror}")
    try:
        compile_pipeline(graph, options, output)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {output} ({len(graph.owners)} tasks, {len(graph.parameters)} parameters)")
    return submit_or_print(args, graph, pipeline_name(graph, options), arguments, recurring)


def submit_or_print(
    args: argparse.Namespace, graph: Any, name: str, arguments: dict[str, Any], recurring: Any
) -> int:
    from exporters.kfp.submit import (
        Deployment,
        cli_commands,
        client_kwargs,
        deploy,
        run_url,
        version_name,
        wait_for_run,
    )

    plan = Deployment(
        package=args.output,
        pipeline_name=name,
        version_name=version_name(name, args.output),
        experiment=args.experiment or name,
        namespace=args.namespace,
        run=args.run or not args.host,
        run_name=args.run_name,
        arguments=arguments,
        recurring=recurring,
        wait=args.wait,
        timeout=args.timeout,
    )
    if not args.host:
        print("To submit it (the same as --host URL --run" + (" --schedule" if recurring else ""))
        print("with these options), with KFP_HOST set to the KFP API endpoint:")
        for command in cli_commands(plan):
            print(f"  {command}")
        return 0
    from exporters.kfp.connect import api_error, bounded_client

    try:
        client = bounded_client(client_kwargs(args.host), args.request_timeout)
        done = deploy(client, plan)
        for key, value in done.items():
            print(f"{key}: {value}")
        if "run_id" in done:
            print(f"run: {run_url(redact(args.host), done['run_id'])}")
        if not args.wait:
            return 0
        state = wait_for_run(client, done["run_id"], args.timeout)
    except Exception as error:
        message = api_error(args.host, error)
        if message is None:
            raise
        fail("--host", message)
    print(f"run {done['run_id']} ended {state}: {run_url(redact(args.host), done['run_id'])}")
    return 0 if state == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
