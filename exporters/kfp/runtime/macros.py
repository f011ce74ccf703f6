"""KFP recurring-run macros, resolved once per run by the pipeline's first task.

KFP 2.14/2.15 leave ``[[ScheduledTime.<layout>]]`` unsubstituted in a v2 recurring run's
parameters (see the README); :func:`resolve_scheduled_values` formats them as the backend would
(backend/src/common/util/parameter_formatter.go at 2.14.0).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

#: A KFP recurring-run macro: [[ScheduledTime.<Go layout>]], [[CurrentTime.<Go layout>]], or bare.
MACRO = re.compile(r"\[\[(ScheduledTime|CurrentTime)(?:\.(.*?))?\]\]")
DEFAULT_LAYOUT = "20060102150405"  # backend/src/common/util/parameter_formatter.go
GO_TOKENS = {"2006": "%Y", "01": "%m", "02": "%d", "15": "%H", "04": "%M", "05": "%S"}
LAYOUT_LITERALS = set("-:T /._")


def go_layout_to_strftime(layout: str) -> str:
    """The strftime format of a Go time layout made of 2006 01 02 15 04 05 and separators."""
    out, i = [], 0
    while i < len(layout):
        token = next((t for t in GO_TOKENS if layout.startswith(t, i)), None)
        if token:
            out.append(GO_TOKENS[token])
            i += len(token)
        elif layout[i] in LAYOUT_LITERALS:
            out.append(layout[i])
            i += 1
        else:
            raise ValueError(
                f"Go time layout {layout!r}: only 2006 01 02 15 04 05 and '-:T /._' are supported"
            )
    return "".join(out)


def format_macros(text: str, when: datetime) -> str:
    """``text`` with every ScheduledTime/CurrentTime macro replaced by ``when`` (UTC)."""
    utc = when.astimezone(UTC)

    def replace(match: re.Match[str]) -> str:
        return utc.strftime(go_layout_to_strftime(match.group(2) or DEFAULT_LAYOUT))

    return MACRO.sub(replace, text)


def resolve_scheduled_values(values: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The scheduled-date parameters with any macro the backend left in place resolved.

    KFP 2.14/2.15 do not substitute ``[[ScheduledTime...]]`` in a v2 recurring run's parameters
    (see the README); this runs once per run, in its first task, so every task sees one date.
    """
    moment = now or datetime.now(UTC)
    return {
        name: format_macros(value, moment) if isinstance(value, str) else value
        for name, value in values.items()
    }
