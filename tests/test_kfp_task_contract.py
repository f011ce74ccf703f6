"""The task contract in the emitted YAML: every task's command carries one spec, and the spec
accounts for each of the component's inputs and outputs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from exporters.kfp.compile import ExportOptions, compile_pipeline
from exporters.kfp.graph import read_graph
from exporters.kfp.runtime import load_definitions, tracking_resource_keys
from exporters.kfp.spec import METRICS_ARGUMENT, SCHEDULED_ARGUMENT, TaskSpec

STUB_CALL = re.compile(r"return _kfp_runtime\.run_task\((?P<spec>'.*'), locals\(\)\)\n")
MODULES = ("stock_assets.definitions", "tests.graphs.fan_out", "tests.graphs.fan_out_chain")


def _executors(module: str, tmp_path: Path) -> dict[str, tuple[str, dict[str, object]]]:
    """Component name -> (its command's Python source, its input and output definitions)."""
    defs = load_definitions(module)
    graph = read_graph(defs, module, tracking_resource_keys(defs))
    text = compile_pipeline(graph, ExportOptions(image="img:1"), tmp_path / "p.yaml")
    spec = next(d for d in yaml.safe_load_all(text) if d)
    found = {}
    for name, component in spec["components"].items():
        if "executorLabel" not in component:
            continue
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        definitions = {
            **component.get("inputDefinitions", {}).get("artifacts", {}),
            **component.get("inputDefinitions", {}).get("parameters", {}),
            **component.get("outputDefinitions", {}).get("artifacts", {}),
        }
        found[name] = (executor["container"]["command"][-1], definitions)
    return found


@pytest.mark.parametrize("module", MODULES)
def test_every_asset_or_op_task_hands_one_spec_to_run_task(module: str, tmp_path: Path) -> None:
    executors = _executors(module, tmp_path)
    asset_tasks = {n: e for n, e in executors.items() if "run_task(" in e[0]}
    others = set(executors) - set(asset_tasks)
    assert others <= {"comp-end-tracking-run", "comp-resolve-scheduled-dates"}, others
    assert asset_tasks
    for name, (source, definitions) in asset_tasks.items():
        (call,) = STUB_CALL.findall(source)  # exactly one call, the stub's last line
        task = TaskSpec.from_json(ast.literal_eval(call))
        assert task.module == module
        assert f"comp-{task.task}" == name  # the name the task records itself under
        carried = {task.output} | {i.argument for i in task.inputs}
        carried |= {c.argument for c in task.config}
        if task.metrics_field:
            carried.add(METRICS_ARGUMENT)
        # Every input and output the component declares is carried by the spec, and no more
        # (a scheduled field's value comes in SCHEDULED_ARGUMENT, which the spec names).
        assert set(definitions) == carried, name
        assert SCHEDULED_ARGUMENT not in carried or any(c.scheduled for c in task.config)
