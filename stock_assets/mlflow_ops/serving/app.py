"""The served app: MLflow's scoring server behind a thin guard (``stock-serve`` runs it).

``create_app()`` loads ``models:/stock-prediction@production`` and wraps MLflow's own FastAPI
scoring app (``mlflow.pyfunc.scoring_server.init``) in :class:`RequestGuard`, a plain ASGI
middleware that, on ``POST /invocations``:

* refuses a body over ``max_request_bytes`` (default :data:`MAX_REQUEST_BYTES`) with 413, from
  its ``Content-Length`` or while reading it, so one huge request cannot hold a worker;
* reads a request without ``Content-Type`` as JSON;
* checks a JSON body before the model sees it, and answers 400 with the row and column of the
  first value that is not a number (a string, null, NaN, Infinity, a nested list);
* answers every error as ``{"error_code", "message"}``: no stack trace, no server path, no echo
  of the input (MLflow's own error bodies carry a ``stack_trace``).

uvicorn runs it with several workers and a concurrency limit (:mod:`.server`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from stock_assets.core.features import FEATURE_COLUMNS

#: The largest request body accepted: 1 MiB, about 4,000 rows of 22 features.
MAX_REQUEST_BYTES = 1024 * 1024
MAX_BYTES_ENV = "STOCK_SERVE_MAX_REQUEST_BYTES"
MESSAGE_LIMIT = 600
#: MLflow's scoring server repeats the whole input in its message: keep only its error.
_ECHO = re.compile(r"^Failed to predict data '.*'\.\s*Error:", re.DOTALL)
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[\w.\-@+]+){2,}")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _NonFinite:
    def __init__(self, name: str) -> None:
        self.name = name


def _name(column: object) -> str:
    text = repr(column) if isinstance(column, str) else str(column)
    return text if len(text) <= 40 else text[:37] + "..."


def _value_problem(value: Any) -> str | None:
    if isinstance(value, bool):
        return "expected a number, got true/false"
    if isinstance(value, int | float):
        return None
    if value is None:
        return "missing value (null); expected a number"
    if isinstance(value, _NonFinite):
        return f"{value.name} is not allowed; expected a finite number"
    if isinstance(value, str):
        return "expected a number, got a string"
    if isinstance(value, list | dict):
        kind = "list" if isinstance(value, list) else "object"
        return f"expected a number, got a {kind} (the input must be rows of numbers, 2-D)"
    return f"expected a number, got {type(value).__name__}"


def _first_problem(rows: Any, named: bool) -> str | None:
    """The first bad cell of row-wise ``rows``: a list of records, or of positional rows."""
    if not isinstance(rows, list):
        return "expected a list of rows"
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            cells = row.items()
        elif isinstance(row, list) and not named:
            cells = (
                (FEATURE_COLUMNS[j] if j < len(FEATURE_COLUMNS) else j, v)
                for j, v in enumerate(row)
            )
        elif named:
            return f"row {i}: expected an object of column: value"
        else:
            problem = _value_problem(row)  # a 1-D list of numbers is one row: the model decides
            if problem:
                column = FEATURE_COLUMNS[i] if i < len(FEATURE_COLUMNS) else i
                return f"row 0, column {_name(column)}: {problem}"
            continue
        for column, value in cells:
            problem = _value_problem(value)
            if problem:
                return f"row {i}, column {_name(column)}: {problem}"
    return None


def payload_problem(body: bytes) -> str | None:
    """What is wrong with a JSON request body, naming the row and column; None if it looks fine."""
    try:
        data = json.loads(body, parse_constant=_NonFinite)
    except UnicodeDecodeError:
        return "the request body is not UTF-8 text; expected JSON"
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        return f"the request body is not valid JSON ({error.msg} at {where})"
    if not isinstance(data, dict):
        return "expected a JSON object with one of: inputs, dataframe_records, dataframe_split"
    if "dataframe_records" in data:
        return _first_problem(data["dataframe_records"], named=True)
    if "dataframe_split" in data:
        split = data["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            return "dataframe_split: expected an object with 'columns' and 'data'"
        columns = split.get("columns") or []
        rows = []
        for row in split["data"]:
            if not isinstance(row, list):
                return "dataframe_split: each row of 'data' must be a list of numbers"
            rows.append({columns[j] if j < len(columns) else j: v for j, v in enumerate(row)})
        return _first_problem(rows, named=True)
    for key in ("inputs", "instances"):
        if key in data:
            value = data[key]
            if isinstance(value, dict):  # {column: [values]}
                for column, values in value.items():
                    for i, cell in enumerate(values if isinstance(values, list) else [values]):
                        problem = _value_problem(cell)
                        if problem:
                            return f"row {i}, column {_name(column)}: {problem}"
                return None
            return _first_problem(value, named=False)
    return None


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


class RequestGuard:
    """Size limit, default content type, input checks and error sanitising around ``app``."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_request_bytes: int) -> None:
        self.app = app
        self.limit = max_request_bytes

    def too_large(self) -> bytes:
        return _error(
            "REQUEST_TOO_LARGE",
            f"the request body is larger than the limit of {self.limit} bytes; send fewer rows "
            "per request",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/invocations":
            await self.app(scope, receive, send)
            return
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
        content_type = dict(headers).get(b"content-type", b"").split(b";")[0].strip().lower()
        if not content_type:
            content_type = b"application/json"
            headers = [h for h in headers if h[0] != b"content-type"]
            headers.append((b"content-type", b"application/json"))
        if scope.get("method") == "POST" and content_type == b"application/json":
            problem = payload_problem(bytes(body))
            if problem:
                await _answer(send, 400, _error("BAD_REQUEST", problem))
                return

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

        await self.app({**scope, "headers": headers}, replay, capture)


def create_app() -> RequestGuard:
    """The guarded scoring app for the production model (uvicorn's ``--factory`` target)."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    from stock_assets.mlflow_ops.serving.server import MODEL_URI

    model = mlflow.pyfunc.load_model(MODEL_URI)
    limit = int(os.environ.get(MAX_BYTES_ENV) or MAX_REQUEST_BYTES)
    return RequestGuard(scoring_server.init(model), limit)
