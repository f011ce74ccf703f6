"""Run one exported task in process, through the same entry point and spec as its component."""

from __future__ import annotations

import ast
from typing import Any

from exporters.kfp.graph import read_graph
from exporters.kfp.runtime import load_definitions, run_task, tracking_resource_keys
from exporters.kfp.spec import TaskSpec
from exporters.kfp.stubs import Component, components


def component(module: str, name: str) -> Component:
    """The component the exporter emits for ``name`` (an asset's or op's function name)."""
    defs = load_definitions(module)
    graph = read_graph(defs, module, tracking_resource_keys(defs))
    return {c.name: c for c in components(graph)}[name]


def task_spec(module: str, name: str) -> TaskSpec:
    """The spec the exporter writes into the component ``name``."""
    return component(module, name).spec


def defaults(module: str, name: str) -> dict[str, Any]:
    """The component's parameter defaults, which KFP passes when a run sets no value."""
    return _defaults(component(module, name))


def run_exported_task(module: str, name: str, **arguments: Any) -> Any:
    """What the component's stub does, with ``arguments`` (and defaults) as KFP passes them."""
    made = component(module, name)  # the graph is read once per task run
    return run_task(made.spec, {**_defaults(made), **arguments})


def _defaults(made: Component) -> dict[str, Any]:
    return {a.name: ast.literal_eval(a.default) for a in made.arguments if a.default}
