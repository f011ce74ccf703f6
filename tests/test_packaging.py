"""Packaging facts the other tests rely on: pinned set, image install, no machine paths."""

from __future__ import annotations

import re

from tests.conftest import PROJECT_ROOT


def _makefile_install() -> str:
    text = (PROJECT_ROOT / "Makefile").read_text()
    (line,) = [ln for ln in text.splitlines() if "pip install" in ln and "constraints" in ln]
    return line.split("#")[0]


def test_dockerfile_installs_like_make_install_without_dev_extras() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    (run,) = [ln for ln in dockerfile.splitlines() if ln.startswith("RUN python -m pip install")]
    docker_args = run.removeprefix("RUN python -m pip install").split()
    make_args = _makefile_install().split("pip install", 1)[1].split()
    make_args = [a.replace("'.[dev]'", ".") for a in make_args if a != "--quiet"]
    assert docker_args == make_args


def test_constraints_pin_the_core_versions_and_record_no_index() -> None:
    pins = dict(
        line.split("==")
        for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    )
    assert pins["dagster"] == "1.13.27"
    assert pins["dagster-mlflow"] == "0.29.27"
    assert pins["kfp"] == "2.17.3"
    assert pins["mlflow"] == "3.17.2"
    assert int(pins["pandas"].split(".")[0]) < 3
    text = (PROJECT_ROOT / "constraints.txt").read_text()
    assert not re.search(r"(https?://|file:|--index-url|--extra-index-url|/opt/|/root/)", text)
