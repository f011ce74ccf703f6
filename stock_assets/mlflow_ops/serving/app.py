"""The served app: MLflow's scoring server behind a thin guard (``stock-serve`` runs it).

``create_app()`` loads ``models:/stock-prediction@production`` and wraps MLflow's own FastAPI
scoring app (``mlflow.pyfunc.scoring_server.init``) in :class:`RequestGuard`, a plain ASGI
middleware that:

* serves only ``POST /invocations`` and ``GET /ping``, ``/health``, ``/version`` (404 for the
  rest, FastAPI's ``/docs`` and ``/openapi.json`` included; 405 for another method);
* names the served registry version: ``/version`` answers it as JSON, and every
  ``/invocations`` answer carries it in the ``X-Model-Version`` header;
* refuses a body over ``max_request_bytes`` (default :data:`MAX_REQUEST_BYTES`) with 413, from
  its ``Content-Length`` or while reading it, so one huge request cannot hold a worker;
* accepts JSON only: one ``Content-Type`` header at most (two are refused with 400: the guard
  and MLflow could read different ones), ``application/json`` (415 for CSV, Parquet or anything
  else), none read as JSON; MLflow's app is handed exactly that one header;
* checks the body before the model sees it (:mod:`.payload`): 413 for more rows or cells than
  a request may hold, 400 with the row and column of the first value that is not a finite
  number, or naming the key or column list that is wrong;
* answers every error as ``{"error_code", "message"}``: no stack trace, no server path, no echo
  of the input (MLflow's own error bodies carry a ``stack_trace``).

The model comes from a :class:`~.follow.Follower`, which moves it to the version the
``production`` alias names (:mod:`.follow`); each request reads the served model once, so a swap
never touches a request under way. uvicorn runs it with several workers, a concurrency limit and
a protocol bounding slow clients (:mod:`.server`, :mod:`.protocol`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from stock_assets.mlflow_ops.serving.follow import (
    HTTP_LIMITS,
    INTERVAL_ENV,
    MODEL_URI_ENV,
    VERSION_HEADER,
    Follower,
    alias_version,
    read_interval,
)
from stock_assets.mlflow_ops.serving.payload import TooLarge, payload_problem
from stock_assets.mlflow_ops.serving.settings import MAX_BYTES_ENV, MAX_REQUEST_BYTES, MODEL_URI

MESSAGE_LIMIT = 600
#: MLflow's scoring server repeats the whole input in its message: keep only its error.
_ECHO = re.compile(r"^Failed to predict data '.*'\.\s*Error:", re.DOTALL)
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[\w.\-@+]+){2,}")
_MEDIA = re.compile(r"^[\w.+-]+/[\w.+-]+$")
_LOG = logging.getLogger("uvicorn.error")
#: The endpoints served besides ``POST /invocations``; any other path gets 404.
GET_PATHS = ("/ping", "/health", "/version")
ENDPOINTS = "POST /invocations, GET /ping, /health, /version"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def sanitise(status: int, content: bytes) -> tuple[int, bytes]:
    """An error body as ``{"error_code", "message"}``: no stack trace, paths or long echoes."""
    if status >= 500 and status != 504:
        return status, _error("INTERNAL_ERROR", "the model failed on this request")
    try:
        data = json.loads(content)
    except ValueError:
        data = {"message": content.decode("utf-8", "replace")}
    if not isinstance(data, dict):
        data = {"message": str(data)}
    message = _ECHO.sub(
        "Failed to predict data (not repeated here). Error:", str(data.get("message", ""))
    )
    message = _PATH.sub("<path>", message)
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 3] + "..."
    code = str(data.get("error_code") or ("BAD_REQUEST" if status < 500 else "TIMEOUT"))
    return status, _error(code, message)


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error_code": code, "message": message}).encode()


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def content_type_problem(values: list[bytes]) -> tuple[int, bytes] | None:
    """The status and error body for a request's ``Content-Type`` headers; None if JSON.

    One header at most (two could be read differently by the guard and by MLflow), naming
    ``application/json`` with at most ``charset=utf-8``; no header means JSON.
    """
    if len(values) > 1:
        return 400, _error(
            "BAD_REQUEST",
            f"the request has {len(values)} Content-Type headers; send exactly one: "
            "application/json",
        )
    if not values:
        return None
    mime, *params = (part.strip() for part in values[0].decode("latin-1").split(";"))
    shown = repr(mime) if _MEDIA.match(mime) and len(mime) <= 80 else "this Content-Type"
    unsupported = (
        f"Content-Type {shown} is not accepted; expected application/json (only JSON is "
        "served, not CSV or Parquet)"
    )
    if mime.lower() != "application/json":
        return 415, _error("UNSUPPORTED_MEDIA_TYPE", unsupported)
    for param in filter(None, params):
        name, _, value = param.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            return 415, _error(
                "UNSUPPORTED_MEDIA_TYPE",
                "Content-Type parameters other than charset=utf-8 are not accepted; expected "
                "application/json",
            )
    return None


class RequestGuard:
    """Routes, size limits, content type, input checks and error sanitising around ``app``."""

    def __init__(self, follower: Follower, max_request_bytes: int) -> None:
        self.follower = follower
        self.limit = max_request_bytes

    def too_large(self) -> bytes:
        return _error(
            "REQUEST_TOO_LARGE",
            f"the request body is larger than the limit of {self.limit} bytes; send fewer rows "
            "per request",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.follower.current.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.route(scope, receive, tracked)
        except Exception:
            if started:
                raise
            _LOG.exception("the request failed in the guard")
            await _answer(send, 500, _error("INTERNAL_ERROR", "the server failed on this request"))

    async def route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Only the scoring endpoints: FastAPI's ``/docs`` and ``/openapi.json`` are not served."""
        path, method = scope.get("path"), scope.get("method")
        if path in GET_PATHS or path == "/invocations":
            allowed = "GET" if path in GET_PATHS else "POST"
            if method != allowed:
                message = f"{path[1:]} takes {allowed} requests; this server answers {ENDPOINTS}"
                await _answer(send, 405, _error("METHOD_NOT_ALLOWED", message))
            elif path == "/version":
                await self.version(send)
            elif allowed == "GET":
                await self.follower.current.app(scope, receive, send)
            else:
                await self.invocations(scope, receive, send)
            return
        message = f"no such endpoint; this server answers {ENDPOINTS}"
        await _answer(send, 404, _error("NOT_FOUND", message))

    async def version(self, send: Send) -> None:
        """``GET /version``: the registry version served, what it was loaded from, and MLflow's."""
        from mlflow.version import VERSION

        follower, served = self.follower, self.follower.current
        body = {
            "model": follower.name,
            "version": served.version,
            "model_uri": follower.uri,
            "loaded_uri": follower.version_uri(served.version),
            "follow_interval_s": follower.interval,
            "mlflow_version": VERSION,
        }
        await _answer(_with_version(send, served.version), 200, json.dumps(body).encode())

    async def invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /invocations``: bounded body, JSON only, checked cells, then MLflow's app."""
        served = self.follower.current  # this request's model, whatever is swapped in meanwhile
        send = _with_version(send, served.version)
        headers = [(k.lower(), v) for k, v in scope.get("headers", [])]
        length = dict(headers).get(b"content-length", b"")
        if length and (not length.strip().isdigit() or int(length) > self.limit):
            await _answer(send, 413, self.too_large())
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await _answer(send, 413, self.too_large())
                return
            if not message.get("more_body"):
                break
        refusal = content_type_problem([v for k, v in headers if k == b"content-type"])
        if refusal is None:
            try:
                problem = payload_problem(bytes(body))
            except TooLarge as error:
                refusal = 413, _error("REQUEST_TOO_LARGE", f"{error}; send fewer rows per request")
            else:
                refusal = (400, _error("BAD_REQUEST", problem)) if problem else None
        if refusal is not None:
            await _answer(send, *refusal)
            return
        # MLflow's app sees exactly what was checked: one body, one Content-Type.
        headers = [h for h in headers if h[0] != b"content-type"]
        headers.append((b"content-type", b"application/json"))

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, content = int(start["status"]), b"".join(chunks)
            if status >= 400:
                status, content = sanitise(status, content)
                await _answer(send, status, content)
                return
            kept = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            kept.append((b"content-length", str(len(content)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": kept})
            await send({"type": "http.response.body", "body": content})

        await served.app({**scope, "headers": headers}, replay, capture)


def _with_version(send: Send, version: str) -> Send:
    """``send`` adding the ``X-Model-Version`` header to the response's start."""
    value = version.encode()

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", []) if h[0].lower() != VERSION_HEADER]
            message = {**message, "headers": [*headers, (VERSION_HEADER, value)]}
        await send(message)

    return sending


def create_app() -> RequestGuard:
    """The guarded scoring app for the production model (uvicorn's ``--factory`` target).

    Serves ``STOCK_SERVE_MODEL_URI`` (default ``models:/stock-prediction@production``) and
    follows its alias every ``STOCK_SERVE_FOLLOW_INTERVAL`` seconds (default 30, 0 = never).
    """
    from mlflow import MlflowClient

    for name, value in HTTP_LIMITS.items():  # this worker's own environment
        os.environ.setdefault(name, value)
    client = MlflowClient()

    def lookup(name: str, alias: str) -> str | None:
        return alias_version(client, name, alias)

    uri = os.environ.get(MODEL_URI_ENV) or MODEL_URI
    follower = Follower(uri, read_interval(os.environ.get(INTERVAL_ENV)), lookup=lookup)
    follower.start()
    limit = int(os.environ.get(MAX_BYTES_ENV) or MAX_REQUEST_BYTES)
    return RequestGuard(follower, limit)
