"""The README's examples as code: its sections, fenced blocks, commands and shown outputs."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

from tests.conftest import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
#: The pages the README sends readers to; their sections are found like the README's own.
DOCS = PROJECT_ROOT / "docs"


def pages() -> list[str]:
    """The README, then every page of docs/, as text."""
    return [README.read_text(), *(p.read_text() for p in sorted(DOCS.glob("*.md")))]


def all_text() -> str:
    """The README and the docs pages, one after the other."""
    return "\n".join(pages())


SHOWN = "# -> "  # how the README prints what a command answers, on the line after it


@dataclass(frozen=True)
class Example:
    """A command as printed (continuation lines included) and the output shown under it."""

    command: str
    shown: str | None


def section(title: str, text: str | None = None) -> str:
    """The body of the ``## title`` section (of ``text``, else of the README or a docs page),
    up to the next ``## `` heading."""
    for page in [text] if text is not None else pages():
        match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", page, re.M | re.S)
        if match:
            return match.group(1)
    raise AssertionError(f"neither the README nor docs/ has a section '## {title}'")


def fenced_blocks(text: str, language: str = "bash") -> list[str]:
    """The contents of the ```language blocks of ``text``."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def _complete(command: str) -> bool:
    """True when ``command`` has no open quote and does not end with a line continuation."""
    if command.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(command)
    except ValueError:  # "No closing quotation": the command goes on on the next line
        return False
    return True


def examples(block: str, program: str) -> list[Example]:
    """The commands of ``block`` that run ``program``, each with the ``# -> `` line after it."""
    found: list[Example] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith(f"{program} "):
            i += 1
            continue
        command = lines[i]
        while not _complete(command):
            i += 1
            assert i < len(lines), f"unterminated command in the README: {command}"
            command += "\n" + lines[i]
        i += 1
        shown = lines[i][len(SHOWN) :] if i < len(lines) and lines[i].startswith(SHOWN) else None
        found.append(Example(command, shown))
    return found


def assert_like_shown(actual: str, shown: str) -> None:
    """``actual`` (a command's output) is what the README shows.

    A shown text with ``...`` elides: its pieces must appear in ``actual`` in that order.
    Otherwise both are JSON with the same structure and keys; numbers must be equal, floats to
    1e-6 (the README prints what the server sent), and any ``probability_*`` lies in [0, 1].
    """
    if "..." in shown:
        position = 0
        for piece in (p.strip() for p in shown.split("...")):
            found = actual.find(piece, position)
            assert found >= 0, f"{piece!r} not in the answer (in order):\n{actual}"
            position = found + len(piece)
        return
    _assert_same_json(json.loads(actual), json.loads(shown), "answer")


def _assert_same_json(actual: Any, shown: Any, where: str) -> None:
    if isinstance(shown, dict):
        assert isinstance(actual, dict) and set(actual) == set(shown), f"{where}: {actual}"
        for key, value in shown.items():
            _assert_same_json(actual[key], value, f"{where}.{key}")
            if key.startswith("probability_"):
                assert 0.0 <= actual[key] <= 1.0, f"{where}.{key}: {actual[key]}"
    elif isinstance(shown, list):
        assert isinstance(actual, list) and len(actual) == len(shown), f"{where}: {actual}"
        for n, (got, expected) in enumerate(zip(actual, shown, strict=True)):
            _assert_same_json(got, expected, f"{where}[{n}]")
    elif isinstance(shown, bool) or not isinstance(shown, int | float):
        assert actual == shown, f"{where}: {actual!r}, README shows {shown!r}"
    elif isinstance(shown, int):
        assert type(actual) is int and actual == shown, f"{where}: {actual!r}, README: {shown}"
    else:
        assert abs(actual - shown) <= 1e-6, f"{where}: {actual!r}, README shows {shown!r}"
