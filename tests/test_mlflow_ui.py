"""MLflow's UI as `make mlflow-ui` opens it, seen in a real browser.

MLflow 3.17 opens an experiment on its GenAI overview unless the address asks for the
model-training view; the launcher prints that address. Headless Chromium (Debian's
``chromium``, installed by ``make install``) driven by Playwright opens it with a fresh profile
and must land on the experiment's runs with the model registry one click away. The landing
page is kept as a screenshot (``mlflow-landing.png`` in the test's temporary directory).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from stock_assets.mlflow_ops.registry import REGISTERED_MODEL_NAME
from stock_assets.mlflow_ops.tracking_server import LANDING_QUERY, UI_BACKEND_DB, wait_until_ready
from tests.conftest import PROJECT_ROOT
from tests.support.processes import free_port, stop_group

CHROMIUM = Path("/usr/bin/chromium")
# The machine's network is closed: nothing but the page's own requests.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LANDING = re.compile(r"^Open the training runs: (http://\S+)$", re.MULTILINE)
STARTUP_TIMEOUT = 120.0
PAGE_TIMEOUT_MS = 60_000
RUN_NAME = "browser-check-run"
# What MLflow's GenAI overview shows and the training view does not.
GENAI_ONLY = ("Token Usage", "Detect Issues", "Tokens per Trace")


def wait_for_line(log: Path, pattern: re.Pattern[str], process: subprocess.Popen[bytes]) -> str:
    """The first group of ``pattern`` once the launcher's output has it."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        found = pattern.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.25)
    pytest.fail(f"no line matching {pattern.pattern!r}\n--- log ---\n{log.read_text()[-4000:]}")


def check_landing_page(url: str, profile: Path, screenshot: Path) -> str:
    """Open ``url`` in a fresh headless Chromium; assert it shows the training runs with the
    registry in reach, screenshot it, follow the registry link; return the landing page's URL."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 900},
        )
        try:
            page = browser.new_page()
            page.goto(url, timeout=PAGE_TIMEOUT_MS)
            page.get_by_text(RUN_NAME).first.wait_for(timeout=PAGE_TIMEOUT_MS)
            registry = page.get_by_role("link", name="Model registry")
            registry.wait_for(timeout=PAGE_TIMEOUT_MS)
            landed = page.url
            text = page.inner_text("body")
            page.screenshot(path=str(screenshot))
            for genai in GENAI_ONLY:
                assert genai not in text, f"{genai!r} on the landing page {landed}"
            registry.click()
            page.get_by_text(REGISTERED_MODEL_NAME).first.wait_for(timeout=PAGE_TIMEOUT_MS)
            assert "/models" in page.url, page.url
        finally:
            browser.close()
    return landed


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`make mlflow-ui`'s launcher on a free port and a fresh data dir; (landing URL, data)."""
    data = tmp_path_factory.mktemp("ui-data")
    log = data.parent / f"{data.name}.log"
    port = free_port()
    command = [sys.executable, "-m", "stock_assets.mlflow_ops.tracking_server", "--ui"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--data-dir", str(data)],
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = wait_for_line(log, LANDING, process)
        try:
            wait_until_ready(url.split("/#", 1)[0], STARTUP_TIMEOUT, process)
        except (TimeoutError, RuntimeError) as error:
            pytest.fail(f"{error}\n--- log ---\n{log.read_text()[-4000:]}")
        yield url, data
        assert "Traceback" not in log.read_text()
        assert "StarletteDeprecationWarning" not in log.read_text()
    finally:
        stop_group(process)


@pytest.mark.slow
def test_the_ui_opens_the_experiments_training_runs(ui: tuple[str, Path], tmp_path: Path) -> None:
    url, data = ui
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{data / UI_BACKEND_DB}")
    experiment = client.get_experiment_by_name("stock-prediction")
    assert experiment is not None, "the launcher creates the pipeline's experiment"
    assert experiment.artifact_location == (data / "mlartifacts").as_uri()
    assert url.endswith(f"/#/experiments/{experiment.experiment_id}/runs?{LANDING_QUERY}")
    client.create_run(experiment.experiment_id, run_name=RUN_NAME)
    client.create_registered_model(REGISTERED_MODEL_NAME)

    screenshot = tmp_path / "mlflow-landing.png"
    landed = check_landing_page(url, tmp_path / "profile", screenshot)
    assert f"/experiments/{experiment.experiment_id}/runs" in landed
    assert LANDING_QUERY in landed
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one
