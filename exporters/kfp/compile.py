"""Emitting and validating ``pipeline.yaml`` from a :class:`PipelineGraph`.

Each asset becomes a lightweight component whose body is three lines of generated Python: it
imports :mod:`exporters.kfp.runtime` (shipped in the project's image) and materialises that one
asset. Only this thin body is generated; the asset logic stays in the project.
"""

from __future__ import annotations

import inspect
import linecache
import textwrap
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp import compiler, dsl
from kfp.pipeline_spec import pipeline_spec_pb2

from exporters.kfp.graph import AssetTask, PipelineGraph, python_name

DEFAULT_IMAGE = "stock-assets:0.1.0"
EXIT_TASK = "finish_mlflow_run"
SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
PRELUDE = "from kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n"


@dataclass(frozen=True)
class ExportOptions:
    """How the pipeline is emitted; none of these change what the tasks compute."""

    image: str = DEFAULT_IMAGE
    pipeline_name: str = ""
    mlflow_tracking_uri: str | None = None
    mlflow_secret: str | None = None
    disable_caching: bool = False


def component_source(task: AssetTask, module: str) -> str:
    """The generated Python function for one asset's component."""
    params = [f"{python_name(up)}: Input[{task.upstream_types[up]}]" for up in task.upstream]
    params.append(f"{_output_name(task)}: Output[{task.artifact_type}]")
    if task.metrics_field:
        params.append("metrics: Output[Metrics]")
    params.append("kfp_run_id: str")
    params += [f"{p.name}: {p.type_name} = {p.default!r}" for p in task.parameters]
    returns = " -> bool" if task.gate_field else ""
    inputs = ", ".join(f"{up!r}: {python_name(up)}.path" for up in task.upstream)
    config = ", ".join(f"{p.field!r}: {p.name}" for p in task.parameters)
    doc = task.description or task.asset
    if task.check_names:
        doc += f"\n\nAsset checks run in this task: {', '.join(task.check_names)}."
    body = f"""
        def {task.function_name}({", ".join(params)}){returns}:
            {doc!r}
            from exporters.kfp.runtime import materialize_asset

            {"return " if task.gate_field else ""}materialize_asset(
                module={module!r},
                asset={task.asset!r},
                inputs={{{inputs}}},
                output={_output_name(task)}.path,
                config={{{config}}},
                kfp_run_id=kfp_run_id,
                code_version={task.code_version or ""!r},
                metrics={"metrics" if task.metrics_field else "None"},
                metrics_field={task.metrics_field!r},
                gate_field={task.gate_field!r},
            )
    """
    return textwrap.dedent(body).lstrip()


def exit_source(module: str) -> str:
    """The exit handler's function: end the KFP run's MLflow run with the pipeline's state."""
    return textwrap.dedent(f'''
        def {EXIT_TASK}(kfp_run_id: str, status: dsl.PipelineTaskFinalStatus):
            """End this KFP run's MLflow run: FINISHED if the pipeline succeeded, else FAILED."""
            from exporters.kfp.runtime import finish_pipeline_run

            finish_pipeline_run(module={module!r}, kfp_run_id=kfp_run_id, state=status.state)
    ''').lstrip()


def build_pipeline(graph: PipelineGraph, options: ExportOptions) -> Any:
    """The KFP pipeline object for ``graph``."""
    tasks = {t.asset: t for t in graph.tasks}
    sources = [component_source(t, graph.module) for t in graph.tasks]
    if graph.uses_mlflow:
        sources.append(exit_source(graph.module))
    functions = _define(f"<kfp components of {graph.module}>", "\n\n".join(sources))
    components = {
        name: dsl.component(fn, base_image=options.image, install_kfp_package=False)
        for name, fn in functions.items()
    }
    parameters = graph.parameters
    signature = inspect.Signature(
        [
            inspect.Parameter(
                p.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=p.default,
                annotation={"int": int, "float": float, "str": str, "bool": bool, "list": list}[
                    p.type_name
                ],
            )
            for p in parameters
        ]
    )

    def pipeline_body(*channels: Any) -> None:
        values = dict(zip([p.name for p in parameters], channels, strict=True))
        with ExitStack() as stack:
            if graph.uses_mlflow:
                exit_task = components[EXIT_TASK](kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
                exit_task.set_display_name("end MLflow run")
                exit_task.set_caching_options(False)
                _configure_env(exit_task, options)
                stack.enter_context(dsl.ExitHandler(exit_task, name="mlflow-run"))
            _emit(graph, tasks, components, values, options)

    pipeline_body.__signature__ = signature  # type: ignore[attr-defined]
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
    options: ExportOptions,
) -> None:
    """Create the tasks in topological order, each inside the dsl.If blocks it depends on."""
    chains = _condition_chains(graph)
    created: dict[str, Any] = {}
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
            block = dsl.If(created[gate].outputs["Output"] == True, name=f"{gate}-approved")  # noqa: E712
            block.__enter__()
            open_blocks.append((gate, block))
        for task in groups[chain]:
            created[task.asset] = _make_task(task, tasks, components, created, values, options)
    while open_blocks:
        open_blocks.pop()[1].__exit__(None, None, None)


def _make_task(
    task: AssetTask,
    tasks: dict[str, AssetTask],
    components: dict[str, Any],
    created: dict[str, Any],
    values: dict[str, Any],
    options: ExportOptions,
) -> Any:
    kwargs: dict[str, Any] = {
        python_name(up): created[up].outputs[_output_name(tasks[up])] for up in task.upstream
    }
    kwargs.update({p.name: values[p.name] for p in task.parameters})
    kwargs["kfp_run_id"] = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    kfp_task = components[task.function_name](**kwargs)
    for dep in task.order_only:
        kfp_task.after(created[dep])
    kfp_task.set_display_name(_display_name(task))
    kfp_task.set_caching_options(bool(task.code_version) and not options.disable_caching)
    if task.retry:
        kfp_task.set_retry(**{k: v for k, v in task.retry.items() if v is not None})
    setters = {
        ("requests", "cpu"): kfp_task.set_cpu_request,
        ("requests", "memory"): kfp_task.set_memory_request,
        ("limits", "cpu"): kfp_task.set_cpu_limit,
        ("limits", "memory"): kfp_task.set_memory_limit,
    }
    for section, amounts in task.k8s_resources.items():
        for resource_name, amount in amounts.items():
            setters[(section, resource_name)](amount)
    _configure_env(kfp_task, options)
    return kfp_task


def _configure_env(kfp_task: Any, options: ExportOptions) -> None:
    if options.mlflow_tracking_uri:
        kfp_task.set_env_variable("MLFLOW_TRACKING_URI", options.mlflow_tracking_uri)
    if options.mlflow_secret:
        from kfp import kubernetes

        kubernetes.use_secret_as_env(
            kfp_task,
            secret_name=options.mlflow_secret,
            secret_key_to_env={key: key for key in SECRET_KEYS},
            optional=True,
        )


def _condition_chains(graph: PipelineGraph) -> dict[str, tuple[str, ...]]:
    """For each task, the gates it sits under: its own and those of all its ancestors."""
    order = {t.asset: i for i, t in enumerate(graph.tasks)}
    chains: dict[str, tuple[str, ...]] = {}
    for task in graph.tasks:
        gates = set()
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
    return task.function_name


def _display_name(task: AssetTask) -> str:
    """The description's first sentence when it is short, else the asset's name."""
    first = task.description.split(". ")[0].split(": ")[0].strip().rstrip(".")
    return first if first and len(first) <= 60 else task.asset


def pipeline_name(graph: PipelineGraph, options: ExportOptions) -> str:
    """``--pipeline-name``, else the assets' shared group, else the module."""
    return options.pipeline_name or graph.name


def compile_pipeline(graph: PipelineGraph, options: ExportOptions, output: Path) -> str:
    """Compile, validate and write ``output``; return the YAML text."""
    pipeline = build_pipeline(graph, options)
    tmp = output.with_name(f".{output.stem}.tmp.yaml")
    compiler.Compiler().compile(pipeline, str(tmp))
    text = tmp.read_text()
    try:
        validate_pipeline_yaml(text)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(output)
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
