"""The edges of ``stock-serve``'s guard, probed with raw HTTP.

Finding: with two ``Content-Type`` headers the guard read the last one and MLflow the
first, so ``application/json`` then ``text/plain`` skipped the guard's checks and the model saw
the cells (a numeric string got a 200, NaN/null a 400 naming nothing); in the other order the
guard checked them. Keep-alive and the worker made no difference. Now: one ``Content-Type``,
JSON only, decoded size bounded, every error a JSON body; slow clients cannot starve the others.
"""

from __future__ import annotations

import http.client
import io
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

import pandas as pd
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
from tests.reliability.test_serving_guard import MARKER, ROW, _row

READ_TIMEOUT = 3  # --read-timeout of the served app: slow requests are cut off after it
NAN_ROW = '{"inputs": [[' + ", ".join(["NaN", *map(str, ROW[1:])]) + "]]}"


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    sandbox = Sandbox(tmp_path_factory.mktemp("serving_edges"))
    ops = {"model": FAST_MODEL, "deploy_decision": DEPLOY_ALWAYS}
    assert finish(sandbox.materialize(ops)) == 0
    port = free_port()
    with (sandbox.root / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "stock-serve"), "--port", str(port), "--read-timeout", str(READ_TIMEOUT)],
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


def raw(
    port: int, head: list[str], body: bytes = b"", request: str = "POST /invocations"
) -> tuple[int, dict[str, str], bytes]:
    """One request written byte for byte (headers as given, repeated ones kept), read to EOF."""
    lines = [f"{request} HTTP/1.1", "Host: 127.0.0.1", *head, f"Content-Length: {len(body)}"]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall("\r\n".join([*lines, "Connection: close", "", ""]).encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_text, _, content = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head_text.decode("latin-1").split("\r\n")
    headers = [line.split(":", 1) for line in header_lines]
    assert len([k for k, _ in headers if k.lower() == "content-type"]) == 1, head_text
    return int(status_line.split()[1]), {k.lower(): v.strip() for k, v in headers}, content


def _assert_clean(body: bytes) -> dict[str, str]:
    """A JSON error body: ``{"error_code", "message"}``, no trace, no server path, no echo."""
    answer = json.loads(body)
    assert set(answer) == {"error_code", "message"}, answer
    for leak in ("stack_trace", "Traceback", 'File "', sys.prefix, str(Path.home()), MARKER):
        assert leak not in body.decode(), (leak, body)
    return answer


def refused(port: int, status: int, head: list[str], body: bytes, **kw: str) -> str:
    """The request gets ``status`` with a clean JSON error body; its message."""
    got, headers, content = raw(port, head, body, **kw)
    assert got == status, (head, got, content[:300])
    assert headers["content-type"] == "application/json", headers
    return _assert_clean(content)["message"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "types", [["application/json", "text/plain"], ["text/plain", "application/json"]]
)
def test_two_content_types_are_refused_in_either_order(port: int, types: list[str]) -> None:
    head = [f"Content-Type: {kind}" for kind in types]
    good = json.dumps({"inputs": [ROW]}).encode()
    for body in (good, NAN_ROW.encode(), json.dumps({"inputs": [_row(Gap="0.5")]}).encode()):
        message = refused(port, 400, head, body)
        assert "2 Content-Type headers" in message, message
    # The same over one kept-alive connection: the second request is judged like the first.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(2):
            connection.putrequest("POST", "/invocations")
            for kind in types:
                connection.putheader("Content-Type", kind)
            connection.putheader("Content-Length", str(len(good)))
            connection.endheaders(good)
            response = connection.getresponse()
            assert response.status == 400, response.read()
            assert "Content-Type" in _assert_clean(response.read())["message"]
    finally:
        connection.close()
    # One header, as documented: the cells are checked whatever the keep-alive.
    message = refused(port, 400, ["Content-Type: application/json"], NAN_ROW.encode())
    assert message.startswith("row 0, column 'SMA_5': NaN"), message


@pytest.mark.slow
def test_only_json_is_accepted(port: int) -> None:
    """CSV and Parquet are not decoded at all (the README documents JSON only)."""
    nan_csv = ",".join(FEATURE_COLUMNS) + "\n" + ",".join(["nan"] * 22) + "\n"
    good_csv = ",".join(FEATURE_COLUMNS) + "\n" + ",".join(map(str, ROW)) + "\n"
    parquet = io.BytesIO()
    pd.DataFrame([ROW] * 1000, columns=FEATURE_COLUMNS).to_parquet(parquet)
    cases = {
        "text/csv": nan_csv.encode(),
        "text/csv; charset=utf-8": good_csv.encode(),
        "application/vnd.apache.parquet": parquet.getvalue(),
        "text/plain": json.dumps({"inputs": [ROW]}).encode(),
        "application/json; charset=latin-1": json.dumps({"inputs": [ROW]}).encode(),
        "application/json, text/plain": json.dumps({"inputs": [ROW]}).encode(),
    }
    for kind, body in cases.items():
        message = refused(port, 415, [f"Content-Type: {kind}"], body)
        assert "expected application/json" in message, (kind, message)
    for kind in ("application/json", "Application/JSON; charset=UTF-8", None):
        head = [f"Content-Type: {kind}"] if kind else []
        status, _, content = raw(port, head, json.dumps({"inputs": [ROW]}).encode())
        assert status == 200 and json.loads(content)["predictions"][0]["direction"] in (0, 1)


@pytest.mark.slow
def test_decoded_size_is_bounded_not_only_the_bytes(port: int) -> None:
    """Under 1 MiB, yet more rows or cells than a request may hold: 413 before the model."""
    rows = json.dumps({"inputs": [[0] * 22] * 10_001}, separators=(",", ":")).encode()
    assert len(rows) < 1024 * 1024
    message = refused(port, 413, ["Content-Type: application/json"], rows)
    assert "10001 rows" in message and "at most 10000" in message, message
    columns = [f"c{i}" for i in range(1000)]
    split = {"dataframe_split": {"columns": columns, "data": [[0] * 1000] * 300}}
    cells = json.dumps(split, separators=(",", ":")).encode()
    assert len(cells) < 1024 * 1024
    message = refused(port, 413, ["Content-Type: application/json"], cells)
    assert "cells" in message and "at most 220000" in message, message


@pytest.mark.slow
def test_odd_json_gets_a_json_400_naming_what_is_wrong(port: int) -> None:
    """Deep nesting, odd ``columns``, 1e999, huge integers, unknown keys."""
    head = ["Content-Type: application/json"]
    split = '{"dataframe_split": {"columns": %s, "data": [' + json.dumps(ROW) + "]}}"
    cases = {
        '{"inputs": ' + "[" * 100_000 + "]" * 100_000 + "}": "nested too deeply",
        split % "5": "dataframe_split.columns: expected a list of column names",
        split % '{"a": 1}': "dataframe_split.columns: expected a list of column names",
        split % "[[1]]": "dataframe_split.columns: expected a list of column names",
        split % '"abc"': "dataframe_split.columns: expected a list of column names",
        split % json.dumps(FEATURE_COLUMNS[:2]): "row 0 has 22 values for 2 columns",
        split % json.dumps(["SMA_5", *FEATURE_COLUMNS[:21]]): "column 'SMA_5' appears twice",
        '{"inputs": [[1e999' + ", 1" * 21 + "]]}": "row 0, column 'SMA_5': not a finite number",
        '{"inputs": [[' + "9" * 400 + ", 1" * 21 + "]]}": "row 0, column 'SMA_5': not a finite",
        '{"inputs": [[' + "9" * 5000 + "]]}": "not valid JSON",
        json.dumps({"messages": [], "inputs": [ROW]}): "unexpected key 'messages'",
        json.dumps({"inputs": [ROW], "dataframe_records": []}): "exactly one of",
        json.dumps({"inputs": []}): "no rows",
        json.dumps({"inputs": {"SMA_5": [1, 2], "RSI": [1]}}): "column 'RSI' has 1 values",
    }
    for text, expected in cases.items():
        message = refused(port, 400, head, text.encode())
        assert expected in message, (text[:80], expected, message)


@pytest.mark.slow
def test_only_the_scoring_endpoints_are_served(port: int) -> None:
    for path in ("/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect", "/nothing"):
        message = refused(port, 404, [], b"", request=f"GET {path}")
        assert "POST /invocations" in message, message
    assert "POST" in refused(port, 405, [], b"", request="GET /invocations")
    assert raw(port, [], b"", request="GET /ping")[0] == 200
    # A request the HTTP parser refuses (two lengths) is answered in JSON too.
    message = refused(port, 400, ["Content-Length: 3"], b'{"inputs": []}')
    assert "invalid HTTP request" in message, message
    message = refused(port, 431, ["X-Padding: " + "a" * 65_600], b"")
    assert "head is over 64 KiB" in message, message


def _trickle(port: int, stop: threading.Event, opened: list[int]) -> None:
    """A slowloris client: a request head sent one byte a second until ``stop``."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    except OSError:
        return
    opened.append(1)
    with sock:
        for byte in b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}":
            if stop.wait(1.0):
                return
            try:
                sock.send(bytes([byte]))
            except OSError:
                return


@pytest.mark.slow
def test_slow_clients_do_not_block_the_others(port: int) -> None:
    """100 clients trickling a byte a second; normal requests keep getting 200 fast."""
    stop = threading.Event()
    opened: list[int] = []
    slow = [threading.Thread(target=_trickle, args=(port, stop, opened)) for _ in range(100)]
    for thread in slow:
        thread.start()
    try:
        time.sleep(1.5)
        assert len(opened) == 100
        body = json.dumps({"inputs": [ROW]}).encode()
        for _ in range(10):
            started = time.monotonic()
            status, _, content = raw(port, ["Content-Type: application/json"], body)
            assert status == 200, content[:200]
            assert time.monotonic() - started < 2
            time.sleep(0.3)
    finally:
        stop.set()
        for thread in slow:
            thread.join(timeout=30)


@pytest.mark.slow
def test_a_request_not_received_in_time_gets_408(port: int) -> None:
    """Head or body: a request still incomplete after --read-timeout is answered and closed."""
    for partial in (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\n",
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT + 10) as sock:
            started = time.monotonic()
            sock.sendall(partial)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            assert time.monotonic() - started < READ_TIMEOUT + 3
        assert data.startswith(b"HTTP/1.1 408"), data[:200]
        message = _assert_clean(data.partition(b"\r\n\r\n")[2])["message"]
        assert f"within {READ_TIMEOUT} s" in message, message
