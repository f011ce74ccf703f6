"""The Dagster entry point: ``defs`` is what ``dagster dev`` and the KFP exporter load.

Every definition lives under :mod:`stock_assets.defs`, one module per concern, and is found by
Dagster's ``load_from_defs_folder`` (the project is named in ``[tool.dg]`` of pyproject.toml).
"""

from pathlib import Path

from dagster import load_from_defs_folder

defs = load_from_defs_folder(path_within_project=Path(__file__).parent)
