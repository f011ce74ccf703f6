"""Pipeline parameter values as the asset's ``Config`` class types them.

The last step of a config field's way to the pod: the task's spec names the field each argument
feeds (:class:`exporters.kfp.spec.TaskConfig`); here its value, as KFP delivers it, becomes the
type the field declares.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from dagster import AssetsDefinition

from exporters.kfp.dagster_private import decorated_function


class ParameterValueError(ValueError):
    """A pipeline parameter's text is not a value of its Config field's type."""


def coerce_config(
    definition: Any, config: dict[str, Any], parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """Config values as the Config class of an asset (or op definition) types them.

    KFP carries numbers inside lists as JSON doubles (``[1, 2]`` arrives as ``[1.0, 2.0]``):
    ints are restored. An ``X | None`` field arrives as text (exported as a STRING parameter
    whose default ``""`` means unset): blank (or ``None``) is left to the field's default, other
    text is parsed as X; text that is not an X raises :class:`ParameterValueError` naming the
    pipeline parameter (``parameters`` maps a field to it where the names differ).
    """
    op_def = definition.op if isinstance(definition, AssetsDefinition) else definition
    fields = getattr(_config_class(op_def), "model_fields", {})
    coerced = {}
    for name, value in config.items():
        info = fields.get(name)
        if info is not None and _is_optional(info.annotation) and _blank(value):
            continue
        if value is None:
            continue
        if info is None:
            coerced[name] = value
            continue
        try:
            coerced[name] = _coerce(info.annotation, value)
        except ValueError as error:
            parameter = (parameters or {}).get(name, name)
            raise ParameterValueError(f"pipeline parameter {parameter!r}: {error}") from None
    return coerced


def _is_optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(annotation)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _config_class(op_def: Any) -> Any:
    fn = decorated_function(op_def)
    try:
        return typing.get_type_hints(fn).get("config")
    except (NameError, TypeError):
        return fn.__annotations__.get("config")


#: Text accepted for a bool field exported as a blank-means-unset STRING parameter.
BOOL_TEXT = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _coerce(annotation: Any, value: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _coerce(inner[0], value) if len(inner) == 1 else value
    if isinstance(value, str) and annotation in (int, float, bool):
        return _parse(annotation, value)
    if annotation is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(annotation) or (Any,)
        return [_coerce(item, v) for v in value]
    return value


def _parse(annotation: type, text: str) -> Any:
    """``text`` as an int, float or bool; ValueError saying what was expected."""
    stripped = text.strip()
    try:
        if annotation is bool:
            return BOOL_TEXT[stripped.lower()]
        return annotation(stripped)
    except (KeyError, ValueError):
        expected = {int: "an integer", float: "a number", bool: "true or false"}[annotation]
        raise ValueError(f"expected {expected} (blank = unset), got {text!r}") from None
