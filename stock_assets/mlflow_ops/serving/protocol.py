"""uvicorn's HTTP protocol with bounds on slow clients (``stock-serve`` passes it as ``--http``).

uvicorn (0.54) sets no deadline on reading a request: a connection that sends its head or body
a byte at a time is held open for as long as the client likes, and every open connection counts
against ``--limit-concurrency``, so a few dozen slow clients made uvicorn answer 503 to everyone.
This protocol, per worker process:

* answers 408 and closes a connection whose request (head and body) is not received within
  :data:`READ_TIMEOUT_ENV` seconds (default :data:`READ_TIMEOUT`) of its first byte, or of the
  connection being opened;
* keeps at most :data:`MAX_WAITING_ENV` (default :data:`MAX_WAITING`) connections that are not
  being answered (receiving a request, or idle), closing the one waiting longest when another
  arrives: slow clients cannot fill the server, and a normal request, received at once, is not
  the longest waiting;
* refuses a request head over :data:`MAX_HEAD_BYTES` (431);
* answers its own errors (400 unparsable request, 408, 431, 503) as ``{"error_code", "message"}``.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

READ_TIMEOUT = 10.0
READ_TIMEOUT_ENV = "STOCK_SERVE_READ_TIMEOUT"
MAX_WAITING = 32
MAX_WAITING_ENV = "STOCK_SERVE_MAX_WAITING"
MAX_HEAD_BYTES = 64 * 1024
REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}

#: This worker's connections not being answered, the longest waiting first.
_waiting: dict[GuardedProtocol, None] = {}


class HeadTooLarge(Exception):
    """Raised from a parser callback: the request head is over :data:`MAX_HEAD_BYTES`."""


def error_response(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response with a JSON error body, closing the connection."""
    body = json.dumps({"error_code": code, "message": message}).encode()
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % (status, REASONS[status], len(body))
    )
    return head + body


async def unavailable(scope: Any, receive: Any, send: Any) -> None:
    """uvicorn's 503 for ``--limit-concurrency``, as JSON."""
    body = json.dumps(
        {"error_code": "UNAVAILABLE", "message": "the server is busy; try again shortly"}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardedProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with a read deadline, a cap on waiting connections and JSON
    errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = float(os.environ.get(READ_TIMEOUT_ENV) or READ_TIMEOUT)
        self.max_waiting = int(os.environ.get(MAX_WAITING_ENV) or MAX_WAITING)
        self.deadline: asyncio.TimerHandle | None = None
        self.in_request = False
        self.head_bytes = 0

    # Waiting: from the connection or a response's end to a request fully received.
    def wait(self) -> None:
        """Start counting this connection as waiting, and make room for it."""
        if self.transport.is_closing() or self in _waiting:
            return
        _waiting[self] = None
        self.deadline = self.loop.call_later(self.read_timeout, self.expire)
        while len(_waiting) > self.max_waiting:
            oldest = next(iter(_waiting))
            oldest.refuse(503, "TOO_MANY_WAITING", "too many connections are sending slowly")

    def done_waiting(self) -> None:
        _waiting.pop(self, None)
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def expire(self) -> None:
        self.deadline = None
        seconds = f"{self.read_timeout:g}"
        self.refuse(408, "REQUEST_TIMEOUT", f"the request was not received within {seconds} s")

    def refuse(self, status: int, code: str, message: str) -> None:
        """Close the connection, answering first if a request is under way and unanswered."""
        self.done_waiting()
        if self.transport.is_closing():
            return
        answered = self.cycle is not None and self.cycle.response_started
        if self.in_request and not answered:
            self.transport.write(error_response(status, code, message))
        self.transport.close()  # the app, if it runs, then reads a disconnect

    # uvicorn's protocol hooks.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.wait()

    def connection_lost(self, exc: Exception | None) -> None:
        self.done_waiting()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.wait()  # after a response: the next request starts
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if self.head_bytes > MAX_HEAD_BYTES:
            limit = f"{MAX_HEAD_BYTES // 1024} KiB"
            self.refuse(431, "HEADERS_TOO_LARGE", f"the request head is over {limit}")
        else:
            self.refuse(400, "BAD_REQUEST", "invalid HTTP request (the parser refused it)")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_request = True
        self.head_bytes = 0
        if self.deadline is not None:  # the request has its own time from its first byte
            self.deadline.cancel()
            self.deadline = self.loop.call_later(self.read_timeout, self.expire)

    def on_url(self, url: bytes) -> None:
        self.count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def count_head(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge

    def on_message_complete(self) -> None:
        self.in_request = False
        self.done_waiting()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.in_request:
            return  # answered before its body was read (413): its deadline still runs
        self.wait()  # idle between requests

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        super()._start_asgi_task(cycle, app if app is self.app else unavailable)
