"""Wiring the components into a pipeline: tasks, edges, ``dsl.If`` gates and fan-outs.

Each task is created from its component with the channels its :class:`TaskSpec` inputs name:
an upstream asset's artifact, another op's, a fan-out's items (``dsl.ParallelFor``) or the
collected outputs of one (``dsl.Collected``). No cached task takes a per-run input: the KFP
backend's cache key includes every input value (``backend/src/v2/cacheutils/cache.go``), so the
run id reaches the tasks through the pod label ``pipeline/runid`` as an environment variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kfp import dsl

from exporters.kfp.k8s import apply_k8s, use_secret_as_env
from exporters.kfp.model import AssetTask, OpTask, PipelineGraph
from exporters.kfp.ops import ASSET
from exporters.kfp.runtime.identity import RUN_ID_ENV, RUN_ID_FIELD_PATH
from exporters.kfp.spec import (
    ASSET_INPUT,
    COLLECTED_INPUT,
    ITEM_INPUT,
    ITEMS_INPUT,
    OP_INPUT,
    TaskSpec,
)


@dataclass(frozen=True)
class ExportOptions:
    """How the pipeline is emitted; none of these change what the tasks compute."""

    image: str
    pipeline_name: str = ""
    mlflow_tracking_uri: str | None = None
    mlflow_secret: str | None = None
    mlflow_secret_keys: tuple[str, ...] = ()
    disable_caching: bool = False


def emit_tasks(
    graph: PipelineGraph,
    components: dict[str, Any],
    specs: dict[str, TaskSpec],
    values: dict[str, Any],
    fed: Any,
    options: ExportOptions,
) -> None:
    """Create the tasks in topological order, each inside the dsl.If blocks it depends on."""
    emitter = _Emitter(graph, components, specs, values, fed, options)
    chains = condition_chains(graph)
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
    components: dict[str, Any]
    specs: dict[str, TaskSpec]  # component name -> its task's spec
    values: dict[str, Any]  # the pipeline's parameter channels
    fed: Any  # the resolved scheduled values, if a schedule feeds any
    options: ExportOptions
    created: dict[str, Any] = field(default_factory=dict)

    def asset(self, task: AssetTask) -> Any:
        """The task of an asset (of its final op, for a graph-backed asset)."""
        if task.ops:
            return self.graph_asset(task)
        kfp_task = self.task(task, {}, None)
        for dep in task.order_only:
            kfp_task.after(self.created[dep])
        kfp_task.set_display_name(task.asset)  # the asset's name, as Dagster shows it
        return kfp_task

    def task(self, owner: AssetTask | OpTask, made: dict[str, Any], item: Any) -> Any:
        """The KFP task of one component, its arguments the channels its spec's inputs name."""
        spec = self.specs[owner.function_name]
        kwargs: dict[str, Any] = {}
        for source in spec.inputs:
            if source.kind == ASSET_INPUT:
                kwargs[source.argument] = self.created_output(source.source)
            elif source.kind == OP_INPUT:
                kwargs[source.argument] = made[source.source].outputs[source.argument]
            elif source.kind == COLLECTED_INPUT:
                outputs = made[source.source].outputs[source.argument]
                kwargs[source.argument] = dsl.Collected(outputs)
            elif source.kind == ITEMS_INPUT:
                kwargs[source.argument] = made[source.source].outputs["Output"]
            elif source.kind == ITEM_INPUT:
                kwargs[source.argument] = item
        for config in spec.config:  # a scheduled field's value comes resolved, with the others
            value = self.fed if config.scheduled else self.values[config.parameter]
            kwargs[config.argument] = value
        kfp_task = self.components[owner.function_name](**kwargs)
        self.configure(kfp_task, owner)
        return kfp_task

    def created_output(self, asset: str) -> Any:
        """The output artifact holding an upstream asset's value."""
        return self.created[asset].outputs[self.graph_task(asset).output_name]

    def graph_task(self, asset: str) -> AssetTask:
        return next(t for t in self.graph.tasks if t.asset == asset)

    def configure(self, kfp_task: Any, owner: AssetTask | OpTask) -> None:
        """Caching, retries, the pod's Kubernetes settings and the tracking environment."""
        options = self.options
        kfp_task.set_caching_options(bool(owner.code_version) and not options.disable_caching)
        if owner.retry:
            kfp_task.set_retry(**{k: v for k, v in owner.retry.items() if v is not None})
        apply_k8s(kfp_task, owner.k8s)
        configure_env(kfp_task, self.graph, options)

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
        kfp_task = self.task(op, made, item)
        for dep in op.after:
            kfp_task.after(made[dep])
        for dep in op.order_assets:
            kfp_task.after(self.created[dep])
        if not op.after and all(s.kind == ASSET for s in op.inputs):
            for dep in task.order_only:  # an entry op waits for the asset's ordering deps
                kfp_task.after(self.created[dep])
        kfp_task.set_display_name(f"{op.asset}.{op.node}")  # as Dagster shows it in the graph
        return kfp_task


def configure_env(kfp_task: Any, graph: PipelineGraph, options: ExportOptions) -> None:
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


def condition_chains(graph: PipelineGraph) -> dict[str, tuple[str, ...]]:
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
