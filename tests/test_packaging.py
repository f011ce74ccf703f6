"""Packaging facts the other tests rely on: pinned set, image install, no machine paths."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, env_for_subprocess


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


@pytest.mark.slow
def test_editable_install_builds_without_a_setuptools_warning(tmp_path: Path) -> None:
    """`make install`'s editable install of this folder, into a scratch venv, by pip with build
    isolation: setuptools says nothing about it (with a meta-path finder it warned "Editable
    installation ... folders with the same name as your package"), and the package imports
    from this folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
        + ["--disable-pip-version-check", "-e", str(PROJECT_ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    output = install.stdout + install.stderr
    for noise in ("Editable installation", "BuildBackendWarning", "SetuptoolsWarning"):
        assert noise not in output, output
    found = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print(u.find_spec('stock_assets').origin)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(found.stdout.strip()) == PROJECT_ROOT / "stock_assets" / "__init__.py"


@pytest.mark.slow
def test_code_location_name_matches_whatever_the_folder_is_called(tmp_path: Path) -> None:
    """The project loads under the code location name `dagster dev` gives it ([tool.dagster]),
    without Dagster's warning that [tool.dg.project] names it otherwise (by default: this
    folder's name, e.g. a clone called stock-assets)."""
    env = env_for_subprocess(DAGSTER_HOME=str(tmp_path))
    run = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    output = run.stdout + run.stderr
    assert "Validation successful for code location stock_assets." in output, output
    assert "does not match the name" not in output, output
