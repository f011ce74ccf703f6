"""Exporting with the real CLI and running the emitted YAML with kfp.local."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import PROJECT_ROOT, env_for_subprocess


def export(output: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m exporters.kfp -o output *args`` from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "exporters.kfp", "-o", str(output), *args],
        cwd=PROJECT_ROOT,
        env=env_for_subprocess(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_yaml(package: Path, pipeline_root: Path, **arguments: Any) -> tuple[bool, Path]:
    """Load ``package`` from file and execute it with kfp.local; return (success, run folder)."""
    from kfp import components, local

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
    )
    before = set(pipeline_root.glob("*")) if pipeline_root.exists() else set()
    pipeline = components.load_component_from_file(str(package))
    try:
        pipeline(**arguments)
        succeeded = True
    except RuntimeError as error:  # kfp.local: "Pipeline ... finished with status FAILURE"
        assert "FAILURE" in str(error), error
        succeeded = False
    (run_dir,) = set(pipeline_root.glob("*")) - before
    return succeeded, run_dir


def executed_tasks(run_dir: Path) -> set[str]:
    """Names of the tasks that actually ran (each leaves its executor output in its folder)."""
    return {p.parent.name for p in run_dir.glob("*/executor_output.json")}


def load_spec(path: Path) -> dict[str, Any]:
    """The PipelineSpec document (the first YAML document)."""
    return next(d for d in yaml.safe_load_all(path.read_text()) if d)


def all_tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of every DAG (root, exit handler, conditions), by name."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def producer_tasks(task: dict[str, Any]) -> set[str]:
    """Producer tasks of a task's artifacts, also through a condition's pipeline channels."""
    producers = set()
    for artifact in task.get("inputs", {}).get("artifacts", {}).values():
        if "taskOutputArtifact" in artifact:
            producers.add(artifact["taskOutputArtifact"]["producerTask"])
        else:  # inside a dsl.If: 'pipelinechannel--<task>-<output_name>'
            channel = artifact["componentInputArtifact"].removeprefix("pipelinechannel--")
            producers.add(channel.rsplit("-", 1)[0])
    return producers | set(task.get("dependentTasks", []))


def kubernetes_executors(path: Path) -> dict[str, Any]:
    """The Kubernetes platform config of every executor (the second YAML document)."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
