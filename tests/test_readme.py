"""The README's CLI example, run as printed: its run lands in the instance `make dev` shows, and
its config deploys even after an equal model has been deployed."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from tests import readme
from tests.conftest import (
    PROJECT_ROOT,
    env_for_subprocess,
    failure_text,
    production_version,
    run_graph,
)

ASSETS = ["stock_data", "features", "model", "deploy_decision", "deployed_model"]


def test_readme_parser_reads_commands_and_shown_outputs() -> None:
    block = (
        "make serve   # not curl\n"
        "curl -s -d '{\"a\":\n  [1]}'\n"
        '# -> {"ok": 1}\n'
        "curl -s \\\n  -X POST x\n"
    )
    assert readme.examples(block, "curl") == [
        readme.Example("curl -s -d '{\"a\":\n  [1]}'", '{"ok": 1}'),
        readme.Example("curl -s \\\n  -X POST x", None),
    ]
    answer = '{"p": [{"direction": 0, "probability_up": 0.25}]}'
    readme.assert_like_shown(answer, answer)
    with pytest.raises(AssertionError):  # a probability outside [0, 1]
        readme.assert_like_shown(answer.replace("0.25", "1.5"), answer.replace("0.25", "1.5"))
    with pytest.raises(AssertionError):  # another value than shown
        readme.assert_like_shown(answer.replace("0.25", "0.3"), answer)
    with pytest.raises(AssertionError):
        readme.assert_like_shown('{"message": "b then a"}', '{"message": "a ... b')


def layout_modules(text: str) -> list[str]:
    """The ``.py`` paths the *Layout* section's tree (``text``) names, one per line, folders
    resolved."""
    (block,) = readme.fenced_blocks(text, "")
    folders: list[tuple[int, str]] = []  # (indent, path) of the enclosing folders
    modules = []
    for line in block.splitlines():
        name = line.split()[0] if line.strip() else ""
        indent = len(line) - len(line.lstrip())
        while folders and folders[-1][0] >= indent:
            folders.pop()
        parent = folders[-1][1] if folders else ""
        if name.endswith("/"):
            folders.append((indent, parent + name))
        elif name.endswith(".py"):
            modules.append(parent + name)
    return modules


PROJECT_PACKAGES = ("stock_assets/", "exporters/")


def test_readme_layout_names_every_module_once() -> None:
    """Every module of the project and the exporter, one line each (package __init__ aside)."""
    listed = [m for m in layout_modules(readme.section("Layout")) if m.startswith(PROJECT_PACKAGES)]
    tree = sorted(
        str(path.relative_to(PROJECT_ROOT))
        for folder in PROJECT_PACKAGES
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if path.name != "__init__.py"
    )
    assert sorted(listed) == tree
    assert len(listed) == len(set(listed))


def configuration_example() -> tuple[str, dict]:
    """The *Configuration* section's bash block, and the run config its command passes."""
    (block,) = readme.fenced_blocks(readme.section("Configuration"))
    (example,) = readme.examples(block, ".venv/bin/dagster")
    argv = shlex.split(example.command.replace("\\\n", " "))
    return block, json.loads(argv[argv.index("--config-json") + 1])


def make_dev_home(folder: Path, env: dict[str, str]) -> Path:
    """The DAGSTER_HOME `make dev` uses when started in ``folder``, from its recipe (make -n)."""
    recipe = subprocess.run(
        ["make", "-n", "-f", str(PROJECT_ROOT / "Makefile"), "dev"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert any("stock_assets.dev -h 127.0.0.1 -p 3000" in line for line in recipe), recipe
    (home,) = [line.removeprefix("mkdir -p ") for line in recipe if line.startswith("mkdir -p ")]
    # The project's instance settings (queue limit, run monitoring), unless the user has some.
    assert any(
        line.startswith(f"test -s {home}/dagster.yaml || cp ")
        and line.endswith(f"dagster_instance.yaml {home}/dagster.yaml")
        for line in recipe
    ), recipe
    return Path(home)


@pytest.mark.slow
def test_readme_cli_example_lands_in_make_devs_instance_and_deploys_again(
    tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run by bash as printed, in a folder laid out like the project (its `.venv`, and what
    the Makefile reads), with no DAGSTER_HOME in the environment and a scratch data directory
    and MLflow store. Before it, the same config with champion/challenger on has deployed a
    model and then rejected its equal, as the README says."""
    block, run_config = configuration_example()
    ops = {op: body["config"] for op, body in run_config["ops"].items()}
    assert ops["deploy_decision"]["challenge_production"] is False
    data = tmp_path / "data"
    monkeypatch.setenv("STOCK_ASSETS_DATA_DIR", str(data))
    challenged = {
        **ops,
        "deploy_decision": {**ops["deploy_decision"], "challenge_production": True},
    }
    first = run_graph(challenged)
    assert first.success, failure_text(first)
    assert production_version() == first.output_for_node("model").registered_version
    again = run_graph(challenged)
    decision = again.output_for_node("deploy_decision")
    assert decision.deploy is False and "does not beat production version" in decision.reason

    project = tmp_path / "project"
    project.mkdir()
    (project / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    for name in ("pyproject.toml", "constraints.txt"):
        (project / name).symlink_to(PROJECT_ROOT / name)
    env = env_for_subprocess()
    env.pop("DAGSTER_HOME", None)
    shell = subprocess.run(
        ["bash", "-e", "-c", block],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert shell.returncode == 0, shell.stderr[-4000:]
    for noise in ("Add type hints", "include_sources"):
        assert noise not in shell.stderr, noise

    home = make_dev_home(project, env)
    assert home.resolve() == (project / ".dagster_home").resolve()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:  # as `dagster dev` opens it
        (run,) = instance.get_runs()
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.run_config["ops"] == run_config["ops"]
        for asset in ASSETS:
            latest = instance.get_latest_materialization_event(AssetKey(asset))
            assert latest is not None and latest.run_id == run.run_id, asset
        decision = instance.get_latest_materialization_event(AssetKey("deploy_decision"))
        deployed = instance.get_latest_materialization_event(AssetKey("deployed_model"))
    verdict = decision.asset_materialization.metadata
    assert verdict["deploy"].value is True
    assert "champion/challenger is off" in verdict["reason"].value
    promoted = deployed.asset_materialization.metadata["version"].value
    assert production_version() == promoted
