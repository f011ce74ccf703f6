"""The contract between the exporter and the image: what one KFP task runs.

The exporter writes one :class:`TaskSpec` per task into the task's component, as JSON, and the
component's body hands it with the component's arguments to
:func:`exporters.kfp.runtime.run_task`. A plain asset is a graph of one op (``op`` is empty);
an op of a graph-backed asset names its node. Each field says which component argument carries
what, so a config field can be followed from its ``Config`` class (:mod:`exporters.kfp.config`)
through :class:`TaskConfig` to the run config the runtime builds (:mod:`.runtime.parameters`).

Imports neither Dagster nor KFP: the spec is plain data on both sides.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

#: Where a task input's value comes from (:attr:`TaskInput.kind`).
ASSET_INPUT = "asset"  # an upstream asset's artifact
OP_INPUT = "op"  # the artifact of another op of the same graph (same iteration in a fan-out)
COLLECTED_INPUT = "collected"  # one artifact per iteration of an op inside a fan-out
ITEMS_INPUT = "items"  # every item of a fan-out, as the JSON texts its op returned
ITEM_INPUT = "item"  # this iteration's item of a fan-out, as JSON {"key", "value"}
INPUT_KINDS = (ASSET_INPUT, OP_INPUT, COLLECTED_INPUT, ITEMS_INPUT, ITEM_INPUT)

#: The argument carrying a scheduled run's resolved dates, as JSON {parameter: value}.
SCHEDULED_ARGUMENT = "scheduled_values"
#: The argument of a fan-out iteration's item.
LOOP_ITEM = "loop_item"
#: The argument of a task's KFP Metrics output.
METRICS_ARGUMENT = "metrics"


@dataclass(frozen=True)
class TaskInput:
    """One input of the task: the component argument and where its value comes from."""

    argument: str
    kind: str  # one of INPUT_KINDS
    source: str  # the upstream asset key, or the upstream op's node name


@dataclass(frozen=True)
class TaskConfig:
    """One config field of the asset or op, fed by a pipeline parameter."""

    field: str  # the Config field
    parameter: str  # the pipeline parameter (the argument, unless scheduled)
    scheduled: bool = False  # its value arrives resolved in SCHEDULED_ARGUMENT

    @property
    def argument(self) -> str:
        return SCHEDULED_ARGUMENT if self.scheduled else self.parameter


@dataclass(frozen=True)
class TaskSpec:
    """What one KFP task runs, and which of its arguments carry what."""

    module: str  # the Python module whose Definitions the task loads
    asset: str  # the asset key, as a user string
    op: str  # the op's node name in a graph-backed asset; "" for an op-backed asset
    task: str  # the KFP task name, under which the task records its start and outcome
    output: str  # the argument of the output artifact
    inputs: tuple[TaskInput, ...] = ()
    config: tuple[TaskConfig, ...] = ()
    code_version: str = ""  # only here to be part of the task's cache key
    metrics_field: str = ""  # the numbers under this field of the value go to METRICS_ARGUMENT
    gate_field: str = ""  # the boolean a downstream dsl.If reads: the task returns it
    dynamic: bool = False  # a DynamicOut op: the task returns the fan-out's items

    @property
    def label(self) -> str:
        return f"{self.asset}, op {self.op}" if self.op else self.asset

    def config_values(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Config field -> value, from the task's arguments (scheduled ones from their JSON)."""
        resolved: dict[str, Any] = {}
        if any(c.scheduled for c in self.config):
            resolved = json.loads(arguments[SCHEDULED_ARGUMENT])
        return {
            c.field: resolved[c.parameter] if c.scheduled else arguments[c.argument]
            for c in self.config
        }

    def parameter_names(self) -> dict[str, str]:
        """Config field -> pipeline parameter, where they differ (for error messages)."""
        return {c.field: c.parameter for c in self.config if c.parameter != c.field}

    def inputs_of(self, kind: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Source -> the argument's value, for the inputs of one kind."""
        return {i.source: arguments[i.argument] for i in self.inputs if i.kind == kind}

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TaskSpec:
        data = json.loads(text)
        inputs = tuple(TaskInput(**i) for i in data.pop("inputs"))
        config = tuple(TaskConfig(**c) for c in data.pop("config"))
        spec = cls(**data, inputs=inputs, config=config)
        unknown = sorted({i.kind for i in inputs} - set(INPUT_KINDS))
        if unknown:
            raise ValueError(f"task {spec.task!r}: unknown input kind(s) {', '.join(unknown)}")
        return spec
