"""Emitting and validating ``pipeline.yaml`` from a :class:`PipelineGraph`.

Each asset becomes a lightweight component whose body is a few lines of generated Python: it
imports :mod:`exporters.kfp.runtime` (shipped in the project's image) and materialises that one
asset. Only this thin body is generated; the asset logic stays in the project. A graph-backed
asset becomes one such component per op; the ops of a dynamic fan-out sit in a
``dsl.ParallelFor`` over the items its ``DynamicOut`` op returns, and an op that collects them
takes a ``dsl.Collected`` list of their artifacts.

No cached task takes a per-run input: the KFP backend's cache key includes every input value
(``backend/src/v2/cacheutils/cache.go``), so the run id reaches the tasks through the pod label
``pipeline/runid`` as an environment variable instead.
"""

from __future__ import annotations

import inspect
import json
import linecache
import textwrap
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from google.protobuf import json_format
from kfp import compiler, dsl
from kfp.pipeline_spec import pipeline_spec_pb2

from exporters.kfp.errors import ExportError
from exporters.kfp.graph import (
    LOOP_ITEM,
    AssetTask,
    OpTask,
    Parameter,
    PipelineGraph,
    python_name,
)
from exporters.kfp.k8s import apply_k8s, use_secret_as_env
from exporters.kfp.ops import ASSET, COLLECTED, COLLECTED_ITEMS, OP
from exporters.kfp.plan import pipeline_plan, task_id
from exporters.kfp.runtime import RUN_ID_ENV, RUN_ID_FIELD_PATH
from exporters.kfp.values import replace_header

#: KFP server versions the emitted YAML runs on: 2.14, 2.15 and 2.17 compiled and replayed by the
#: backend's own code (tests/kfp_backend), 2.16 read in its source.
SUPPORTED_KFP_SERVERS = ("2.14", "2.15", "2.16", "2.17")
EXIT_TASK = "end_tracking_run"
RESOLVER_TASK = "resolve_scheduled_dates"
SCHEDULED_INPUT = "scheduled_values"
PRELUDE = "from kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n"
TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list}


@dataclass(frozen=True)
class ExportOptions:
    """How the pipeline is emitted; none of these change what the tasks compute."""

    image: str
    pipeline_name: str = ""
    mlflow_tracking_uri: str | None = None
    mlflow_secret: str | None = None
    mlflow_secret_keys: tuple[str, ...] = ()
    disable_caching: bool = False


def _annotation(parameter: Parameter) -> str:
    return f"Optional[{parameter.type_name}]" if parameter.optional else parameter.type_name


def _renamed(parameters: list[Parameter]) -> dict[str, str]:
    """Config field -> pipeline parameter, where a clash prefixed the name (for error messages)."""
    return {p.field: p.name for p in parameters if p.name != p.field}


def _parameters_doc(parameters: list[Parameter]) -> str:
    """A docstring whose ``Args:`` KFP reads into each pipeline parameter's description."""
    described = [p for p in parameters if p.description]
    lines = [f"    {p.name}: {' '.join(p.description.split())}" for p in described]
    return "The pipeline.\n\nArgs:\n" + "\n".join(lines) if lines else ""


def component_source(task: AssetTask, module: str, scheduled: set[str]) -> str:
    """The generated Python function for one asset's component."""
    params = [f"{python_name(up)}: Input[{task.upstream_types[up]}]" for up in task.upstream]
    params.append(f"{_output_name(task)}: Output[{task.artifact_type}]")
    if task.metrics_field:
        params.append("metrics: Output[Metrics]")
    own = [p for p in task.parameters if p.name not in scheduled]
    fed = {p.name: p.field for p in task.parameters if p.name in scheduled}
    if fed:
        params.append(f"{SCHEDULED_INPUT}: str")
    params += [f"{p.name}: {_annotation(p)} = {p.default!r}" for p in own]
    returns = " -> bool" if task.gate_field else ""
    inputs = ", ".join(f"{up!r}: {python_name(up)}" for up in task.upstream)
    config = ", ".join(f"{p.field!r}: {p.name}" for p in own)
    doc = task.description or task.asset
    if task.check_names:
        doc += f"\n\nAsset checks run in this task: {', '.join(task.check_names)}."
    extra = f"\n    scheduled={fed!r},\n    scheduled_values={SCHEDULED_INPUT}," if fed else ""
    renamed = _renamed(task.parameters)
    if renamed:
        extra += f"\n    parameters={renamed!r},"
    body = f"""
        def {task.function_name}({", ".join(params)}){returns}:
            {doc!r}
            from exporters.kfp import runtime as _kfp_runtime

            {"return " if task.gate_field else ""}_kfp_runtime.materialize_asset(
                module={module!r},
                asset={task.asset!r},
                task={task_id(task.function_name)!r},
                inputs={{{inputs}}},
                output={_output_name(task)},
                config={{{config}}},
                code_version={task.code_version or ""!r},
                metrics={"metrics" if task.metrics_field else "None"},
                metrics_field={task.metrics_field!r},
                gate_field={task.gate_field!r},{textwrap.indent(extra, "        ")}
            )
    """
    return textwrap.dedent(body).lstrip()


def op_component_source(task: AssetTask, op: OpTask, module: str, scheduled: set[str]) -> str:
    """The generated Python function for one op of a graph-backed asset."""
    by_node = task.ops_by_node
    params: dict[str, str] = {}
    assets: dict[str, str] = {}
    ops: dict[str, str] = {}
    collected: dict[str, str] = {}
    items = ""
    for source in op.inputs:
        if source.kind == ASSET:
            arg = python_name(source.source)
            params[arg] = f"Input[{task.upstream_types[source.source]}]"
            assets[source.source] = arg
        elif source.kind in (OP, COLLECTED):
            upstream = by_node[source.source]
            arg = upstream.function_name
            if source.kind == OP:
                params[arg] = f"Input[{upstream.artifact_type}]"
                ops[source.source] = arg
            else:
                params[arg] = f"Input[List[{upstream.artifact_type}]]"
                collected[source.source] = arg
                items = by_node[upstream.loop or ""].function_name
        elif source.kind == COLLECTED_ITEMS:
            items = by_node[source.source].function_name
    if items:
        params[items] = "List[str]"
    if op.loop:
        params[LOOP_ITEM] = "str"
    params[op.function_name] = f"Output[{op.artifact_type}]"
    metrics_field = task.metrics_field if op.final else ""
    gate_field = task.gate_field if op.final else ""
    if metrics_field:
        params["metrics"] = "Output[Metrics]"
    own = [p for p in op.parameters if p.name not in scheduled]
    fed = {p.name: p.field for p in op.parameters if p.name in scheduled}
    if fed:
        params[SCHEDULED_INPUT] = "str"
    signature = [f"{name}: {annotation}" for name, annotation in params.items()]
    signature += [f"{p.name}: {_annotation(p)} = {p.default!r}" for p in own]
    returns = " -> List[str]" if op.dynamic else " -> bool" if gate_field else ""
    doc = op.description or f"{task.asset}: op {op.node}"
    if op.final and task.check_names:
        doc += f"\n\nAsset checks run in this task: {', '.join(task.check_names)}."
    if op.dynamic:
        doc += "\n\nReturns the fan-out's items, as JSON {key, value}."

    def mapping(values: dict[str, str]) -> str:
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in values.items()) + "}"

    config = ", ".join(f"{p.field!r}: {p.name}" for p in own)
    lines = [
        f"module={module!r},",
        f"asset={task.asset!r},",
        f"op={op.node!r},",
        f"task={task_id(op.function_name)!r},",
        f"assets={mapping(assets)},",
        f"ops={mapping(ops)},",
        f"collected={mapping(collected)},",
        f"items={items or 'None'},",
        f"loop_item={LOOP_ITEM if op.loop else repr('')},",
        f"output={op.function_name},",
        f"config={{{config}}},",
        f"code_version={op.code_version or ''!r},",
    ]
    if metrics_field:
        lines += ["metrics=metrics,", f"metrics_field={metrics_field!r},"]
    if gate_field:
        lines.append(f"gate_field={gate_field!r},")
    if fed:
        lines += [f"scheduled={fed!r},", f"scheduled_values={SCHEDULED_INPUT},"]
    renamed = _renamed(op.parameters)
    if renamed:
        lines.append(f"parameters={renamed!r},")
    call = "\n".join(f"        {line}" for line in lines)
    ret = "return " if returns else ""
    return (
        f"def {op.function_name}({', '.join(signature)}){returns}:\n"
        f"    {doc!r}\n"
        "    from exporters.kfp import runtime as _kfp_runtime\n\n"
        f"    {ret}_kfp_runtime.materialize_op(\n{call}\n    )\n"
    )


def exit_source(module: str, plan: str) -> str:
    """The exit handler's function: end the KFP run's tracking run with the run's outcome.

    The outcome comes from the tasks' records read against ``plan`` (exporters/kfp/outcome.py):
    the state the backend hands an exit task says nothing on 2.14-2.16 (it stays RUNNING).
    """
    return textwrap.dedent(f'''
        def {EXIT_TASK}(status: dsl.PipelineTaskFinalStatus, run_name: str):
            """End this KFP run's tracking run: FINISHED iff every task that should have run
            succeeded (from the tasks' records), else FAILED."""
            from exporters.kfp import runtime as _kfp_runtime

            _kfp_runtime.finish_pipeline_run(
                module={module!r},
                state=status.state,
                run_name=run_name,
                plan={plan!r},
            )
    ''').lstrip()


def resolver_source(parameters: list[Parameter]) -> str:
    """The first task when a schedule feeds dates: resolve recurring-run macros once per run."""
    # The pipeline's defaults. An `X | None = None` field arrives as "" (blank = unset); an
    # optional parameter without a value would reach the task as no value at all
    # (backend/src/v2/driver/resolve.go at 2.14.0 skips it), so the function's default applies.
    args = ", ".join(f"{p.name}: {_annotation(p)} = {p.default!r}" for p in parameters)
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


def build_pipeline(graph: PipelineGraph, options: ExportOptions) -> Any:
    """The KFP pipeline object for ``graph``."""
    tasks = {t.asset: t for t in graph.tasks}
    parameters = graph.parameters
    scheduled = [p for p in parameters if p.name in set(graph.scheduled_parameters)]
    fed = {p.name for p in scheduled}
    sources = [
        op_component_source(t, op, graph.module, fed)
        if isinstance(op, OpTask)
        else component_source(t, graph.module, fed)
        for t in graph.tasks
        for op in t.config_owners
    ]
    if graph.uses_tracking:
        plan = pipeline_plan(graph, _condition_chains(graph), options.disable_caching)
        sources.append(exit_source(graph.module, json.dumps(plan, sort_keys=True)))
    if scheduled:
        sources.append(resolver_source(scheduled))
    functions = _define(f"<kfp components of {graph.module}>", "\n\n".join(sources))
    components = {
        name: dsl.component(fn, base_image=options.image, install_kfp_package=False)
        for name, fn in functions.items()
    }
    signature = inspect.Signature(
        [
            inspect.Parameter(
                p.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=p.default,
                annotation=Optional[TYPES[p.type_name]] if p.optional else TYPES[p.type_name],  # noqa: UP045
            )
            for p in parameters
        ]
    )

    def pipeline_body(*channels: Any) -> None:
        values = dict(zip([p.name for p in parameters], channels, strict=True))
        with ExitStack() as stack:
            if graph.uses_tracking:
                exit_task = components[EXIT_TASK](run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
                exit_task.set_display_name("end tracking run")
                exit_task.set_caching_options(False)
                _configure_env(exit_task, graph, options)
                stack.enter_context(dsl.ExitHandler(exit_task, name="tracking-run"))
            fed = None
            if scheduled:
                resolver = components[RESOLVER_TASK](**{p.name: values[p.name] for p in scheduled})
                resolver.set_display_name("resolve scheduled date")
                resolver.set_caching_options(False)
                fed = resolver.output
            _emit(graph, tasks, components, values, fed, options)

    pipeline_body.__signature__ = signature  # type: ignore[attr-defined]
    pipeline_body.__doc__ = _parameters_doc(parameters)
    pipeline_body.__name__ = pipeline_name(graph, options).replace("-", "_")
    return dsl.pipeline(
        name=pipeline_name(graph, options),
        description=f"Exported from the Dagster Definitions in {graph.module}.",
    )(pipeline_body)


def _emit(
    graph: PipelineGraph,
    tasks: dict[str, AssetTask],
    components: dict[str, Any],
    values: dict[str, Any],
    fed: Any,
    options: ExportOptions,
) -> None:
    """Create the tasks in topological order, each inside the dsl.If blocks it depends on."""
    emitter = _Emitter(graph, tasks, components, values, fed, options)
    chains = _condition_chains(graph)
    groups: dict[tuple[str, ...], list[AssetTask]] = {}
    for task in graph.tasks:
        groups.setdefault(chains[task.asset], []).append(task)
    order = {t.asset: i for i, t in enumerate(graph.tasks)}
    open_blocks: list[tuple[str, Any]] = []
    # Depth-first order of the gates, so each dsl.If block is opened once and nests like them.
    for chain in sorted(groups, key=lambda c: [order[g] for g in c]):
        while open_blocks and tuple(g for g, _ in open_blocks) != chain[: len(open_blocks)]:
            open_blocks.pop()[1].__exit__(None, None, None)
        for gate in chain[len(open_blocks) :]:
            output = emitter.created[gate].outputs["Output"]
            block = dsl.If(output == True, name=f"{gate}-approved")  # noqa: E712
            block.__enter__()
            open_blocks.append((gate, block))
        for task in groups[chain]:
            emitter.created[task.asset] = emitter.asset(task)
    while open_blocks:
        open_blocks.pop()[1].__exit__(None, None, None)


@dataclass
class _Emitter:
    """Creates the KFP tasks of a pipeline being defined; ``created`` holds each asset's."""

    graph: PipelineGraph
    tasks: dict[str, AssetTask]
    components: dict[str, Any]
    values: dict[str, Any]  # the pipeline's parameter channels
    fed: Any  # the resolved scheduled values, if a schedule feeds any
    options: ExportOptions
    created: dict[str, Any] = field(default_factory=dict)

    def asset(self, task: AssetTask) -> Any:
        """The task of an asset (of its final op, for a graph-backed asset)."""
        if task.ops:
            return self.graph_asset(task)
        kwargs: dict[str, Any] = {python_name(up): self.artifact(up) for up in task.upstream}
        kwargs.update(self.parameters(task))
        kfp_task = self.components[task.function_name](**kwargs)
        for dep in task.order_only:
            kfp_task.after(self.created[dep])
        kfp_task.set_display_name(_display_name(task))
        self.configure(kfp_task, task)
        return kfp_task

    def artifact(self, asset: str) -> Any:
        """The output artifact holding an upstream asset's value."""
        return self.created[asset].outputs[_output_name(self.tasks[asset])]

    def parameters(self, owner: AssetTask | OpTask) -> dict[str, Any]:
        scheduled = set(self.graph.scheduled_parameters)
        kwargs = {p.name: self.values[p.name] for p in owner.parameters if p.name not in scheduled}
        if any(p.name in scheduled for p in owner.parameters):
            kwargs[SCHEDULED_INPUT] = self.fed
        return kwargs

    def configure(self, kfp_task: Any, owner: AssetTask | OpTask) -> None:
        """Caching, retries, the pod's Kubernetes settings and the tracking environment."""
        options = self.options
        kfp_task.set_caching_options(bool(owner.code_version) and not options.disable_caching)
        if owner.retry:
            kfp_task.set_retry(**{k: v for k, v in owner.retry.items() if v is not None})
        apply_k8s(kfp_task, owner.k8s)
        _configure_env(kfp_task, self.graph, options)

    def graph_asset(self, task: AssetTask) -> Any:
        """One task per op; a fan-out's ops in a ParallelFor over its items."""
        made: dict[str, Any] = {}
        ops = task.ops
        index = 0
        while index < len(ops):
            loop = ops[index].loop
            if loop is None:
                made[ops[index].node] = self.op(task, ops[index], None, made)
                index += 1
                continue
            members = []
            while index < len(ops) and ops[index].loop == loop:
                members.append(ops[index])
                index += 1
            # Never named: a named ParallelFor breaks dsl.Collected on KFP 2.14 (#13239).
            limit = task.parallelism.get(loop) or None
            with dsl.ParallelFor(items=made[loop].outputs["Output"], parallelism=limit) as item:
                for op in members:
                    made[op.node] = self.op(task, op, item, made)
        return made[task.final_op]

    def op(self, task: AssetTask, op: OpTask, item: Any, made: dict[str, Any]) -> Any:
        by_node = task.ops_by_node
        kwargs: dict[str, Any] = {}
        for source in op.inputs:
            if source.kind == ASSET:
                kwargs[python_name(source.source)] = self.artifact(source.source)
            elif source.kind == OP:
                name = by_node[source.source].function_name
                kwargs[name] = made[source.source].outputs[name]
            elif source.kind == COLLECTED:
                upstream = by_node[source.source]
                kwargs[upstream.function_name] = dsl.Collected(
                    made[source.source].outputs[upstream.function_name]
                )
                fan_out = by_node[upstream.loop or ""]
                kwargs[fan_out.function_name] = made[fan_out.node].outputs["Output"]
            elif source.kind == COLLECTED_ITEMS:
                items = made[source.source].outputs["Output"]
                kwargs[by_node[source.source].function_name] = items
        if op.loop:
            kwargs[LOOP_ITEM] = item
        kwargs.update(self.parameters(op))
        kfp_task = self.components[op.function_name](**kwargs)
        for dep in op.after:
            kfp_task.after(made[dep])
        for dep in op.order_assets:
            kfp_task.after(self.created[dep])
        if not op.after and all(s.kind == ASSET for s in op.inputs):
            for dep in task.order_only:  # an entry op waits for the asset's ordering deps
                kfp_task.after(self.created[dep])
        kfp_task.set_display_name(_op_display_name(op))
        self.configure(kfp_task, op)
        return kfp_task


def _configure_env(kfp_task: Any, graph: PipelineGraph, options: ExportOptions) -> None:
    """Tracking URI, credentials from the secret, and the run id from the pod's label."""
    if options.mlflow_tracking_uri:
        kfp_task.set_env_variable("MLFLOW_TRACKING_URI", options.mlflow_tracking_uri)
    if options.mlflow_secret:
        use_secret_as_env(
            kfp_task, options.mlflow_secret, {key: key for key in options.mlflow_secret_keys}
        )
    if graph.uses_tracking:
        from kfp import kubernetes

        # Not an input: the backend's cache key includes input values (cacheutils/cache.go).
        kubernetes.use_field_path_as_env(kfp_task, RUN_ID_ENV, RUN_ID_FIELD_PATH)


def _condition_chains(graph: PipelineGraph) -> dict[str, tuple[str, ...]]:
    """For each task, the gates it sits under: its own and those of all its ancestors."""
    order = {t.asset: i for i, t in enumerate(graph.tasks)}
    chains: dict[str, tuple[str, ...]] = {}
    for task in graph.tasks:
        gates: set[str] = set()
        for parent in task.upstream + task.order_only:
            gates.update(chains[parent])
        if task.run_if:
            gates.add(task.run_if[0])
        chains[task.asset] = tuple(sorted(gates, key=order.__getitem__))
    return chains


def _define(filename: str, source: str) -> dict[str, Any]:
    """Exec generated functions so that ``inspect.getsource`` (used by KFP) can read them."""
    full = PRELUDE + source
    linecache.cache[filename] = (len(full), None, full.splitlines(True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(full, filename, "exec", dont_inherit=True), namespace)  # noqa: S102 - our own generated code
    return {
        name: value
        for name, value in namespace.items()
        if inspect.isfunction(value) and value.__code__.co_filename == filename
    }


def _output_name(task: AssetTask) -> str:
    return task.output_name


def _op_display_name(op: OpTask) -> str:
    """``<asset>.<op>``: the op's name as Dagster shows it in the asset's graph."""
    return f"{op.asset}.{op.node}"


def _display_name(task: AssetTask) -> str:
    """The asset's name, as Dagster shows it (an op's task is ``<asset>.<op>``); the description
    is the component's docstring."""
    return task.asset


def pipeline_name(graph: PipelineGraph, options: ExportOptions) -> str:
    """``--pipeline-name``, else the assets' shared group, else the module."""
    return options.pipeline_name or graph.name


def compile_pipeline(graph: PipelineGraph, options: ExportOptions, output: Path) -> str:
    """Compile, validate and write ``output``; return the YAML text. Nothing is left on error.

    The text written must read back (``yaml.safe_load``) as exactly the spec compiled in memory.
    """
    pipeline = build_pipeline(graph, options)
    tmp = output.with_name(f".{output.stem}.tmp.yaml")
    try:
        compiler.Compiler().compile(pipeline, str(tmp))
        text = replace_header(tmp.read_bytes().decode(), pipeline, graph.parameters)
        validate_pipeline_yaml(text)
        compiled = [json_format.MessageToDict(pipeline.pipeline_spec)]
        if pipeline.platform_spec.platforms:
            compiled.append(json_format.MessageToDict(pipeline.platform_spec))
        if [d for d in yaml.safe_load_all(text) if d] != compiled:
            raise ExportError(f"{output}: the YAML would not read back as the compiled pipeline")
        tmp.write_bytes(text.encode())
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    return text


def validate_pipeline_yaml(text: str) -> pipeline_spec_pb2.PipelineSpec:
    """Parse as a KFP PipelineSpec and check every component and executor reference resolves."""
    documents = [d for d in yaml.safe_load_all(text) if d]
    spec = json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
    components = set(spec.components)
    executors = set(spec.deployment_spec["executors"].keys())
    dags = [spec.root.dag] + [c.dag for c in spec.components.values() if c.HasField("dag")]
    for dag in dags:
        for name, task in dag.tasks.items():
            if task.component_ref.name not in components:
                raise ValueError(
                    f"task {name!r} references unknown component {task.component_ref.name!r}"
                )
    for name, component in spec.components.items():
        if component.executor_label and component.executor_label not in executors:
            raise ValueError(
                f"component {name!r} references unknown executor {component.executor_label!r}"
            )
    return spec
