"""Emitting and validating ``pipeline.yaml`` from a :class:`PipelineGraph`.

Each task is a lightweight component whose body is a stub (:mod:`exporters.kfp.stubs`): it
passes the task's spec and arguments to :mod:`exporters.kfp.runtime` (shipped in the project's
image), which materialises that one asset or op. Only the stub is generated; the asset logic
stays in the project. :mod:`exporters.kfp.emit` wires the tasks together.
"""

from __future__ import annotations

import inspect
import linecache
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Optional

import yaml
from google.protobuf import json_format
from kfp import compiler, dsl
from kfp.pipeline_spec import pipeline_spec_pb2

from exporters.kfp.emit import ExportOptions, condition_chains, configure_env, emit_tasks
from exporters.kfp.errors import ExportError
from exporters.kfp.model import Parameter, PipelineGraph
from exporters.kfp.plan import pipeline_plan
from exporters.kfp.stubs import EXIT_TASK, RESOLVER_TASK, components, exit_source, resolver_source
from exporters.kfp.values import replace_header

#: KFP server versions the emitted YAML runs on: 2.14, 2.15 and 2.17 compiled and replayed by the
#: backend's own code (tests/kfp_backend), 2.16 read in its source.
SUPPORTED_KFP_SERVERS = ("2.14", "2.15", "2.16", "2.17")
PRELUDE = "from kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n"
TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list}

__all__ = ["ExportOptions", "build_pipeline", "compile_pipeline", "validate_pipeline_yaml"]


def _parameters_doc(parameters: list[Parameter]) -> str:
    """A docstring whose ``Args:`` KFP reads into each pipeline parameter's description."""
    described = [p for p in parameters if p.description]
    lines = [f"    {p.name}: {' '.join(p.description.split())}" for p in described]
    return "The pipeline.\n\nArgs:\n" + "\n".join(lines) if lines else ""


def build_pipeline(graph: PipelineGraph, options: ExportOptions) -> Any:
    """The KFP pipeline object for ``graph``."""
    parameters = graph.parameters
    scheduled = [p for p in parameters if p.name in set(graph.scheduled_parameters)]
    tasks = components(graph)
    sources = [c.source() for c in tasks]
    if graph.uses_tracking:
        plan = pipeline_plan(graph, condition_chains(graph), options.disable_caching)
        sources.append(exit_source(graph.module, plan))
    if scheduled:
        sources.append(resolver_source(scheduled))
    functions = _define(f"<kfp components of {graph.module}>", "\n\n".join(sources))
    made = {
        name: dsl.component(fn, base_image=options.image, install_kfp_package=False)
        for name, fn in functions.items()
    }
    specs = {c.name: c.spec for c in tasks}
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
                exit_task = made[EXIT_TASK](run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
                exit_task.set_display_name("end tracking run")
                exit_task.set_caching_options(False)
                configure_env(exit_task, graph, options)
                stack.enter_context(dsl.ExitHandler(exit_task, name="tracking-run"))
            fed = None
            if scheduled:
                resolver = made[RESOLVER_TASK](**{p.name: values[p.name] for p in scheduled})
                resolver.set_display_name("resolve scheduled date")
                resolver.set_caching_options(False)
                fed = resolver.output
            emit_tasks(graph, made, specs, values, fed, options)

    pipeline_body.__signature__ = signature  # type: ignore[attr-defined]
    pipeline_body.__doc__ = _parameters_doc(parameters)
    pipeline_body.__name__ = pipeline_name(graph, options).replace("-", "_")
    return dsl.pipeline(
        name=pipeline_name(graph, options),
        description=f"Exported from the Dagster Definitions in {graph.module}.",
    )(pipeline_body)


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
