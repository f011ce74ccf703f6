"""The export command's options checked before anything is imported or written.

Every mistake is one line naming the option and what is expected (:class:`UsageError`).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
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


class ExitOnErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2, without the usage."""

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


def fail(option: str, expected: str) -> NoReturn:
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
        fail(
            option,
            f"{redact(uri)} carries credentials; they would be written into the YAML in clear. "
            "Put them in a Kubernetes secret and pass --mlflow-secret NAME",
        )
    if allow_local:
        return None
    if parts.scheme in ("", "file", "sqlite") or len(parts.scheme) == 1:
        fail(
            option,
            f"{uri} is a local store: each pod would get its own. Give a tracking server "
            "(http://...) reachable from the pods, or --allow-local-tracking-uri for kfp.local",
        )
    host = (parts.hostname or "").lower()
    loopback = host == "localhost" or host.endswith(".localhost")
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback or host == "0.0.0.0"
    if loopback:
        fail(
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
        fail("--mlflow-secret", f"{name!r} is not a Kubernetes secret name ([a-z0-9.-])")
    names = tuple(k.strip() for k in keys.split(",") if k.strip()) if keys else DEFAULT_SECRET_KEYS
    bad = [k for k in names if not ENV_NAME.match(k)]
    if bad or (keys and not names):
        fail("--mlflow-secret", f"keys must be env var names, as NAME:KEY,KEY; got {keys!r}")
    return name, names


def check_output(output: Path) -> None:
    """A file path whose missing parent directories can be created when the file is written."""
    if output.is_dir():
        fail("-o/--output", f"{output} is a directory; give a file path")
    parent = output.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        fail("-o/--output", f"{parent} is not a directory; give a path under a directory")


def parse_params(values: list[str], parameters: dict[str, Any]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs, each value typed as its pipeline parameter."""
    from exporters.kfp.values import unrepresentable

    arguments: dict[str, Any] = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or name not in parameters:
            known = ", ".join(sorted(parameters)) or "none"
            fail("--param", f"{item!r}: expected NAME=VALUE with NAME one of: {known}")
        parameter = parameters[name]
        try:
            arguments[name] = _typed(parameter.type_name, raw)
        except ValueError:
            fail("--param", f"{name}={raw!r} is not a {parameter.type_name}")
        reason = unrepresentable(arguments[name])
        if reason:
            fail("--param", f"{name}={raw!r}: {reason}")
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
        fail("--host", f"{redact(host)!r} is not an http(s) URL of the KFP API")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    probe = parts._replace(netloc=netloc).geturl().rstrip("/")  # urllib takes no user:password
    try:
        urllib.request.urlopen(f"{probe}/apis/v2beta1/healthz", timeout=timeout)
    except urllib.error.HTTPError:
        return  # it answered (an auth proxy may refuse the anonymous probe)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        fail("--host", f"cannot reach the KFP API at {redact(host)} ({reason})")


def validate(args: argparse.Namespace) -> None:
    """Checks that need no import of the project."""
    if not args.module:
        fail("--module", "no module given and no [tool.dagster] module_name in ./pyproject.toml")
    if not args.image or not IMAGE.match(args.image):
        fail("--image", f"{args.image!r} is not an image reference like registry/name:tag")
    if args.pipeline_name and not PIPELINE_NAME.match(args.pipeline_name):
        fail(
            "--pipeline-name",
            f"{args.pipeline_name!r}: lowercase letters, digits and '-', starting with a letter "
            "or digit (KFP's rule; the upload must use the same name)",
        )
    if args.namespace and not DNS_LABEL.match(args.namespace):
        fail("--namespace", f"{args.namespace!r} is not a Kubernetes namespace name")
    if args.run and not args.host:
        fail("--run", "starts a run on a cluster: give --host URL too")
    if args.wait and not args.run:
        fail("--wait", "follows the run started by --run: give --run --host URL")
    if args.timeout <= 0:
        fail("--timeout", f"{args.timeout} is not a positive number of seconds")
    if args.run_name and not args.run:
        fail("--run-name", "names the run started by --run")
    if args.namespace and not args.host:
        fail("--namespace", "applies to --host")
    if not args.request_timeout > 0:
        fail("--request-timeout", f"{args.request_timeout} is not a positive number of seconds")
    check_output(Path(args.output))
