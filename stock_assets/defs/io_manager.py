"""The IO manager: one file per asset and run under the data directory, surviving restarts.

Runs never share a value file. Each run writes ``<base>/runs/<run id>/<asset key>``; once the
file is complete, the pointer ``<base>/latest/<asset key>.json`` is replaced atomically (write to
a temporary file, ``os.replace``) with ``{"run_id", "path", "written_at"}`` and the previous
entries, newest first. A step reads its run's own file; when its run did not produce the value
(a partial re-run), it reads the value that was latest when its run started: the newest pointer
entry written before that moment. So two overlapping runs never read each other's values, and a
run promotes the version it registered and judged.

The outputs of the ops inside a graph-backed asset (the ``model`` asset's candidates and
scores) have no asset key: each is written to ``<base>/runs/<run id>/<step key>/<output>``
(with the mapping key of a fanned-out step) and read from the run that produced it, as
Dagster's own ``fs_io_manager`` does; they have no pointer, nothing outside the run reads them.

``dump_to_path`` / ``load_from_path`` have the names and signatures of ``dagster.UPathIOManager``:
the KFP runtime calls them with its artifact paths, so both backends store values the same way.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from stock_assets.defs.storage import read_value, write_value
from stock_assets.paths import data_dir

#: How many earlier commits each pointer remembers (for runs that started before them).
POINTER_HISTORY = 20


class AssetFileIOManager(ConfigurableIOManager):
    """Stores each asset at ``<base_dir>/runs/<run id>/<asset key>``: Parquet or JSON."""

    base_dir: str | None = Field(
        default=None, description="Folder for asset files; defaults to <data dir>/assets."
    )

    @property
    def root(self) -> Path:
        return Path(self.base_dir) if self.base_dir else data_dir() / "assets"

    def path_for(self, context: OutputContext | InputContext, run_id: str) -> Path:
        """The file that holds the asset's value written by run ``run_id``."""
        return self.root.joinpath("runs", run_id, *context.asset_key.path)

    def pointer_for(self, context: OutputContext | InputContext) -> Path:
        """The asset's "latest" pointer file."""
        *parents, name = context.asset_key.path
        return self.root.joinpath("latest", *parents, f"{name}.json")

    def dump_to_path(self, context: OutputContext, obj: Any, path: os.PathLike[str]) -> None:
        """Write ``obj`` to exactly ``path`` (atomically; nothing pickled)."""
        write_value(path, obj)

    def load_from_path(self, context: InputContext, path: os.PathLike[str]) -> Any:
        """Read the value stored at exactly ``path``."""
        return read_value(path)

    def op_output_path(self, context: OutputContext) -> Path:
        """Where an op output without an asset key lives: by run, step, output (mapping key)."""
        return self.root.joinpath("runs", *context.get_identifier())

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if not context.has_asset_key:
            path = self.op_output_path(context)
            self.dump_to_path(context, obj, path)
            context.add_output_metadata({"path": str(path)})
            return
        if obj is None:
            return
        path = self.path_for(context, context.run_id)
        self.dump_to_path(context, obj, path)
        self._commit(context, path)
        context.add_output_metadata({"path": str(path)})

    def load_input(self, context: InputContext) -> Any:
        if not context.has_asset_key:
            return self.load_from_path(context, self.op_output_path(context.upstream_output))
        run_id = context.step_context.run_id
        own = self.path_for(context, run_id)
        if own.is_file():
            context.add_input_metadata({"path": str(own)})
            return self.load_from_path(context, own)
        started = _run_start(context, run_id)
        for entry in self._entries(context):
            if entry["written_at"] < started and Path(entry["path"]).is_file():
                context.log.info(
                    f"{context.asset_key.to_user_string()}: not produced by this run; reading "
                    f"the value of run {entry['run_id']}, the latest when this run started"
                )
                context.add_input_metadata({"path": entry["path"]})
                return self.load_from_path(context, Path(entry["path"]))
        raise FileNotFoundError(
            f"asset {context.asset_key.to_user_string()!r} has no value written by this run or "
            f"before it started (pointer {self.pointer_for(context)}); materialise it first"
        )

    def _entries(self, context: OutputContext | InputContext) -> list[dict[str, Any]]:
        pointer = self.pointer_for(context)
        try:
            data = json.loads(pointer.read_text())
        except (OSError, ValueError):
            return []
        return [data, *data.get("previous", [])] if isinstance(data, dict) else []

    def _commit(self, context: OutputContext, path: Path) -> None:
        """Replace the asset's pointer, atomically, with this run's file first."""
        pointer = self.pointer_for(context)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        lock = pointer.with_name(pointer.name + ".lock")
        import fcntl

        with open(lock, "a") as handle:  # two runs committing at once both stay in the history
            fcntl.flock(handle, fcntl.LOCK_EX)
            earlier = [
                {k: v for k, v in e.items() if k != "previous"} for e in self._entries(context)
            ]
            entry = {"run_id": context.run_id, "path": str(path), "written_at": time.time()}
            entry["previous"] = earlier[: POINTER_HISTORY - 1]
            fd, tmp = tempfile.mkstemp(dir=pointer.parent, prefix=f".{pointer.name}.")
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(entry, indent=2))
            os.replace(tmp, pointer)


def _run_start(context: InputContext, run_id: str) -> float:
    """When the run started (epoch seconds), from the Dagster instance; now if unknown."""
    record = context.instance.get_run_record_by_id(run_id) if context.instance else None
    if record is not None and record.start_time:
        return float(record.start_time)
    if record is not None and record.create_timestamp:
        return record.create_timestamp.timestamp()
    return time.time()


def latest_path(data: Path, asset: str) -> Path:
    """The file the asset's "latest" pointer names under data directory ``data`` (for tools)."""
    pointer = Path(data) / "assets" / "latest" / f"{asset}.json"
    try:
        return Path(json.loads(pointer.read_text())["path"])
    except (OSError, ValueError, KeyError):
        return Path(data) / "assets" / "latest" / asset  # no value yet: a path that is absent
