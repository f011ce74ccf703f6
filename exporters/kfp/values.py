"""Parameter values as the pipeline carries them: refused when it cannot, escaped where shown.

A KFP parameter travels as JSON (a protobuf ``Value``: numbers are doubles) through the
backend's database and the pod's command line, and its default is also printed in the YAML's
comment header. So a value is refused when it has no exact JSON form there (inf, nan, an int
beyond 2**53, a NUL, a lone surrogate), and the header shows each default as a one-line
Python literal, never raw text that YAML could read as a line break.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from kfp.compiler import pipeline_spec_builder

from exporters.kfp.errors import ExportError

if TYPE_CHECKING:
    from exporters.kfp.model import Parameter

#: The largest integer a double holds exactly, and so the largest a KFP parameter keeps.
MAX_EXACT_INT = 2**53

#: Why each refused kind of value cannot be carried, as the hint of the one-line error.
HINTS = {
    "not a finite number": "KFP parameters are JSON numbers, which have no inf or nan.",
    "an integer beyond 2**53": "KFP keeps numbers as doubles, which would change it.",
    "a NUL character": "KFP's backend database and the pod's command line cannot carry it.",
    "a lone surrogate": "It is not valid Unicode and cannot be written as UTF-8.",
}


def unrepresentable(value: Any) -> str:
    """Why a KFP parameter cannot carry ``value`` exactly (a key of :data:`HINTS`), or ""."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return "not a finite number"
    if isinstance(value, int) and abs(value) > MAX_EXACT_INT:
        return "an integer beyond 2**53"
    if isinstance(value, str):
        if "\x00" in value:
            return "a NUL character"
        if any("\ud800" <= c <= "\udfff" for c in value):
            return "a lone surrogate"
    if isinstance(value, list | tuple):
        return next((r for r in map(unrepresentable, value) if r), "")
    return ""


def shown(value: Any) -> str:
    """A default as the header shows it: a Python literal on one line (``repr`` escapes every
    character YAML reads as a line break or refuses)."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(shown, value)) + "]"
    return repr(value) if isinstance(value, str) else str(value)


class _Shown:
    """A default whose ``str`` is its one-line form (the compiler quotes only ``str`` values)."""

    def __init__(self, value: Any) -> None:
        self.text = shown(value)

    def __str__(self) -> str:
        return self.text


def replace_header(text: str, pipeline: Any, parameters: list[Parameter]) -> str:
    """``text`` (the compiler's YAML) with its comment header written again, each default shown
    as the Config field has it and escaped. The compiler prints raw strings there, so a newline
    in a default would start a YAML line of its own; ints would show as doubles (``500.0``)."""
    spec = json_format.MessageToDict(pipeline.pipeline_spec)
    printed = pipeline_spec_builder.extract_comments_from_pipeline_spec(spec, pipeline.description)
    if not text.startswith(printed):
        raise ExportError("the compiled YAML does not start with the compiler's comment header")
    defaults = {p.name: p.default for p in parameters}
    inputs = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    for name, body in inputs.items():
        if "defaultValue" in body:
            body["defaultValue"] = _Shown(defaults.get(name, body["defaultValue"]))
    header = pipeline_spec_builder.extract_comments_from_pipeline_spec(spec, pipeline.description)
    return header + text[len(printed) :]
