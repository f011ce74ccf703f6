"""The exporter's plain description of a Dagster graph: tasks, ops, parameters and names.

:mod:`exporters.kfp.graph` reads a ``Definitions`` into these; :mod:`exporters.kfp.stubs`
turns each task into its :class:`~exporters.kfp.spec.TaskSpec` and component, and
:mod:`exporters.kfp.emit` wires the components into a pipeline.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from exporters.kfp.k8s import K8sSettings
from exporters.kfp.ops import OpInput
from exporters.kfp.spec import LOOP_ITEM, METRICS_ARGUMENT, SCHEDULED_ARGUMENT


@dataclass(frozen=True)
class Parameter:
    """One pipeline parameter, from one field of an asset's Config."""

    name: str  # flat pipeline name, prefixed with the asset only on a clash
    field: str  # the Config field it feeds
    type_name: str  # int | float | str | bool | list
    default: Any
    description: str
    optional: bool = False  # an `X | None` field with a default: an optional KFP parameter


@dataclass
class AssetTask:
    """Everything the compiler needs to emit one task."""

    asset: str
    function_name: str
    op_name: str
    description: str
    upstream: list[str]
    order_only: list[str]  # deps without data (AssetDep): ordering edges
    artifact_type: str
    parameters: list[Parameter] = field(default_factory=list)
    run_if: tuple[str, str] | None = None
    gate_field: str = ""  # set on the asset a downstream run_if reads
    metrics_field: str = ""
    code_version: str | None = None
    retry: dict[str, Any] | None = None
    k8s: K8sSettings = field(default_factory=K8sSettings)
    check_names: list[str] = field(default_factory=list)
    upstream_types: dict[str, str] = field(default_factory=dict)
    ops: list[OpTask] = field(default_factory=list)  # a graph-backed asset's op tasks
    parallelism: dict[str, int] = field(default_factory=dict)  # fan-out op -> limit (0: none)

    @property
    def config_owners(self) -> list[AssetTask | OpTask]:
        """What takes config and becomes a KFP task: the ops of a graph-backed asset, else it."""
        return [*self.ops] if self.ops else [self]

    @property
    def label(self) -> str:
        return self.asset

    @property
    def output_name(self) -> str:
        """The artifact holding the asset's value (its final op's, for a graph-backed asset)."""
        return self.ops_by_node[self.final_op].function_name if self.ops else self.function_name

    @property
    def final_op(self) -> str:
        return next(o.node for o in self.ops if o.final)

    @property
    def ops_by_node(self) -> dict[str, OpTask]:
        return {o.node: o for o in self.ops}


@dataclass
class OpTask:
    """One op of a graph-backed asset: one task (one per item inside a fan-out)."""

    asset: str
    node: str  # the op's node name in the graph
    function_name: str
    op_name: str  # its run-config path: ops.<graph>.ops.<node> as "<graph>.<node>"
    description: str
    inputs: list[OpInput]
    after: list[str]  # ops of the same graph it waits for without data
    order_assets: list[str]  # assets it waits for without data
    dynamic: bool  # emits a fan-out's items (a list output parameter)
    loop: str | None  # the fan-out op whose items it runs over
    final: bool
    artifact_type: str
    parameters: list[Parameter] = field(default_factory=list)
    code_version: str | None = None
    retry: dict[str, Any] | None = None
    k8s: K8sSettings = field(default_factory=K8sSettings)

    @property
    def label(self) -> str:
        return f"{self.asset}, op {self.node}"


@dataclass
class PipelineGraph:
    """The asset graph, as tasks in topological order."""

    module: str
    tasks: list[AssetTask]
    tracking_keys: list[str]  # resources of the per-run tracking protocol
    name: str  # the assets' group when they share one, else the module
    scheduled_parameters: list[str] = field(default_factory=list)  # fed a schedule's date

    @property
    def uses_tracking(self) -> bool:
        return bool(self.tracking_keys)

    @property
    def parameters(self) -> list[Parameter]:
        return [p for owner in self.owners for p in owner.parameters]

    @property
    def owners(self) -> list[AssetTask | OpTask]:
        """Every task that takes config: the assets, and the ops of graph-backed ones."""
        return [owner for task in self.tasks for owner in task.config_owners]


def kfp_name(name: str) -> str:
    """The name KFP gives a task or component (kfp.dsl.utils.maybe_rename_for_k8s)."""
    return re.sub("-+", "-", re.sub("[^-0-9a-z]+", "-", name.lower())).strip("-")


#: Names the generated component code uses itself: never an asset's function or argument name.
RESERVED_NAMES = {
    METRICS_ARGUMENT,
    "dsl",
    "kfp",
    "_kfp_runtime",
    SCHEDULED_ARGUMENT,
    "run_name",
    LOOP_ITEM,
}


def _generated_namespace() -> set[str]:
    """Names the generated module binds (its prelude star-imports kfp.dsl and typing)."""
    import builtins
    import typing as typing_module

    from kfp import dsl

    return set(dir(dsl)) | set(dir(typing_module)) | set(dir(builtins)) | RESERVED_NAMES


def python_name(asset: str) -> str:
    """A Python identifier for an asset key: function, artifact and argument name."""
    name = re.sub(r"\W", "_", asset.replace("/", "__"))
    if not name.isidentifier() or keyword.iskeyword(name) or name in _generated_namespace():
        name = f"asset_{name}"
    return name
