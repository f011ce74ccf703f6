"""``python -m exporters.kfp``: translate the Dagster Definitions into ``pipeline.yaml``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from exporters.kfp.compile import DEFAULT_IMAGE, ExportOptions, compile_pipeline, pipeline_name
from exporters.kfp.graph import UnsupportedConstructError, read_graph
from exporters.kfp.runtime import load_definitions, tracking_resource_keys
from exporters.kfp.submit import CronError, cli_commands, recurring_run_from_schedule, submit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m exporters.kfp",
        description=(
            "Translate a Dagster asset graph into a Kubeflow Pipelines v2 pipeline.yaml: one "
            "task per asset running the asset's own code, parameters from its Config."
        ),
    )
    parser.add_argument(
        "-o", "--output", default="pipeline.yaml", help="file to write (default: pipeline.yaml)"
    )
    parser.add_argument(
        "--module",
        default="stock_assets.definitions",
        help="module holding the Dagster Definitions (default: stock_assets.definitions)",
    )
    parser.add_argument(
        "--image",
        default=DEFAULT_IMAGE,
        help=f"container image of every task, built from the Dockerfile (default: {DEFAULT_IMAGE})",
    )
    parser.add_argument(
        "--pipeline-name",
        default="",
        help="pipeline name (default: the assets' group if they share one, else --module)",
    )
    parser.add_argument(
        "--mlflow-tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="tracking URI set in every task (default: $MLFLOW_TRACKING_URI at export time)",
    )
    parser.add_argument(
        "--mlflow-secret",
        metavar="NAME",
        help="Kubernetes secret whose MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN keys become env vars",
    )
    parser.add_argument(
        "--disable-caching", action="store_true", help="turn KFP caching off for every task"
    )
    parser.add_argument("--host", help="KFP API endpoint: upload the pipeline there")
    parser.add_argument("--run", action="store_true", help="with --host: start a run")
    parser.add_argument(
        "--schedule",
        nargs="?",
        const="nightly_retrain",
        metavar="NAME",
        help="with --host: recurring run from this Dagster schedule (default: nightly_retrain)",
    )
    parser.add_argument("--experiment", default="stock-prediction", help="KFP experiment for runs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, os.getcwd())
    try:
        defs = load_definitions(args.module)
        graph = read_graph(defs, args.module, tracking_resource_keys(defs))
        options = ExportOptions(
            image=args.image,
            pipeline_name=args.pipeline_name,
            mlflow_tracking_uri=args.mlflow_tracking_uri,
            mlflow_secret=args.mlflow_secret,
            disable_caching=args.disable_caching,
        )
        output = Path(args.output)
        compile_pipeline(graph, options, output)
        recurring = recurring_run_from_schedule(defs, args.schedule) if args.schedule else None
    except (UnsupportedConstructError, CronError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {output} ({len(graph.tasks)} tasks, {len(graph.parameters)} parameters)")
    name = pipeline_name(graph, options)
    if args.host:
        done = submit(args.host, str(output), name, args.experiment, args.run, recurring)
        for key, value in done.items():
            print(f"{key}: {value}")
    else:
        print("To submit it (or pass --host URL):")
        for command in cli_commands(str(output), name, args.experiment, recurring):
            print(f"  {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
