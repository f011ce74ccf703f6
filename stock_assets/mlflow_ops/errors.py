"""How a tracking store's failures reach the user: bounded calls and one-line messages.

Every command and resource that talks to MLflow goes through here: :func:`bounded_http_retries`
keeps a server that is down from hanging a call for minutes, and :func:`unreachable` turns what
the store raised into one line that names the (redacted) URI, or the full disk and where it is.
"""

from __future__ import annotations

import contextlib
import errno
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dagster import Failure
from mlflow.exceptions import MlflowException

from stock_assets.paths import environment_defaults, redact_uri

# Bounded retries against an HTTP tracking server, so a server that is down fails in seconds
# rather than after MLflow's default back-off of several minutes. MLflow reads these only from
# the environment; they are set for the duration (unless the user set them) and removed after.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    # No tqdm bars ("Downloading artifacts: 100%|...") in a step's output when a model is read
    # back: written to stderr with carriage returns, they garble the run's console and logs.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

#: What a store that is down or refuses a request raises: MLflow's own errors, and requests'
#: and urllib3's when a call fails below MLflow's retry layer.
STORE_ERRORS: tuple[type[BaseException], ...] = (MlflowException, ConnectionError, OSError)
try:
    import requests

    STORE_ERRORS = (*STORE_ERRORS, requests.exceptions.RequestException)
except ImportError:  # pragma: no cover - requests comes with mlflow
    pass

_CREDENTIALS_IN_URL = re.compile(r"//([^/:@\s]*):[^/@\s]*@")
#: How SQLite and the OS say the disk is full (SQLITE_FULL, ENOSPC, EDQUOT).
_DISK_FULL = re.compile(r"database or disk is full|no space left on device|quota exceeded", re.I)


def bounded_http_retries() -> contextlib.AbstractContextManager[None]:
    """:data:`HTTP_LIMITS` in the environment for the duration; the user's own values win."""
    return environment_defaults(HTTP_LIMITS)


def redact_text(text: str) -> str:
    """``text`` with any ``//user:password@`` in a URL masked."""
    return _CREDENTIALS_IN_URL.sub(r"//\1:***@", text)


def disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if _DISK_FULL.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def store_location(uri: str) -> str:
    """Where a local store keeps its data (the SQLite file or folder), else the redacted URI."""
    parts = urlsplit(uri)
    if parts.scheme == "sqlite":
        return unquote(parts.path[1:] if parts.path.startswith("//") else parts.path)
    if parts.scheme in ("", "file"):
        return str(Path(unquote(parts.path)))
    return redact_uri(uri)


def store_error_message(uri: str, error: BaseException) -> str:
    """One line for the tracking store at ``uri`` failing: a full disk, or down/refusing."""
    if disk_full(error):
        return (
            f"the disk is full: MLflow could not write to {store_location(uri)} "
            f"({error.__class__.__name__}). Free space on that disk and re-run."
        )
    detail = redact_text(str(error).splitlines()[0] if str(error) else "")
    return (
        f"MLflow tracking server at {redact_uri(uri)} is not reachable or refused the "
        f"request ({error.__class__.__name__}: {detail[:300]}). Start it (make mlflow) or "
        "unset MLFLOW_TRACKING_URI to use the local SQLite store."
    )


def unreachable(uri: str, error: BaseException) -> Failure:
    """The one-line Dagster failure for the tracking store at ``uri`` failing a call."""
    return Failure(description=store_error_message(uri, error))
