"""``python -m exporters.kfp.kserve``: a KServe ``InferenceService`` for an MLflow-format model.

Writes a ``serving.kserve.io/v1beta1`` manifest whose predictor serves the model with
``modelFormat: mlflow`` over the V2 inference protocol (KServe's MLServer runtime,
config/runtimes/kserve-mlserver.yaml in kserve/kserve). What to serve comes from the options:
``--storage-uri`` of the model's artifacts, or ``--model models:/<name>@<alias>`` resolved
through the MLflow registry. Errors are one line naming the option, exit status 2.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from exporters.kfp.options import ExitOnErrorParser

#: URI schemes KServe's storage initializer downloads from (kserve/kserve
#: python/storage/kserve_storage/kserve_storage.py at v0.19.0).
STORAGE_SCHEMES = ("s3", "gs", "pvc", "hdfs", "webhdfs", "https", "http", "hf")
NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
MODEL = re.compile(r"^models:/(?P<name>[^@/]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


#: Bounded calls to an HTTP tracking server: MLflow's defaults (7 retries, back-off factor 2,
#: 120 s per request) made an unreachable server fail after 254 s. MLflow reads these only
#: from the environment; they are set for the duration unless the user set them.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
_CREDENTIALS = re.compile(r"//([^/:@\s]*):[^/@\s]*@")


@contextlib.contextmanager
def bounded_http() -> Iterator[None]:
    """:data:`HTTP_LIMITS` in the environment for the duration; the user's own values win."""
    added = [name for name in HTTP_LIMITS if name not in os.environ]
    os.environ.update({name: HTTP_LIMITS[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def redact(text: str) -> str:
    """``text`` with any ``//user:password@`` of a URL masked."""
    return _CREDENTIALS.sub(r"//\1:***@", text)


class ServingError(ValueError):
    """A wrong option; the message names it."""


def inference_service(
    name: str,
    storage_uri: str,
    namespace: str | None = None,
    service_account: str | None = None,
    min_replicas: int | None = None,
) -> dict[str, Any]:
    """The InferenceService manifest."""
    predictor: dict[str, Any] = {
        "model": {
            "modelFormat": {"name": "mlflow"},
            "protocolVersion": "v2",
            "storageUri": storage_uri,
        }
    }
    if service_account:
        predictor["serviceAccountName"] = service_account
    if min_replicas is not None:
        predictor["minReplicas"] = min_replicas
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def check_storage_uri(uri: str, option: str = "--storage-uri") -> str:
    scheme = urlsplit(uri).scheme
    if scheme not in STORAGE_SCHEMES or not urlsplit(uri).netloc:
        raise ServingError(
            f"{option}: {uri!r} is not a location KServe can download from "
            f"({', '.join(s + '://' for s in STORAGE_SCHEMES)})"
        )
    return uri


def resolve_model(model: str, tracking_uri: str | None) -> str:
    """The artifact location of ``models:/<name>@<alias>`` (or ``/<version>``) in the registry."""
    match = MODEL.match(model)
    if not match:
        raise ServingError(
            f"--model: {model!r} is not models:/<name>@<alias> or models:/<name>/<n>"
        )
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri or mlflow.get_tracking_uri()
    try:
        with bounded_http():
            client = MlflowClient(tracking_uri=uri)
            version = (
                match["version"]
                or client.get_model_version_by_alias(match["name"], match["alias"]).version
            )
            source = client.get_model_version_download_uri(match["name"], version)
    except Exception as error:  # MlflowException, connection errors
        first = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        raise ServingError(
            f"--model: cannot resolve {model} in the MLflow registry at {redact(uri)} "
            f"({redact(first)})"
        ) from None
    try:
        return check_storage_uri(source, "--model")
    except ServingError as error:
        raise ServingError(
            f"{error}; pass --storage-uri with the artifact store's address of that model"
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = ExitOnErrorParser(
        prog="python -m exporters.kfp.kserve", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--name", required=True, help="InferenceService name ([a-z0-9-])")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--storage-uri", help="the MLflow model's directory (s3://, gs://, pvc://)")
    source.add_argument("--model", help="models:/<name>@<alias>, resolved in the MLflow registry")
    parser.add_argument("--mlflow-tracking-uri", help="registry for --model (default: $MLFLOW_...)")
    parser.add_argument("--namespace", help="namespace of the InferenceService")
    parser.add_argument("--service-account", help="service account with the storage credentials")
    parser.add_argument("--min-replicas", type=int, help="0 lets KServe scale to zero")
    parser.add_argument("-o", "--output", default="inferenceservice.yaml", help="file to write")
    args = parser.parse_args(argv)
    try:
        if not NAME.match(args.name):
            raise ServingError(f"--name: {args.name!r} must be [a-z0-9-], starting with a letter")
        output = Path(args.output)
        if output.is_dir() or not output.parent.is_dir():
            raise ServingError(f"-o/--output: {output} is not a file path in an existing directory")
        uri = (
            check_storage_uri(args.storage_uri)
            if args.storage_uri
            else resolve_model(args.model, args.mlflow_tracking_uri)
        )
        manifest = inference_service(
            args.name, uri, args.namespace, args.service_account, args.min_replicas
        )
    except ServingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output.write_text(yaml.safe_dump(manifest, sort_keys=False))
    print(f"wrote {output}: InferenceService {args.name} serving {uri}")
    print(f"apply it with: kubectl apply -f {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
