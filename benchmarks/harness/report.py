"""How figures are shown: durations, sizes, plain-text and Markdown tables, targets and verdicts.

A benchmark declares its targets as :class:`Target` values (what was measured, the goal, whether
it holds) and prints them with :func:`targets_table`; its exit code follows :func:`all_met`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def fmt_s(seconds: float | None, digits: int = 1) -> str:
    """``533 ms`` under a second, ``5.6 s`` (``digits`` decimals) above."""
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.0f} ms" if abs(seconds) < 1 else f"{seconds:,.{digits}f} s"


def fmt_mem(n_bytes: int | None) -> str:
    return "-" if not n_bytes else f"{n_bytes / 2**30:.2f} GiB"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[int] = (0,)) -> str:
    """A plain-text table, indented two spaces; columns in ``left`` left-aligned, the others
    right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i in left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), "-" * len(line(header)), *(line(r) for r in rows)]
    return "\n".join("  " + text for text in out)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table, as the docs show figures."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


@dataclass
class Target:
    """One target: what it is, what was measured, the goal, and whether it holds."""

    name: str
    measured: str
    target: str
    ok: bool


TARGET_HEADER = ["target", "measured", "goal", "verdict"]


def target_rows(found: Sequence[Target]) -> list[list[str]]:
    return [[t.name, t.measured, t.target, verdict(t.ok)] for t in found]


def targets_table(found: Sequence[Target]) -> str:
    return table(TARGET_HEADER, target_rows(found))


def all_met(found: Sequence[Target]) -> bool:
    return all(t.ok for t in found)


def at_most(name: str, value: float, goal: float, shown: str, goal_shown: str) -> Target:
    """A ``value <= goal`` target, its two sides shown as given."""
    return Target(name, shown, f"<= {goal_shown}", value <= goal)
