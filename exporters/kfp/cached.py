"""What a cached KFP task logged, carried in its output artifacts to the runs that reuse them.

A KFP backend that finds a task in its cache does not run the task: it publishes the earlier
execution's output artifacts, with their metadata (MLMD custom properties), to the next tasks
(``reuseCachedOutputs`` in ``backend/src/v2/driver/``; kfp.local's
``LocalCache`` likewise). The cache key covers the component's command, image and inputs
(``backend/src/v2/cacheutils/cache.go``), not its environment: not the tracking URI nor the
secret. So the run's tracking run would miss what the cached task logged, silently.

Here every task, through the tracking resource's lineage methods
(:class:`exporters.kfp.protocols.PipelineRunLineage`), stores under :data:`LINEAGE_METADATA` of
its output artifact, per tracking resource and per task, what its own code added to the tracking
run (the difference of the run before and after it), with the KFP run id and the tracking URI,
and the records its inputs carried. A task whose input carries a record of another KFP run that
was not yet logged on this one logs it (params, tags, dataset inputs), tags the run
``kfp_cached_tasks=<task,...>``, and, when that record was logged to another tracking URI, says so
in one line and in the tag ``kfp_cached_tracking_uri.<task>``.
"""

from __future__ import annotations

import json
from typing import Any

from exporters.kfp.protocols import PipelineRunLineage

LINEAGE_METADATA = "kfp_lineage"
CACHED_TASKS_TAG = "kfp_cached_tasks"
CACHED_URI_TAG = "kfp_cached_tracking_uri."
SECTIONS = ("params", "tags", "inputs")


def _metadata(artifact: Any) -> dict[str, Any]:
    return dict(getattr(artifact, "metadata", None) or {})


def _flatten(artifacts: list[Any]) -> list[Any]:
    found = []
    for artifact in artifacts:
        found.extend(artifact if isinstance(artifact, list) else [artifact])
    return found


def _listed(held: dict[str, Any]) -> set[str]:
    """The tasks the run already lists as cached."""
    return set(filter(None, (held.get("tags") or {}).get(CACHED_TASKS_TAG, "").split(",")))


def _added(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each section's entries that are new or changed in ``after``."""
    added = {}
    for section in SECTIONS:
        old = before.get(section) or {}
        added[section] = {k: v for k, v in (after.get(section) or {}).items() if old.get(k) != v}
    return added


class TaskLineage:
    """One task's part: log its inputs' cached records, then record what it logged itself."""

    def __init__(self, resources: dict[str, Any], keys: list[str], run_id: str, task: str) -> None:
        self.trackers = {
            k: resources[k] for k in keys if isinstance(resources[k], PipelineRunLineage)
        }
        self.run_id, self.task = run_id, task
        self.before: dict[str, dict[str, Any]] = {}
        self.carried: dict[str, dict[str, dict[str, Any]]] = {}

    def begin(self, inputs: list[Any]) -> None:
        """Log the records of tasks of other KFP runs that the input artifacts carry."""
        for key, tracker in self.trackers.items():
            carried: dict[str, dict[str, Any]] = {}
            for artifact in _flatten(inputs):
                carried.update(_metadata(artifact).get(LINEAGE_METADATA, {}).get(key, {}))
            held = json.loads(tracker.pipeline_run_lineage(self.run_id))
            listed = _listed(held)
            new = {
                task: record
                for task, record in sorted(carried.items())
                if record.get("kfp_run_id") != self.run_id and task not in listed
            }
            if new:
                held = self._log(key, tracker, held, new)
            self.before[key], self.carried[key] = held, carried

    def _log(
        self, key: str, tracker: Any, held: dict[str, Any], new: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """Log ``new`` records on this run; return what the run then holds."""
        merged: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
        for record in new.values():
            for section in SECTIONS:
                merged[section].update(record.get(section) or {})
        merged["tags"][CACHED_TASKS_TAG] = ",".join(sorted(_listed(held) | set(new)))[:5000]
        own_uri = held.get("tracking_uri", "")
        elsewhere = []
        for task, record in new.items():
            uri = record.get("tracking_uri", "")
            if uri and own_uri and uri != own_uri:
                merged["tags"][f"{CACHED_URI_TAG}{task}"] = uri
                elsewhere.append(f"{task} logged to {uri}")
        notes = tracker.log_pipeline_lineage(self.run_id, json.dumps(merged, sort_keys=True))
        origins = ", ".join(sorted({str(r.get("kfp_run_id")) for r in new.values()}))
        print(
            f"{key}: cached task(s) {', '.join(sorted(new))} from KFP run {origins}: their "
            f"records are copied onto KFP run {self.run_id}"
            + (f"; not to this run's {own_uri}: {'; '.join(elsewhere)}" if elsewhere else "")
            + "".join(f"; {note}" for note in notes or [])
        )
        return {**held, **{s: {**(held.get(s) or {}), **merged[s]} for s in SECTIONS}}

    def end(self, output: Any) -> None:
        """Store in ``output``'s metadata what this task logged, and what its inputs carried."""
        metadata = getattr(output, "metadata", None)
        if metadata is None or not self.trackers:
            return
        stored: dict[str, dict[str, Any]] = {}
        for key, tracker in self.trackers.items():
            after = json.loads(tracker.pipeline_run_lineage(self.run_id))
            own = {
                "kfp_run_id": self.run_id,
                "tracking_uri": after.get("tracking_uri", ""),
                **_added(self.before.get(key, {}), after),
            }
            stored[key] = {**self.carried.get(key, {}), self.task: own}
        metadata[LINEAGE_METADATA] = stored
