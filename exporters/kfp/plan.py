"""The pipeline's plan for its exit task: which tasks should run, after what, under which gate.

:func:`exporters.kfp.outcome.decide` reads it against the records the tasks left. Each entry is
``{"task", "after", "gates", "loop", "cache"}``: the KFP task name (also the name the task
records itself under), the tasks it runs after, the gate tasks of the ``dsl.If`` blocks it sits
in, the fan-out task of its ``ParallelFor`` (or None), and whether the backend may cache it.
"""

from __future__ import annotations

from typing import Any

from kfp.dsl.utils import maybe_rename_for_k8s

from exporters.kfp.model import AssetTask, OpTask, PipelineGraph
from exporters.kfp.ops import ASSET


def task_id(function_name: str) -> str:
    """The KFP task name of a component function (kfp.dsl.utils.maybe_rename_for_k8s)."""
    return maybe_rename_for_k8s(function_name)


def final_task(task: AssetTask) -> str:
    """The task whose output is the asset's value (a graph-backed asset's final op)."""
    owner = task.ops_by_node[task.final_op] if task.ops else task
    return task_id(owner.function_name)


def pipeline_plan(
    graph: PipelineGraph, chains: dict[str, tuple[str, ...]], disable_caching: bool
) -> list[dict[str, Any]]:
    """The plan of ``graph``, in topological order; ``chains`` maps an asset to its gates."""
    final = {t.asset: final_task(t) for t in graph.tasks}

    def cached(owner: AssetTask | OpTask) -> bool:
        return bool(owner.code_version) and not disable_caching

    plan: list[dict[str, Any]] = []
    for task in graph.tasks:
        gates = [final[g] for g in chains[task.asset]]
        if not task.ops:
            after = {final[a] for a in task.upstream + task.order_only}
            plan.append(_entry(task_id(task.function_name), after, gates, None, cached(task)))
            continue
        by_node = task.ops_by_node
        for op in task.ops:
            after = {final[a] for a in op.order_assets}
            after |= {task_id(by_node[n].function_name) for n in op.after}
            for source in op.inputs:
                if source.kind == ASSET:
                    after.add(final[source.source])
                else:
                    after.add(task_id(by_node[source.source].function_name))
            if not op.after and all(s.kind == ASSET for s in op.inputs):
                after |= {final[a] for a in task.order_only}
            loop = task_id(by_node[op.loop].function_name) if op.loop else None
            plan.append(_entry(task_id(op.function_name), after, gates, loop, cached(op)))
    return plan


def _entry(
    task: str, after: set[str], gates: list[str], loop: str | None, cache: bool
) -> dict[str, Any]:
    return {"task": task, "after": sorted(after), "gates": gates, "loop": loop, "cache": cache}
