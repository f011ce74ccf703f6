"""Every use of a Dagster API that is not public, in one place.

The exporter reads graphs and the KFP runtime rebuilds one op's graph; a few of the pieces they
need have no public spelling. Each function names the Dagster version it was checked against;
upgrading Dagster means re-checking this module (the exporter's tests exercise every function).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dagster import AssetsDefinition, GraphDefinition, In, OpDefinition, Out


def decorated_function(op_def: OpDefinition) -> Callable[..., Any]:
    """The Python function an ``@op`` / ``@asset`` decorated (its compute function's).

    Checked against Dagster 1.13.27: ``OpDefinition.compute_fn`` is a ``DecoratedOpFunction``
    whose ``decorated_fn`` is the user's function; no public accessor exists.
    """
    return op_def.compute_fn.decorated_fn  # type: ignore[union-attr]


def op_code_version(op_def: OpDefinition) -> str | None:
    """``@op(code_version=...)``.

    Checked against Dagster 1.13.27: stored as ``_version`` and read only through the deprecated
    ``version`` property; ``with_replaced_properties`` reads ``_version`` too.
    """
    return getattr(op_def, "code_version", None) or getattr(op_def, "_version", None)


def dependency_structure(graph: GraphDefinition) -> Any:
    """The graph's dependency structure (edges, fan-ins, dynamic outputs).

    Checked against Dagster 1.13.27: ``GraphDefinition.dependency_structure`` is an internal
    ``DependencyStructure``; its ``has_direct_dep``, ``get_direct_dep``,
    ``has_dynamic_fan_in_dep``, ``get_dynamic_fan_in_dep``, ``has_fan_in_deps`` and
    ``get_upstream_dynamic_output_for_node`` are what :mod:`exporters.kfp.ops` reads.
    """
    return graph.dependency_structure


def collect_dependency(node: str, output: str) -> Any:
    """The dependency ``.collect()`` creates on a dynamic output of ``node``.

    Checked against Dagster 1.13.27: ``DynamicCollectDependencyDefinition`` is not exported from
    ``dagster``.
    """
    from dagster._core.definitions.dependency import DynamicCollectDependencyDefinition

    return DynamicCollectDependencyDefinition(node, output)


def step_node_and_key(step_key: str, mapping_key: str | None) -> tuple[str, str | None]:
    """The node name of a step (``asset.op[key]``) and the mapping key it runs or emits for.

    Checked against Dagster 1.13.27: ``StepHandle.parse_from_key`` parses step keys; an
    iteration's step handle is an ``UnresolvedStepHandle``-derived one with ``mapping_key``.
    """
    from dagster._core.execution.plan.handle import StepHandle

    handle = StepHandle.parse_from_key(step_key)
    return handle.node_handle.name, mapping_key or getattr(handle, "mapping_key", None)


def op_without_retries(op_def: OpDefinition) -> OpDefinition:
    """``op_def`` as Dagster copies an op, minus its retry policy.

    Checked against Dagster 1.13.27: mirrors ``OpDefinition.with_replaced_properties``, which
    cannot clear a policy (it keeps the old one when given None).
    """
    if op_def.retry_policy is None:
        return op_def
    return OpDefinition.dagster_internal_init(
        compute_fn=op_def.compute_fn,
        name=op_def.name,
        ins={input_def.name: In.from_definition(input_def) for input_def in op_def.input_defs},
        outs={
            output_def.name: Out.from_definition(output_def) for output_def in op_def.output_defs
        },
        description=op_def.description,
        config_schema=op_def.config_schema,
        required_resource_keys=op_def.required_resource_keys,
        tags=op_def.tags,
        version=None,
        retry_policy=None,
        code_version=op_def._version,
        pool=op_def.pool,
    )


def asset_with_node(assets_def: AssetsDefinition, node_def: OpDefinition) -> AssetsDefinition:
    """A copy of an op-backed asset whose op is ``node_def``.

    Checked against Dagster 1.13.27: ``AssetsDefinition.dagster_internal_init`` with
    ``get_attributes_dict`` is how Dagster's own ``with_attributes`` copies an asset.
    """
    return AssetsDefinition.dagster_internal_init(
        **{**assets_def.get_attributes_dict(), "node_def": node_def}
    )
