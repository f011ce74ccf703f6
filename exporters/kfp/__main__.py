"""``python -m exporters.kfp``: translate the Dagster Definitions into ``pipeline.yaml``.

Every mistake in the options is one line naming the option and what is expected, exit status
2, and nothing written.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from exporters.kfp.connect import redact

DEFAULT_SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
IMAGE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")  # kfp.dsl.utils.validate_pipeline_name
DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UsageError(Exception):
    """A wrong option: one line for the user, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def project_defaults(root: Path) -> dict[str, str]:
    """Defaults from ``pyproject.toml``: ``[tool.dagster] module_name`` and the project's image."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text())
    defaults = {}
    module = data.get("tool", {}).get("dagster", {}).get("module_name")
    if module:
        defaults["module"] = module
    project = data.get("project", {})
    if project.get("name") and project.get("version"):
        name = re.sub(r"[^a-z0-9]+", "-", project["name"].lower()).strip("-")
        defaults["image"] = f"{name}:{project['version']}"
    return defaults


def parse_args(argv: list[str] | None = None, root: Path | None = None) -> argparse.Namespace:
    defaults = project_defaults(root or Path.cwd())
    parser = _Parser(
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


def _fail(option: str, expected: str) -> NoReturn:
    raise UsageError(f"{option}: {expected}")


def check_tracking_uri(uri: str | None, allow_local: bool, from_env: bool) -> str | None:
    """Refuse credentials in the URI, and local stores unless allowed; return a note or None."""
    option = "--mlflow-tracking-uri" + (" (from $MLFLOW_TRACKING_URI)" if from_env else "")
    if not uri:
        return (
            "note: no MLflow tracking URI: each task would write to a SQLite file inside its own "
            "container, lost when the pod ends, and a model registered by one task is not seen "
            "by the next. Pass --mlflow-tracking-uri http://<server reachable from the pods>."
        )
    parts = urlsplit(uri)
    if parts.username or parts.password or re.search(r"(?i)(token|password|secret)=", uri):
        _fail(
            option,
            f"{redact(uri)} carries credentials; they would be written into the YAML in clear. "
            "Put them in a Kubernetes secret and pass --mlflow-secret NAME",
        )
    if allow_local:
        return None
    if parts.scheme in ("", "file", "sqlite") or len(parts.scheme) == 1:
        _fail(
            option,
            f"{uri} is a local store: each pod would get its own. Give a tracking server "
            "(http://...) reachable from the pods, or --allow-local-tracking-uri for kfp.local",
        )
    host = (parts.hostname or "").lower()
    loopback = host == "localhost" or host.endswith(".localhost")
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback or host == "0.0.0.0"
    if loopback:
        _fail(
            option,
            f"{uri} is a loopback address, which inside a pod is the pod itself. Give the "
            "server's in-cluster address, or --allow-local-tracking-uri for kfp.local",
        )
    return None


def parse_secret(value: str | None) -> tuple[str | None, tuple[str, ...]]:
    """``NAME[:KEY,KEY]`` → the secret's name and the keys to map."""
    if value is None:
        return None, ()
    name, _, keys = value.partition(":")
    if not DNS_SUBDOMAIN.match(name):
        _fail("--mlflow-secret", f"{name!r} is not a Kubernetes secret name ([a-z0-9.-])")
    names = tuple(k.strip() for k in keys.split(",") if k.strip()) if keys else DEFAULT_SECRET_KEYS
    bad = [k for k in names if not ENV_NAME.match(k)]
    if bad or (keys and not names):
        _fail("--mlflow-secret", f"keys must be env var names, as NAME:KEY,KEY; got {keys!r}")
    return name, names


def check_output(output: Path) -> None:
    """A file path whose missing parent directories can be created when the file is written."""
    if output.is_dir():
        _fail("-o/--output", f"{output} is a directory; give a file path")
    parent = output.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        _fail("-o/--output", f"{parent} is not a directory; give a path under a directory")


def parse_params(values: list[str], parameters: dict[str, Any]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs, each value typed as its pipeline parameter."""
    from exporters.kfp.values import unrepresentable

    arguments: dict[str, Any] = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or name not in parameters:
            known = ", ".join(sorted(parameters)) or "none"
            _fail("--param", f"{item!r}: expected NAME=VALUE with NAME one of: {known}")
        parameter = parameters[name]
        try:
            arguments[name] = _typed(parameter.type_name, raw)
        except ValueError:
            _fail("--param", f"{name}={raw!r} is not a {parameter.type_name}")
        reason = unrepresentable(arguments[name])
        if reason:
            _fail("--param", f"{name}={raw!r}: {reason}")
    return arguments


def _typed(type_name: str, raw: str) -> Any:
    if type_name == "str":
        return raw
    if type_name == "int":
        return int(raw)
    if type_name == "float":
        return float(raw)
    if type_name == "bool":
        if raw.lower() not in ("true", "false"):
            raise ValueError(raw)
        return raw.lower() == "true"
    value = json.loads(raw)
    if not isinstance(value, list):
        raise ValueError(raw)
    return value


def check_host(host: str, timeout: float = 10.0) -> None:
    """Fail early, before anything is written, when the KFP API cannot be reached."""
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _fail("--host", f"{redact(host)!r} is not an http(s) URL of the KFP API")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    probe = parts._replace(netloc=netloc).geturl().rstrip("/")  # urllib takes no user:password
    try:
        urllib.request.urlopen(f"{probe}/apis/v2beta1/healthz", timeout=timeout)
    except urllib.error.HTTPError:
        return  # it answered (an auth proxy may refuse the anonymous probe)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        _fail("--host", f"cannot reach the KFP API at {redact(host)} ({reason})")


def validate(args: argparse.Namespace) -> None:
    """Checks that need no import of the project."""
    if not args.module:
        _fail("--module", "no module given and no [tool.dagster] module_name in ./pyproject.toml")
    if not args.image or not IMAGE.match(args.image):
        _fail("--image", f"{args.image!r} is not an image reference like registry/name:tag")
    if args.pipeline_name and not PIPELINE_NAME.match(args.pipeline_name):
        _fail(
            "--pipeline-name",
            f"{args.pipeline_name!r}: lowercase letters, digits and '-', starting with a letter "
            "or digit (KFP's rule; the upload must use the same name)",
        )
    if args.namespace and not DNS_LABEL.match(args.namespace):
        _fail("--namespace", f"{args.namespace!r} is not a Kubernetes namespace name")
    if args.run and not args.host:
        _fail("--run", "starts a run on a cluster: give --host URL too")
    if args.wait and not args.run:
        _fail("--wait", "follows the run started by --run: give --run --host URL")
    if args.timeout <= 0:
        _fail("--timeout", f"{args.timeout} is not a positive number of seconds")
    if args.run_name and not args.run:
        _fail("--run-name", "names the run started by --run")
    if args.namespace and not args.host:
        _fail("--namespace", "applies to --host")
    if not args.request_timeout > 0:
        _fail("--request-timeout", f"{args.request_timeout} is not a positive number of seconds")
    check_output(Path(args.output))


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
        _fail("--module", f"cannot import {args.module!r} ({type(error).__name__}: {error})")
    except ValueError as error:
        _fail("--module", str(error))
    try:
        graph = read_graph(defs, args.module, tracking_resource_keys(defs))
        graph.scheduled_parameters = scheduled_parameter_names(defs, graph)
        recurring = None
        if args.schedule is not None:
            name = args.schedule
            if not name:
                names = schedule_names(defs)
                if len(names) != 1:
                    _fail("--schedule", f"name one of the schedules: {', '.join(names) or 'none'}")
                name = names[0]
            recurring = recurring_run_from_schedule(defs, graph, name)
    except ScheduleError as error:
        _fail("--schedule", str(error))
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
        _fail("-o/--output", f"cannot create directory {output.parent}: {error.strerror}")
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
        _fail("--host", message)
    print(f"run {done['run_id']} ended {state}: {run_url(redact(args.host), done['run_id'])}")
    return 0 if state == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
