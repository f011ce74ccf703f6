"""A filesystem IO manager: one file per asset under the data directory, surviving restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from stock_assets.paths import data_dir
from stock_assets.storage import read_value, suffix_for, write_value


class AssetFileIOManager(ConfigurableIOManager):
    """Stores DataFrames as Parquet, dicts as JSON and models as joblib, named after the asset."""

    base_dir: str | None = Field(
        default=None, description="Folder for asset files; defaults to <data dir>/assets."
    )

    def _stem(self, asset_path: list[str]) -> Path:
        root = Path(self.base_dir) if self.base_dir else data_dir() / "assets"
        return root.joinpath(*asset_path)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        stem = self._stem(context.asset_key.path)
        for stale in stem.parent.glob(f"{stem.name}.*"):
            if stale.suffix != suffix_for(obj):
                stale.unlink()
        path = write_value(stem.with_suffix(suffix_for(obj)), obj)
        context.add_output_metadata({"path": str(path)})

    def load_input(self, context: InputContext) -> Any:
        stem = self._stem(context.asset_key.path)
        matches = sorted(stem.parent.glob(f"{stem.name}.*")) if stem.parent.exists() else []
        matches = [m for m in matches if not m.name.startswith(".")]
        if not matches:
            raise FileNotFoundError(
                f"asset {context.asset_key.to_user_string()!r} has not been materialised yet "
                f"(no file {stem}.*); materialise it first"
            )
        return read_value(matches[0])

    # The KFP exporter's storage protocol (exporters/kfp/protocols.py): same files, KFP's paths.
    def dump_to_path(self, context: OutputContext, obj: Any, path: Any) -> None:
        write_value(path, obj)

    def load_from_path(self, context: InputContext, path: Any) -> Any:
        return read_value(path)
