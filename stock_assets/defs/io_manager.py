"""The IO manager: one file per asset under the data directory, surviving restarts.

``dump_to_path`` / ``load_from_path`` have the names and signatures of ``dagster.UPathIOManager``:
the KFP runtime calls them with its artifact paths, so both backends store values the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from stock_assets.defs.storage import read_value, write_value
from stock_assets.paths import data_dir


class AssetFileIOManager(ConfigurableIOManager):
    """Stores each asset at ``<base_dir>/<asset key>``: Parquet for tables, JSON for values."""

    base_dir: str | None = Field(
        default=None, description="Folder for asset files; defaults to <data dir>/assets."
    )

    def path_for(self, context: OutputContext | InputContext) -> Path:
        """The one file that holds the asset's value."""
        root = Path(self.base_dir) if self.base_dir else data_dir() / "assets"
        return root.joinpath(*context.asset_key.path)

    def dump_to_path(self, context: OutputContext, obj: Any, path: os.PathLike[str]) -> None:
        """Write ``obj`` to exactly ``path`` (atomically; nothing pickled)."""
        write_value(path, obj)

    def load_from_path(self, context: InputContext, path: os.PathLike[str]) -> Any:
        """Read the value stored at exactly ``path``."""
        return read_value(path)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        path = self.path_for(context)
        self.dump_to_path(context, obj, path)
        context.add_output_metadata({"path": str(path)})

    def load_input(self, context: InputContext) -> Any:
        path = self.path_for(context)
        if not path.is_file():
            raise FileNotFoundError(
                f"asset {context.asset_key.to_user_string()!r} has not been materialised yet "
                f"(no file {path}); materialise it first"
            )
        return self.load_from_path(context, path)
