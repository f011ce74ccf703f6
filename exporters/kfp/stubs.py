"""Each task's :class:`TaskSpec` and the short component function that carries it.

Every asset or op task becomes the same stub: its signature declares the KFP inputs, outputs
and parameters, and its body hands the spec (as JSON) and its arguments to
:func:`exporters.kfp.runtime.run_task`::

    def features(stock_data: Input[Dataset], features: Output[Dataset], window: int = 5):
        '''Technical indicators per ticker-day.'''
        from exporters.kfp import runtime as _kfp_runtime

        return _kfp_runtime.run_task('{"asset":"features",...}', locals())

The stub's text is part of the task's cache key on a KFP backend (the command of its
container), so changing this module invalidates cached tasks once.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass

from exporters.kfp.model import AssetTask, OpTask, Parameter, PipelineGraph, python_name
from exporters.kfp.ops import ASSET, COLLECTED, COLLECTED_ITEMS, OP
from exporters.kfp.plan import task_id
from exporters.kfp.spec import (
    ASSET_INPUT,
    COLLECTED_INPUT,
    ITEM_INPUT,
    ITEMS_INPUT,
    LOOP_ITEM,
    METRICS_ARGUMENT,
    OP_INPUT,
    SCHEDULED_ARGUMENT,
    TaskConfig,
    TaskInput,
    TaskSpec,
)

EXIT_TASK = "end_tracking_run"
RESOLVER_TASK = "resolve_scheduled_dates"


@dataclass(frozen=True)
class Argument:
    """One argument of a component function, as its signature declares it."""

    name: str
    annotation: str
    default: str = ""  # a Python literal; "" for none

    def source(self) -> str:
        declared = f"{self.name}: {self.annotation}"
        return f"{declared} = {self.default}" if self.default else declared


@dataclass(frozen=True)
class Component:
    """A task's component function: signature, docstring, and the spec its body passes on."""

    name: str
    doc: str
    arguments: tuple[Argument, ...]
    returns: str  # the return annotation, "" for none
    spec: TaskSpec

    def source(self) -> str:
        returns = f" -> {self.returns}" if self.returns else ""
        signature = ", ".join(a.source() for a in self.arguments)
        return (
            f"def {self.name}({signature}){returns}:\n"
            f"    {self.doc!r}\n"
            "    from exporters.kfp import runtime as _kfp_runtime\n\n"
            f"    return _kfp_runtime.run_task({self.spec.to_json()!r}, locals())\n"
        )


def components(graph: PipelineGraph) -> list[Component]:
    """One component per task of ``graph`` (per op of a graph-backed asset), in order."""
    scheduled = set(graph.scheduled_parameters)
    return [
        component(graph.module, task, owner, scheduled)
        for task in graph.tasks
        for owner in task.config_owners
    ]


def component(
    module: str, task: AssetTask, owner: AssetTask | OpTask, scheduled: set[str]
) -> Component:
    """The component of an op-backed asset (``owner is task``) or of one op of a graph."""
    inputs = _inputs(task, owner)
    final = isinstance(owner, AssetTask) or owner.final
    metrics_field = task.metrics_field if final else ""
    gate_field = task.gate_field if final else ""
    dynamic = isinstance(owner, OpTask) and owner.dynamic
    spec = TaskSpec(
        module=module,
        asset=task.asset,
        op=owner.node if isinstance(owner, OpTask) else "",
        task=task_id(owner.function_name),
        output=owner.function_name,
        inputs=tuple(inputs),
        config=tuple(TaskConfig(p.field, p.name, p.name in scheduled) for p in owner.parameters),
        code_version=owner.code_version or "",
        metrics_field=metrics_field,
        gate_field=gate_field,
        dynamic=dynamic,
    )
    arguments = [Argument(i.argument, _input_annotation(task, owner, i)) for i in inputs]
    arguments.append(Argument(owner.function_name, f"Output[{owner.artifact_type}]"))
    if metrics_field:
        arguments.append(Argument(METRICS_ARGUMENT, "Output[Metrics]"))
    if any(c.scheduled for c in spec.config):
        arguments.append(Argument(SCHEDULED_ARGUMENT, "str"))
    arguments += [_parameter_argument(p) for p in owner.parameters if p.name not in scheduled]
    return Component(
        name=owner.function_name,
        doc=_doc(task, owner),
        arguments=tuple(arguments),
        returns="List[str]" if dynamic else "bool" if gate_field else "",
        spec=spec,
    )


def argument_names(task: AssetTask, owner: AssetTask | OpTask) -> list[str]:
    """The arguments of ``owner``'s component (``task``'s or one of its ops') but its config."""
    return [owner.function_name, *(i.argument for i in _inputs(task, owner))]


def _inputs(task: AssetTask, owner: AssetTask | OpTask) -> list[TaskInput]:
    """The task's inputs, one per argument, in signature order."""
    if isinstance(owner, AssetTask):
        return [TaskInput(python_name(up), ASSET_INPUT, up) for up in task.upstream]
    by_node = task.ops_by_node
    found: dict[str, TaskInput] = {}
    items: TaskInput | None = None
    for source in owner.inputs:
        if source.kind == ASSET:
            arg = python_name(source.source)
            found[arg] = TaskInput(arg, ASSET_INPUT, source.source)
        elif source.kind in (OP, COLLECTED):
            upstream = by_node[source.source]
            kind = OP_INPUT if source.kind == OP else COLLECTED_INPUT
            found[upstream.function_name] = TaskInput(upstream.function_name, kind, source.source)
            if source.kind == COLLECTED:
                fan_out = by_node[upstream.loop or ""]
                items = TaskInput(fan_out.function_name, ITEMS_INPUT, fan_out.node)
        elif source.kind == COLLECTED_ITEMS:
            fan_out = by_node[source.source]
            items = TaskInput(fan_out.function_name, ITEMS_INPUT, fan_out.node)
    if items is not None:
        found[items.argument] = items
    if owner.loop:
        found[LOOP_ITEM] = TaskInput(LOOP_ITEM, ITEM_INPUT, owner.loop)
    return list(found.values())


def _input_annotation(task: AssetTask, owner: AssetTask | OpTask, source: TaskInput) -> str:
    if source.kind == ASSET_INPUT:
        return f"Input[{task.upstream_types[source.source]}]"
    if source.kind in (ITEMS_INPUT,):
        return "List[str]"
    if source.kind == ITEM_INPUT:
        return "str"
    upstream = task.ops_by_node[source.source]
    if source.kind == COLLECTED_INPUT:
        return f"Input[List[{upstream.artifact_type}]]"
    return f"Input[{upstream.artifact_type}]"


def _parameter_argument(parameter: Parameter) -> Argument:
    annotation = parameter.type_name
    if parameter.optional:
        annotation = f"Optional[{annotation}]"
    return Argument(parameter.name, annotation, repr(parameter.default))


def _doc(task: AssetTask, owner: AssetTask | OpTask) -> str:
    """The component's description: the asset's or op's, with the checks its task runs."""
    if isinstance(owner, AssetTask):
        doc, final = owner.description or owner.asset, True
    else:
        doc, final = owner.description or f"{task.asset}: op {owner.node}", owner.final
    if final and task.check_names:
        doc += f"\n\nAsset checks run in this task: {', '.join(task.check_names)}."
    if isinstance(owner, OpTask) and owner.dynamic:
        doc += "\n\nReturns the fan-out's items, as JSON {key, value}."
    return doc


def exit_source(module: str, plan: list[dict[str, object]]) -> str:
    """The exit handler's function: end the KFP run's tracking run with the run's outcome.

    The outcome comes from the tasks' records read against ``plan`` (exporters/kfp/outcome.py):
    the state the backend hands an exit task says nothing on 2.14-2.16 (it stays RUNNING).
    """
    plan_json = json.dumps(plan, sort_keys=True)
    return textwrap.dedent(f'''
        def {EXIT_TASK}(status: dsl.PipelineTaskFinalStatus, run_name: str):
            """End this KFP run's tracking run: FINISHED iff every task that should have run
            succeeded (from the tasks' records), else FAILED."""
            from exporters.kfp import runtime as _kfp_runtime

            _kfp_runtime.finish_pipeline_run(
                module={module!r},
                state=status.state,
                run_name=run_name,
                plan={plan_json!r},
            )
    ''').lstrip()


def resolver_source(parameters: list[Parameter]) -> str:
    """The first task when a schedule feeds dates: resolve recurring-run macros once per run."""
    # The pipeline's defaults. An `X | None = None` field arrives as "" (blank = unset); an
    # optional parameter without a value would reach the task as no value at all
    # (backend/src/v2/driver/resolve.go at 2.14.0 skips it), so the function's default applies.
    args = ", ".join(_parameter_argument(p).source() for p in parameters)
    values = ", ".join(f"{p.name!r}: {p.name}" for p in parameters)
    return textwrap.dedent(f'''
        def {RESOLVER_TASK}({args}) -> str:
            """Resolve [[ScheduledTime.<layout>]] the backend left to the run's start (UTC)."""
            import json as _kfp_json  # a bare `json` would shadow a parameter named so

            from exporters.kfp import runtime as _kfp_runtime

            return _kfp_json.dumps(
                _kfp_runtime.resolve_scheduled_values({{{values}}}), sort_keys=True
            )
    ''').lstrip()
