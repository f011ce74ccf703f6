"""The real ``stock-serve`` answers malformed and oversized requests with a clear 4xx,
never a stack trace, a server path or the input; other clients keep being served."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stock_assets.core.features import FEATURE_COLUMNS
from tests.reliability.helpers import (
    BIN,
    DEPLOY_ALWAYS,
    FAST_MODEL,
    Sandbox,
    finish,
    free_port,
    wait_http,
)

ROW = [
    117.0,
    116.9,
    116.0,
    115.3,
    115.7,
    116.1,
    115.9,
    43.74,
    0.1543,
    0.1641,
    -0.00983,
    0.1247,
    0.265,
    -0.02714,
    -0.05673,
    -0.01358,
    0.02037,
    0.02037,
    0.9004,
    0.05268,
    0.2361,
    0.0,
]
MARKER = "ZZ-echo-marker-ZZ"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    sandbox = Sandbox(tmp_path_factory.mktemp("serving"))
    ops = {"model": FAST_MODEL, "deploy_decision": DEPLOY_ALWAYS}
    assert finish(sandbox.materialize(ops)) == 0
    port = free_port()
    with (sandbox.root / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "stock-serve"), "--port", str(port)],
            env=sandbox.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", timeout=120)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _post(port: int, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/invocations", body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _json(port: int, text: str) -> tuple[int, bytes]:
    return _post(port, text.encode(), {"Content-Type": "application/json"})


def _assert_clean(body: bytes) -> dict:
    answer = json.loads(body)
    assert set(answer) == {"error_code", "message"}, answer
    text = body.decode()
    for leak in ("stack_trace", "Traceback", 'File "', sys.prefix, str(Path.home()), MARKER):
        assert leak not in text, (leak, text)
    assert "/" not in answer["message"], answer
    return answer


def _row(**cells: object) -> list[object]:
    row = list(ROW)
    for name, value in cells.items():
        row[FEATURE_COLUMNS.index(name)] = value
    return row


@pytest.mark.slow
def test_malformed_requests_name_the_row_and_column(served: int) -> None:
    good = json.dumps({"inputs": [ROW]}).encode()
    status, body = _post(served, good)  # no Content-Type: read as JSON
    assert status == 200 and "probability_up" in json.loads(body)["predictions"][0]

    cases = {
        json.dumps({"inputs": [ROW, _row(RSI=MARKER)]}): "row 1, column 'RSI'",
        json.dumps({"inputs": [_row(MACD=None)]}): "row 0, column 'MACD'",
        json.dumps({"inputs": [_row(Gap=float("nan"))]}): "row 0, column 'Gap'",
        json.dumps({"inputs": [_row(SMA_5=float("inf"))]}): "row 0, column 'SMA_5'",
        json.dumps({"inputs": [[[v, v] for v in ROW]]}): "row 0, column 'SMA_5'",
        json.dumps(
            {"dataframe_records": [dict(zip(FEATURE_COLUMNS, _row(BB_Width=MARKER), strict=True))]}
        ): "row 0, column 'BB_Width'",
        json.dumps(
            {"dataframe_split": {"columns": FEATURE_COLUMNS, "data": [ROW, _row(Gap=None)]}}
        ): "row 1, column 'Gap'",
        '{"inputs": [[' + MARKER: "not valid JSON",
    }
    for text, expected in cases.items():
        status, body = _json(served, text)
        assert status == 400, (text[:80], body[:300])
        assert expected in _assert_clean(body)["message"], (expected, body)


@pytest.mark.slow
def test_oversized_requests_get_413_and_others_are_served(served: int) -> None:
    junk = (MARKER * (20 * 1024 * 1024 // len(MARKER))).encode()
    status, body = _json(served, junk.decode())
    assert status == 413 and len(body) < 1000
    assert "limit" in _assert_clean(body)["message"]

    # A body sent in chunks, without a length, is cut off at the limit too.
    connection = http.client.HTTPConnection("127.0.0.1", served, timeout=60)
    chunks = (b"[" * 65536 for _ in range(40))
    connection.request("POST", "/invocations", body=chunks, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413
    connection.close()

    # A client that announces a body and never sends it does not stall the others.
    stalled = socket.create_connection(("127.0.0.1", served))
    stalled.sendall(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    heavy = threading.Thread(target=_json, args=(served, "[" + "1," * 400_000 + "1]"))
    heavy.start()
    try:
        started = time.monotonic()
        for _ in range(5):
            status, _ = _json(served, json.dumps({"inputs": [ROW]}))
            assert status == 200
        assert time.monotonic() - started < 10
    finally:
        stalled.close()
        heavy.join(timeout=60)
