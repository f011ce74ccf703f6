"""A Dagster ``Config`` class as pipeline parameters: one per field, typed and defaulted.

The way of a config field to a pod: :func:`config_parameters` makes it a :class:`Parameter`
(a pipeline parameter with its type, default and description), :mod:`exporters.kfp.stubs` puts it
in the task's :class:`~exporters.kfp.spec.TaskSpec` as a ``TaskConfig``, and in the pod
:mod:`exporters.kfp.runtime.parameters` types the value back as the field declares it.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from dagster import Config, OpDefinition

from exporters.kfp.dagster_private import decorated_function
from exporters.kfp.errors import UnsupportedConstructError
from exporters.kfp.model import AssetTask, OpTask, Parameter
from exporters.kfp.values import HINTS, unrepresentable

PARAM_TYPES: dict[Any, str] = {int: "int", float: "float", str: "str", bool: "bool"}
#: How a blank-means-unset parameter's description names the type its value is parsed as.
TYPE_WORDS = {"int": "integer", "float": "number", "str": "text", "bool": "true or false"}
LIST_TYPES = {list[str], list[int], list[float], list[bool], list}


def config_class(op_def: OpDefinition, asset: str, where: str = "") -> type[Config] | None:
    fn = decorated_function(op_def)
    params = inspect.signature(fn).parameters
    if "config" not in params:
        if op_def.config_schema and op_def.config_schema.as_field().is_required:
            raise UnsupportedConstructError(
                asset,
                f"{where}a config_schema dict",
                "Use a dagster.Config class so fields, types and defaults can be read.",
            )
        return None
    hints = typing.get_type_hints(fn)
    return hints.get("config", params["config"].annotation)


def config_parameters(op_def: OpDefinition, name: str, where: str = "") -> list[Parameter]:
    """One parameter per field of the op's (or asset's) Config class."""
    fields_of = config_class(op_def, name, where)
    if fields_of is None:
        return []
    parameters = []
    for field_name, info in fields_of.model_fields.items():
        annotation, optional = _optional(info.annotation)
        if annotation in PARAM_TYPES:
            type_name = PARAM_TYPES[annotation]
        elif annotation in LIST_TYPES:
            type_name = "list"
        else:
            raise UnsupportedConstructError(
                name,
                f"{where}config field {field_name!r} of type {annotation}",
                "Pipeline parameters can be int, float, str, bool or a list of those.",
            )
        if info.is_required():
            raise UnsupportedConstructError(
                name,
                f"{where}config field {field_name!r} without a default",
                "Every KFP pipeline parameter needs a default here.",
            )
        default = info.get_default(call_default_factory=True)
        reason = unrepresentable(default)
        if reason:
            raise UnsupportedConstructError(
                name,
                f"{where}config field {field_name!r} default {default!r} ({reason})",
                HINTS[reason],
            )
        description = info.description or ""
        if optional and default is None and type_name in TYPE_WORDS:
            # An `X | None = None` field: a STRING parameter whose default "" means unset (the
            # runtime parses other text as X: runtime.parameters.coerce_config). No default
            # would leave the KFP UI's Start button grey ("Missing parameter.") and kfp.local
            # unable to run.
            hint = f"{TYPE_WORDS[type_name]}; blank = unset"
            description = f"{description} ({hint})" if description else hint
            parameters.append(Parameter(field_name, field_name, "str", "", description))
            continue
        parameters.append(
            Parameter(field_name, field_name, type_name, default, description, optional)
        )
    return parameters


def _optional(annotation: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None`` / ``Optional[X]``, else ``(annotation, False)``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def flatten_parameter_names(tasks: list[AssetTask | OpTask]) -> None:
    """Flat names as in the reference pipeline; prefix with the task only where two tasks share
    a field."""
    counts: dict[str, int] = {}
    for task in tasks:
        for p in task.parameters:
            counts[p.field] = counts.get(p.field, 0) + 1
    for task in tasks:
        task.parameters = [
            Parameter(
                f"{task.function_name}_{p.field}" if counts[p.field] > 1 else p.field,
                p.field,
                p.type_name,
                p.default,
                p.description,
                p.optional,
            )
            for p in task.parameters
        ]
