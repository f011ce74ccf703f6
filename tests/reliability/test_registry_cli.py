"""The registry CLI: version strings normalised, tags, alias and history kept whole, and a
tracking server that is down or answers errors reported in one line within a bounded time,
never as a false "not found"."""

from __future__ import annotations

import contextlib
import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from stock_assets.mlflow_ops.registry import HISTORY_TAG, REGISTERED_MODEL_NAME, STAGE_TAG
from tests.reliability.helpers import BIN, Sandbox, free_port


def _registry(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "stock-registry"), *args], env=sandbox.env(), capture_output=True, text=True
    )


def _state(client: MlflowClient) -> tuple[str, dict[str, str], str]:
    model = client.get_registered_model(REGISTERED_MODEL_NAME)
    stages = {
        str(mv.version): mv.tags.get(STAGE_TAG, "")
        for mv in client.search_model_versions(f"name = '{REGISTERED_MODEL_NAME}'")
    }
    return str(model.aliases.get("production")), stages, model.tags.get(HISTORY_TAG, "")


@pytest.mark.slow
def test_odd_version_strings_are_normalised_or_refused(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    sandbox.data.mkdir(parents=True)
    client = sandbox.client()  # a real SQLite store with three versions
    run = client.create_run(client.create_experiment("scratch"))
    client.create_registered_model(REGISTERED_MODEL_NAME)
    for _ in range(3):
        client.create_model_version(
            REGISTERED_MODEL_NAME, f"runs:/{run.info.run_id}/model", run.info.run_id
        )

    assert _registry(sandbox, "promote", "1").returncode == 0
    for odd in ("01", " 1"):
        done = _registry(sandbox, "promote", odd)
        assert done.returncode == 0 and "nothing changed" in done.stdout, (odd, done.stderr)
    assert _state(client) == ("1", {"1": "production", "2": "", "3": ""}, "1")

    assert _registry(sandbox, "promote", "002").returncode == 0
    assert _state(client) == ("2", {"1": "archived", "2": "production", "3": ""}, "1,2")

    for bad in ("x", "0"):
        done = _registry(sandbox, "promote", bad)
        assert done.returncode == 2, bad
        assert done.stderr.startswith("error: version") and "Traceback" not in done.stderr
    assert _state(client) == ("2", {"1": "archived", "2": "production", "3": ""}, "1,2")

    assert _registry(sandbox, "show", " 02").returncode == 0
    assert _registry(sandbox, "rollback").returncode == 0
    assert _state(client) == ("1", {"1": "production", "2": "archived", "3": ""}, "1")


# --- a tracking server that is down or answers errors ------------------------

SECRET = "s3cret"
COMMANDS = (("list",), ("show", "1"), ("promote", "1"), ("rollback",))
#: Seconds a command may take against a dead or broken server beyond its start-up (imports),
#: which loaded test machines stretch: ``_run_all`` times an import of the same modules,
#: started alongside. Measured alone, whole commands: 4-5 s against a closed port (2 s of it
#: retry back-off), about 19 s against a server that never answers (3 tries of 5 s).
BOUND_S = 25.0
#: A job still running this long is killed (before the fix, commands hung for minutes).
GIVE_UP_S = 120.0
STARTUP = "import stock_assets.mlflow_ops.registry, stock_assets.defs.resources"
Result = tuple[int | None, str, float]
FALSE_CLAIMS = ("no registered model", "has no production version", "does not exist")


class _Broken(http.server.BaseHTTPRequestHandler):
    """Answers every request with the error ``server.mode`` names."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, kind, body = {
            "503-html": (503, "text/html", b"<html>\n<b>Service Unavailable</b>\n</html>"),
            "500-json": (500, "application/json", b'{"error_code": "INTERNAL_ERROR"}'),
            "200-garbage": (200, "text/html", b"<html>a login page</html>"),
        }[self.server.mode]  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _broken_server(mode: str) -> Iterator[int]:
    """A loopback HTTP server answering ``mode``'s error; ``silent`` accepts and never answers."""
    if mode == "silent":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)  # the kernel completes connections; nobody reads or answers
            yield sock.getsockname()[1]
        return
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    server.mode = mode  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _run_all(jobs: dict[str, tuple[Sandbox, tuple[str, ...]]]) -> dict[str, Result]:
    """Start every job's ``stock-registry`` at once; (exit status, stderr, seconds) for each,
    with the seconds the start-up took (the imports, timed alongside) subtracted.

    A job still running after :data:`GIVE_UP_S` is killed and reported as status None.
    """
    started = time.monotonic()
    control = subprocess.Popen(
        [sys.executable, "-c", STARTUP], env=next(iter(jobs.values()))[0].env()
    )
    processes = {
        key: subprocess.Popen(
            [str(BIN / "stock-registry"), *args],
            env=sandbox.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key, (sandbox, args) in jobs.items()
    }
    assert control.wait(timeout=GIVE_UP_S) == 0
    startup = time.monotonic() - started
    results = {}
    for key, process in processes.items():
        try:
            _, err = process.communicate(timeout=max(1.0, started + GIVE_UP_S - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
            results[key] = (None, err, time.monotonic() - started - startup)
            continue
        results[key] = (process.returncode, err, time.monotonic() - started - startup)
    return results


def _assert_one_clear_line(key: str, result: Result, host: str) -> None:
    status, err, seconds = result
    assert status not in (None, 0), (key, status, seconds, err)
    assert seconds < BOUND_S, (key, seconds)
    lines = err.strip().splitlines()
    assert len(lines) == 1, (key, err)
    line = lines[0]
    assert line.startswith("error: ") and host in line, (key, line)
    assert "not reachable or refused the request" in line, (key, line)
    assert "alice:***@" in line and SECRET not in err, (key, line)
    assert not any(claim in line for claim in FALSE_CLAIMS), (key, line)


@pytest.mark.slow
def test_every_command_fails_fast_and_clearly_when_the_server_is_down(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    host = f"127.0.0.1:{port}"
    uri = f"http://alice:{SECRET}@{host}"
    default = Sandbox(tmp_path / "default", tracking_uri=uri)
    no_retries = Sandbox(
        tmp_path / "no-retries",
        tracking_uri=uri,
        extra_env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
    )
    jobs = {
        f"{label} {' '.join(args)}": (sandbox, args)
        for label, sandbox in (("default", default), ("retries off", no_retries))
        for args in COMMANDS
    }
    results = _run_all(jobs)
    for key, result in results.items():
        _assert_one_clear_line(key, result, host)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["503-html", "500-json", "200-garbage", "silent"])
def test_every_command_fails_fast_and_clearly_when_the_server_answers_errors(
    tmp_path: Path, mode: str
) -> None:
    with _broken_server(mode) as port:
        host = f"127.0.0.1:{port}"
        sandbox = Sandbox(tmp_path, tracking_uri=f"http://alice:{SECRET}@{host}")
        commands = COMMANDS if mode != "silent" else (("promote", "1"),)  # the slow one: 3 x 5 s
        results = _run_all({" ".join(args): (sandbox, args) for args in commands})
    for key, result in results.items():
        _assert_one_clear_line(f"{mode}: {key}", result, host)


@pytest.mark.slow
def test_an_empty_store_is_still_reported_as_empty(tmp_path: Path) -> None:
    """A store that answers "does not exist" is still told apart from one that cannot answer."""
    sandbox = Sandbox(tmp_path)
    sandbox.data.mkdir(parents=True)
    sandbox.client().search_experiments()  # creates the (empty) SQLite store
    listed = _registry(sandbox, "list")
    assert listed.returncode == 2 and "no registered model" in listed.stderr, listed.stderr
    rolled = _registry(sandbox, "rollback")
    assert rolled.returncode == 2 and "has no production version" in rolled.stderr, rolled.stderr
    shown = _registry(sandbox, "promote", "1")
    assert shown.returncode == 2 and "existing versions: none" in shown.stderr, shown.stderr


# --- ``list`` keeps its columns aligned whatever the values' widths --------


@pytest.mark.slow
def test_list_columns_stay_aligned_with_long_values(tmp_path: Path) -> None:
    """Every value starts where its column's header starts (the version ends where its header
    ends), with long aliases and model types and empty cells."""
    sandbox = Sandbox(tmp_path)
    sandbox.data.mkdir(parents=True)
    client = sandbox.client()
    run = client.create_run(client.create_experiment("scratch"))
    client.create_registered_model(REGISTERED_MODEL_NAME)
    types = ["hist_gradient_boosting_classifier", "", "logistic"]
    for number, model_type in enumerate(types, start=1):
        tags = {"model_type": model_type, "accuracy": f"0.5{number}"} if model_type else {}
        client.create_model_version(
            REGISTERED_MODEL_NAME, f"runs:/{run.info.run_id}/model", run.info.run_id, tags=tags
        )
    assert _registry(sandbox, "promote", "1").returncode == 0
    for alias in ("champion-of-the-long-name", "challenger"):
        client.set_registered_model_alias(REGISTERED_MODEL_NAME, alias, "1")

    done = _registry(sandbox, "list")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.rstrip("\n").splitlines()
    names = ["version", "aliases", "stage", "model_type", "accuracy"]
    assert header.split() == names
    starts = [header.index(name) for name in names]
    table = {}
    for line in rows:
        row = line.ljust(len(line) + len(header))  # trailing empty cells are not printed
        assert row[: starts[1]].endswith("  "), (row, header)
        cells = [row[: starts[1]].strip()]
        for start, end in zip(starts[1:], [*starts[2:], None], strict=True):
            cell = row[start:end]
            assert not cell.startswith(" ") or not cell.strip(), (cell, row, header)
            assert row[start - 1] == " " and (end is None or cell.strip() == "" or cell[-1] == " ")
            cells.append(cell.strip())
        assert len(row[: starts[1]].rstrip()) == len("version"), (row, header)
        table[cells[0]] = cells
    assert table == {
        "1": [
            "1",
            "challenger,champion-of-the-long-name,production",
            "production",
            "hist_gradient_boosting_classifier",
            "0.51",
        ],
        "2": ["2", "", "", "", ""],
        "3": ["3", "", "", "logistic", "0.53"],
    }, done.stdout
