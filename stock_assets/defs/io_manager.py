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

The files are a cache of what MLflow and the registry record, and are read as untrusted: a
pointer entry's ``path`` is relative to the base directory and must be the file of its run
(``runs/<run id>/<asset key>``), ``written_at`` a number; no file is read or written through a
symlink that leads out of the base directory; a damaged pointer or value fails the step with
one line naming the file and the field. Outside a run (``Definitions.load_asset_value``, e.g.
in a notebook) an asset reads its latest committed value.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from dagster import (
    ConfigurableIOManager,
    DagsterInvariantViolationError,
    Failure,
    InputContext,
    OutputContext,
)
from dagster._core.definitions.metadata import normalize_metadata
from pydantic import Field, ValidationError

from stock_assets.defs.storage import (
    StorageError,
    loads_finite,
    read_error_line,
    read_value,
    write_value,
)
from stock_assets.paths import data_dir

#: How many earlier commits each pointer remembers (for runs that started before them).
POINTER_HISTORY = 20
#: A run id as it may appear in a path: one plain component (Dagster's are UUIDs).
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class PointerError(ValueError):
    """A pointer entry that is not one the IO manager wrote."""


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
            path = self.confined(self.op_output_path(context))
            self.dump_to_path(context, obj, path)
            context.add_output_metadata({"path": str(path)})
            return
        if obj is None:
            return
        path = self.confined(self.path_for(context, context.run_id))
        self.dump_to_path(context, obj, path)
        self._commit(context, path)
        context.add_output_metadata({"path": str(path)})

    def load_input(self, context: InputContext) -> Any:
        if not context.has_asset_key:
            upstream = context.upstream_output
            if upstream is None:  # an op input always has the output it was wired to
                raise DagsterInvariantViolationError(f"input {context.name!r} has no upstream")
            return self._read(context, self.op_output_path(upstream))
        try:
            run_id = context.step_context.run_id
        except DagsterInvariantViolationError:  # outside a run: Definitions.load_asset_value
            return self._load_latest(context)
        own = self.path_for(context, run_id)
        if own.is_file() or own.is_symlink():
            _report_loaded(context, own, run_id)
            return self._read(context, own)
        started = _run_start(context, run_id)
        for entry in self._entries(context):
            path = self.root / entry["path"]
            if entry["written_at"] < started and (path.is_file() or path.is_symlink()):
                context.log.info(
                    f"{context.asset_key.to_user_string()}: not produced by this run; reading "
                    f"the value of run {entry['run_id']}, the latest when this run started"
                )
                _report_loaded(context, path, entry["run_id"])
                return self._read(context, path)
        raise FileNotFoundError(
            f"asset {context.asset_key.to_user_string()!r} has no value written by this run or "
            f"before it started (pointer {self.pointer_for(context)}); materialise it first"
        )

    def _load_latest(self, context: InputContext) -> Any:
        """The asset's latest committed value (no run, so no start time to bound it)."""
        for entry in self._entries(context):
            path = self.root / entry["path"]
            if path.is_file() or path.is_symlink():
                return self._read(context, path)
        raise FileNotFoundError(
            f"asset {context.asset_key.to_user_string()!r} has no committed value (pointer "
            f"{self.pointer_for(context)}); materialise it first"
        )

    def confined(self, path: Path) -> Path:
        """``path`` if it (following any symlink) stays inside the base directory; else Failure."""
        root = self.root.resolve()
        real = Path(path).resolve()
        if not real.is_relative_to(root):
            raise Failure(
                description=(
                    f"{path} leads to {real}, outside the data directory {root}: stored values "
                    "and pointers are read and written only inside it (a symlink out is refused)"
                ),
                allow_retries=False,
            )
        return Path(path)

    def _read(self, context: InputContext, path: Path) -> Any:
        """The value at ``path``, confined to the base directory; a damaged one is one line."""
        try:
            return self.load_from_path(context, self.confined(path))
        except (StorageError, ValidationError, ValueError) as error:
            raise Failure(description=read_error_line(path, error), allow_retries=False) from None

    def _entries(
        self, context: OutputContext | InputContext, strict: bool = True
    ) -> list[dict[str, Any]]:
        """The pointer's entries, newest first; ``[]`` if there is no pointer yet.

        ``strict``: a pointer or entry that the IO manager did not write fails the step, naming
        the file and the field; otherwise (when committing a new entry) it is dropped.
        """
        pointer = self.pointer_for(context)
        if not (pointer.exists() or pointer.is_symlink()):
            return []
        try:
            self.confined(pointer)
            data = loads_finite(pointer.read_text())
        except (Failure, OSError, ValueError, StorageError) as error:
            if not strict:
                return []
            if isinstance(error, Failure):
                raise
            if isinstance(error, StorageError):  # a non-finite number: name its field
                raise Failure(
                    description=f"pointer {pointer}: {error}", allow_retries=False
                ) from None
            detail = str(error).splitlines()[0] if str(error) else error.__class__.__name__
            raise Failure(
                description=(
                    f"pointer {pointer} is not valid JSON ({detail}): it was edited or damaged; "
                    f"materialising {context.asset_key.to_user_string()} again rewrites it"
                ),
                allow_retries=False,
            ) from None
        raw = [data, *(data.get("previous") or [])] if isinstance(data, dict) else [data]
        entries = []
        for index, item in enumerate(raw):
            try:
                entries.append(self._entry(context, item))
            except PointerError as error:
                if strict:
                    where = "entry" if index == 0 else f"entry previous[{index - 1}]"
                    raise Failure(
                        description=f"pointer {pointer}: {where}: {error}", allow_retries=False
                    ) from None
        return entries

    def _entry(self, context: OutputContext | InputContext, item: Any) -> dict[str, Any]:
        """One pointer entry checked: a plain run id, its run's file, a finite time."""
        if not isinstance(item, dict):
            raise PointerError(f"is a {type(item).__name__}; expected an object")
        run_id, path, written_at = item.get("run_id"), item.get("path"), item.get("written_at")
        if not (isinstance(run_id, str) and RUN_ID.fullmatch(run_id) and ".." not in run_id):
            raise PointerError(f"field 'run_id' is {run_id!r}; expected a run id")
        expected = Path("runs", run_id, *context.asset_key.path)
        if not isinstance(path, str) or Path(path) not in (expected, self.root / expected):
            raise PointerError(
                f"field 'path' is {path!r}; expected {str(expected)!r}, the file of run "
                f"{run_id} relative to the data directory {self.root}"
            )
        if (
            isinstance(written_at, bool)
            or not isinstance(written_at, (int, float))
            or not math.isfinite(written_at)
        ):
            raise PointerError(
                f"field 'written_at' is {written_at!r}; expected a number (seconds since the epoch)"
            )
        return {"run_id": run_id, "path": str(expected), "written_at": float(written_at)}

    def _commit(self, context: OutputContext, path: Path) -> None:
        """Replace the asset's pointer, atomically, with this run's file first."""
        pointer = self.confined(self.pointer_for(context))
        pointer.parent.mkdir(parents=True, exist_ok=True)
        lock = pointer.with_name(pointer.name + ".lock")
        import fcntl

        with open(lock, "a") as handle:  # two runs committing at once both stay in the history
            fcntl.flock(handle, fcntl.LOCK_EX)
            earlier = self._entries(context, strict=False)  # a damaged pointer is replaced
            entry = {
                "run_id": context.run_id,
                "path": str(path.relative_to(self.root)),
                "written_at": time.time(),
                "previous": earlier[: POINTER_HISTORY - 1],
            }
            fd, tmp = tempfile.mkstemp(dir=pointer.parent, prefix=f".{pointer.name}.")
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(entry, indent=2))
            os.replace(tmp, pointer)


def _report_loaded(context: InputContext, path: Path, run_id: str) -> None:
    """Name the file and run read on the step's "Loaded input" event, and only there.

    ``add_input_metadata`` would also record an ``AssetObservation`` of the upstream asset at
    every load, filling its Events tab with entries that hold only a path. The metadata goes
    where ``consume_logged_metadata`` takes it for the LOADED_INPUT event (read back by the
    lineage and the deploy steps); a Dagster without that field gets the public call.
    """
    metadata = {"path": str(path), "run_id": run_id}
    current = getattr(context, "_user_generated_metadata", None)
    if isinstance(current, dict):
        context._user_generated_metadata = {**current, **normalize_metadata(metadata)}
    else:  # pragma: no cover - a Dagster that keeps input metadata elsewhere
        context.add_input_metadata(metadata)


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
    root = Path(data) / "assets"
    pointer = root / "latest" / f"{asset}.json"
    try:
        named = Path(json.loads(pointer.read_text())["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return root / "latest" / asset  # no value yet: a path that is absent
    path = named if named.is_absolute() else root / named  # absolute: written before relative
    if not path.resolve().is_relative_to(root.resolve()):
        return root / "latest" / asset  # a pointer out of the data directory names nothing
    return path
