"""The served model follows its registry alias (``stock-serve``'s ``--follow-interval``).

Each uvicorn worker holds a :class:`Follower`: the version it serves and MLflow's scoring app
for it (:class:`Served`, replaced whole, so a request that started on the old model finishes on
it). For ``models:/stock-prediction@production`` a daemon thread looks the alias up every
``interval`` seconds (default :data:`DEFAULT_INTERVAL`; 0 = never); when it names another
version, that version is loaded by number in the thread, then swapped in with one assignment,
and the change is logged in one line. A registry that cannot be read, an alias that is gone or a
version that fails to load leaves the working model in place; each is logged once per change of
state, never raised. A model pinned by version (``models:/stock-prediction/3``) never changes.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stock_assets.mlflow_ops.errors import redact_text

INTERVAL_ENV = "STOCK_SERVE_FOLLOW_INTERVAL"
MODEL_URI_ENV = "STOCK_SERVE_MODEL_URI"
DEFAULT_INTERVAL = 30.0
#: The longest wait before loading again a version that failed to load.
MAX_RETRY_S = 600.0
VERSION_HEADER = b"x-model-version"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
_LOG = logging.getLogger("uvicorn.error")

#: MLflow's HTTP settings for the worker's look-ups and loads (the user's own values win): a
#: tracking server that is down costs one short try per interval, not minutes of retries.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}

App = Callable[..., Any]


@dataclass(frozen=True)
class Served:
    """One loaded model: its registry version and MLflow's scoring app for it."""

    version: str
    app: App


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` or ``models:/name/N`` as (name, alias, version)."""
    found = _URI.match(uri)
    if found is None:
        raise ValueError(f"{uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    return found["name"], found["alias"], found["version"]


def read_interval(text: str | None) -> float:
    """The follow interval from its environment value: seconds >= 0, default 30."""
    if not text:
        return DEFAULT_INTERVAL
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{INTERVAL_ENV}={text!r}: expected seconds >= 0 (0 = off)")
    return value


def short(error: BaseException) -> str:
    """An error as one short line, passwords in URLs masked."""
    text = str(error).strip().splitlines()
    line = redact_text(text[0] if text else type(error).__name__)
    return line if len(line) <= 200 else line[:197] + "..."


def alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version ``alias`` names, or None if the alias is not set; raises if unreadable."""
    version = client.get_registered_model(name).aliases.get(alias)
    return None if version is None else str(version)


def load_scoring_app(uri: str) -> App:
    """MLflow's scoring app for the model at ``uri``, ready to answer its first request."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    app = scoring_server.init(mlflow.pyfunc.load_model(uri))
    app.middleware_stack = app.build_middleware_stack()  # Starlette builds it lazily otherwise
    return app


class Follower:
    """The served model of one worker, moved to the version its alias names."""

    def __init__(
        self,
        uri: str,
        interval: float,
        *,
        lookup: Callable[[str, str], str | None],
        load: Callable[[str], App] = load_scoring_app,
    ) -> None:
        self.uri = uri
        self.name, self.alias, pinned = parse_model_uri(uri)
        self.interval = interval if self.alias else 0.0
        self._lookup = lookup
        self._load = load
        version = pinned or self._look_up()
        if version is None:
            raise LookupError(f"{uri}: the alias {self.alias!r} is not set")
        #: What requests are answered with; replaced whole, never changed in place.
        self.current = Served(version, load(self.version_uri(version)))
        self._problem: str | None = None
        self._failed: dict[str, tuple[int, float]] = {}  # version: (failures, next try)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def following(self) -> bool:
        return self.interval > 0

    def version_uri(self, version: str) -> str:
        return f"models:/{self.name}/{version}"

    def _look_up(self) -> str | None:
        version = self._lookup(self.name, self.alias or "")
        return None if version is None else str(version)

    def start(self) -> None:
        """Look the alias up every interval in a daemon thread (not at all if the interval is 0)."""
        if self.following and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="follow-alias", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the thread must outlive any surprise
                _LOG.exception(
                    "following %s failed; still serving version %s", self.uri, self.current.version
                )

    def _report(self, problem: str | None, message: str) -> None:
        """Log ``message`` when the state changes (a problem, or back to normal)."""
        if problem == self._problem:
            return
        if problem is None:
            _LOG.info("%s (%s)", message, self._who())
        else:
            _LOG.warning("%s (%s)", message, self._who())
        self._problem = problem

    def _who(self) -> str:
        return f"{self.uri}, worker {os.getpid()}"

    def check(self) -> bool:
        """One look-up; load and swap in another version if the alias moved. True if swapped."""
        serving = self.current.version
        try:
            version = self._look_up()
        except Exception as error:  # noqa: BLE001 - any store failure: keep serving
            self._report(
                "unreachable",
                f"the registry could not be read ({short(error)}); still serving version "
                f"{serving}, asking again every {self.interval:g} s",
            )
            return False
        if version is None:
            self._report(
                "no-alias",
                f"the alias {self.alias!r} is not set any more; still serving version {serving}",
            )
            return False
        if version == serving:
            self._report(
                None, f"the registry answers and {self.alias!r} names version {serving}, served"
            )
            return False
        failures, next_try = self._failed.get(version, (0, 0.0))
        if time.monotonic() < next_try:
            return False
        try:
            app = self._load(self.version_uri(version))
        except Exception as error:  # noqa: BLE001 - a broken version never replaces a working one
            wait = min(self.interval * 2**failures, MAX_RETRY_S)
            self._failed[version] = (failures + 1, time.monotonic() + wait)
            self._report(
                f"broken {version}",
                f"version {version} failed to load ({short(error)}); still serving version "
                f"{serving}",
            )
            return False
        self._failed.pop(version, None)
        self.current = Served(version, app)
        self._problem = None
        _LOG.info("%s: version %s -> version %s (%s)", self.alias, serving, version, self._who())
        return True
