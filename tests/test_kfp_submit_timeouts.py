"""``python -m exporters.kfp --host``: every request to the KFP API is bounded, errors are one line.

Real sockets on loopback: a closed port, a server that accepts and never answers, and servers
that answer the healthz probe (so the command gets as far as ``kfp.Client``) and then fall
silent or go away. The real CLI runs in process; each case is timed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from exporters.kfp.__main__ import main
from exporters.kfp.connect import bounded_client
from exporters.kfp.submit import client_kwargs
from tests.conftest import PROJECT_ROOT

HEALTHZ = "/apis/v2beta1/healthz"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server.getsockname()[1]
    server.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    mode = "silent"  # after healthz: "silent" (never answer) or "gone" (stop listening)
    healthz_left = 2  # the CLI's probe, then kfp.Client's constructor
    release = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith(HEALTHZ) and self.server.healthz_left > 0:
            self.server.healthz_left -= 1
            body = json.dumps({"multi_user": False}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if self.server.healthz_left == 0 and self.server.mode == "gone":
                threading.Thread(target=self._go_away, daemon=True).start()
            return
        self.server.release.wait(60)  # silent

    do_POST = do_GET  # noqa: N815

    def _go_away(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def log_message(self, *args: object) -> None:
        pass


def _serve(mode: str) -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.mode, server.release = mode, threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.release.set()
    if mode != "gone":
        server.shutdown()
        server.server_close()


@pytest.fixture
def answers_healthz_then_silent() -> Iterator[int]:
    yield from _serve("silent")


@pytest.fixture
def answers_healthz_then_gone() -> Iterator[int]:
    yield from _serve("gone")


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    """Run the CLI in the project root; return (exit code, stderr, seconds)."""
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def run(*args: str) -> tuple[int, str, float]:
        started = time.monotonic()
        try:
            code = main(["-o", str(tmp_path / "pipeline.yaml"), *args])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        return code, capsys.readouterr().err, time.monotonic() - started

    return run


def _one_line(code: int, err: str, host_text: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1 and "--host" in lines[0] and host_text in lines[0], err
    assert "Traceback" not in err and "secret" not in err, err
    return lines[0]


def test_closed_port_fails_in_one_line_without_credentials(cli) -> None:
    port = _closed_port()
    code, err, seconds = cli("--host", f"http://admin:secret@127.0.0.1:{port}")
    line = _one_line(code, err, f"http://***@127.0.0.1:{port}")
    assert "refused" in line.lower(), line  # the probe reached the port, not a bad host name
    assert seconds < 20


def test_silent_server_fails_within_the_request_timeout(cli, silent: int) -> None:
    code, err, seconds = cli("--host", f"http://127.0.0.1:{silent}", "--request-timeout", "1")
    line = _one_line(code, err, f"http://127.0.0.1:{silent}")
    assert "timed out" in line, line
    assert seconds < 20


def test_api_silent_after_healthz_fails_within_the_request_timeout(
    cli, answers_healthz_then_silent: int
) -> None:
    host = f"http://user:secret@127.0.0.1:{answers_healthz_then_silent}"
    code, err, seconds = cli("--host", host, "--request-timeout", "1")
    line = _one_line(code, err, f"http://***@127.0.0.1:{answers_healthz_then_silent}")
    assert "cannot reach the KFP API" in line and "timed out" in line.lower(), line
    assert seconds < 20


def test_api_gone_after_healthz_fails_in_one_line(cli, answers_healthz_then_gone: int) -> None:
    host = f"http://127.0.0.1:{answers_healthz_then_gone}"
    code, err, seconds = cli("--host", host, "--request-timeout", "1")
    line = _one_line(code, err, host)
    assert "cannot reach the KFP API" in line, line
    assert seconds < 20


def test_every_client_request_is_bounded(answers_healthz_then_silent: int) -> None:
    """The client itself: its constructor answers, then each call gives up after the timeout."""
    client = bounded_client(client_kwargs(f"http://127.0.0.1:{answers_healthz_then_silent}"), 0.5)
    for call in (lambda: client.list_pipelines(), lambda: client.get_run("r")):
        started = time.monotonic()
        with pytest.raises(Exception, match="(?i)timed out"):
            call()
        assert time.monotonic() - started < 3  # one attempt: a sent request is not retried
