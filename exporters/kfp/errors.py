"""The exporter's errors: a graph it cannot translate, a pipeline it could not write faithfully."""

from __future__ import annotations


class UnsupportedConstructError(ValueError):
    """An asset uses something the exporter cannot translate to KFP."""

    def __init__(self, asset: str, construct: str, hint: str = "") -> None:
        message = f"asset {asset!r}: {construct} cannot be exported to KFP"
        super().__init__(f"{message}. {hint}".strip() if hint else message)


class ExportError(ValueError):
    """The compiled pipeline could not be written so that it reads back unchanged."""
