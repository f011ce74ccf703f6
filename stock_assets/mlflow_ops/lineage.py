"""Data lineage in MLflow: the tables a run learned from, as dataset inputs and tags.

The ``model`` run logs its training and test windows with :func:`log_training_data`: two
dataset inputs (contexts ``training`` and ``evaluation``) whose digest is our full-content
digest (:func:`stock_assets.core.lineage.frame_digest`, not MLflow's default, which hashes at
most 10,000 rows and skips date columns), plus run tags that the
``model`` asset copies onto the registered model version. ``stock_data`` and ``features`` tag
the run with their own digests (:func:`lineage_tags`, through
:func:`stock_assets.defs.lineage.table_lineage`). Like
:mod:`stock_assets.mlflow_ops.run_logging`, these are plain functions given an
``MlflowClient`` and the run's id, not MLflow's active run.

MLflow keeps one dataset per experiment, name and digest, and its ``source`` is the one of the
first run that logged it; the location this run read the table from is also an input tag
(``stored_at``), which belongs to this run alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.entities import Dataset, DatasetInput, InputTag, Run
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.types import ColSpec, Schema
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from stock_assets.core.features import TARGET_COLUMN
from stock_assets.core.lineage import TableSummary, summarise
from stock_assets.core.splits import TimeSplit
from stock_assets.mlflow_ops.run_logging import set_tags

#: The windows of the features table a model sees, and the MLflow input context of each.
SPLITS = {"train": "training", "test": "evaluation"}
STORED_AT_TAG = "stored_at"


class AssetRunSource(DatasetSource):
    """A table known by its asset and the run that read it (and a URI MLflow cannot resolve)."""

    def __init__(self, asset: str, run_ids: dict[str, str], uri: str = "") -> None:
        self.asset = asset
        self.run_ids = {key: value for key, value in run_ids.items() if value}
        self.uri = uri

    @staticmethod
    def _get_source_type() -> str:
        return "asset_run"

    def load(self) -> Any:
        raise NotImplementedError(
            f"asset {self.asset!r} was stored by the run {self.run_ids}; "
            "load it from that run's storage"
        )

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> AssetRunSource:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"asset": self.asset, **self.run_ids, **({"uri": self.uri} if self.uri else {})}

    @classmethod
    def from_dict(cls, source_dict: dict[str, Any]) -> AssetRunSource:
        run_ids = {k: str(v) for k, v in source_dict.items() if k not in ("asset", "uri")}
        return cls(str(source_dict["asset"]), run_ids, str(source_dict.get("uri", "")))


#: Rows MLflow's type inference looks at; whether a column has missing values looks at all.
SCHEMA_SAMPLE_ROWS = 1000


class TableDataset(PandasDataset):
    """MLflow's pandas dataset, its schema read without a Python loop over every cell.

    ``PandasDataset.schema`` checks each cell for NaN in Python (44 s for the training window
    of 500 tickers x 10 years). Here the column types come from the first rows and whether a
    column is required (has no missing value) from a vectorised check of every row: the same
    schema, in milliseconds.
    """

    @cached_property
    def schema(self) -> Schema | None:
        with warnings.catch_warnings():  # MLflow's hint on integer columns is for serving
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            sample = infer_signature(self._df.head(SCHEMA_SAMPLE_ROWS)).inputs
        has_missing = self._df.isna().any()
        return Schema(
            [
                ColSpec(spec.type, spec.name, required=not bool(has_missing[spec.name]))
                for spec in sample.inputs
            ]
        )


@dataclass(frozen=True)
class StoredTable:
    """Where a run read a table from: a path or URI if known, and always the asset and run."""

    asset: str
    location: str | None
    run_ids: Mapping[str, str]

    def describe(self) -> str:
        """The location, else ``asset <name> of dagster_run_id <id>, kfp_run_id <id>``."""
        if self.location:
            return self.location
        runs = ", ".join(f"{key} {value}" for key, value in self.run_ids.items() if value)
        return f"asset {self.asset} of {runs}"

    def dataset_source(self) -> DatasetSource:
        """MLflow's source: the path or URI, else an :class:`AssetRunSource`."""
        if self.location:
            try:
                with warnings.catch_warnings():  # MLflow registers its local source twice
                    warnings.filterwarnings("ignore", message=".*interpreted in multiple ways")
                    return resolve_dataset_source(self.location)
            except MlflowException:  # a scheme MLflow has no source type for (e.g. minio://)
                pass
        return AssetRunSource(self.asset, dict(self.run_ids), self.location or "")


def log_training_data(
    client: MlflowClient,
    run_id: str,
    features: pd.DataFrame,
    split: TimeSplit,
    stored: StoredTable,
) -> dict[str, str]:
    """Log the training and test windows of ``features`` as dataset inputs of run ``run_id``.

    The windows are ``split``'s, the ones the model is trained and tested on. Each
    dataset carries our content digest, the row count (its profile), the date range (its name)
    and where ``stored`` says the table lives. Returns the lineage tags, also set on the run,
    for the registered version: ``<table>_digest``, ``_rows`` and ``_window`` of the features
    table and both windows.
    """
    windows = dict(zip(SPLITS, split, strict=True))
    summaries = {"features": summarise(features)}
    source = stored.dataset_source()
    inputs = []
    for window, context in SPLITS.items():
        frame = windows[window]
        summary = summaries[window] = summarise(frame)
        dataset = TableDataset(
            frame,
            source=source,
            targets=TARGET_COLUMN,
            name=f"features {window} {summary.window}",
            digest=summary.digest,
        )
        tags = {
            "rows": str(summary.rows),
            "start": summary.start,
            "end": summary.end,
            STORED_AT_TAG: stored.describe()[:500],  # MLflow's limit for an input tag value
        }
        inputs.append(dataset_input(dataset, context, tags))
    client.log_inputs(run_id, datasets=inputs)
    tags = lineage_tags(summaries)
    set_tags(client, run_id, tags)
    return tags


def dataset_input(dataset: PandasDataset, context: str, tags: Mapping[str, str]) -> DatasetInput:
    """``dataset`` as the input ``mlflow.log_input(dataset, context, tags)`` logs: the dataset's
    name, digest, source, schema and profile, its tags, then ``mlflow.data.context``."""
    fields = dataset.to_dict()
    entity = Dataset(
        name=fields["name"],
        digest=fields["digest"],
        source_type=fields["source_type"],
        source=fields["source"],
        schema=fields.get("schema"),
        profile=fields.get("profile"),
    )
    input_tags = [InputTag(key, value) for key, value in tags.items()]
    input_tags.append(InputTag(MLFLOW_DATASET_CONTEXT, context))
    return DatasetInput(entity, input_tags)


def lineage_tags(summaries: dict[str, TableSummary]) -> dict[str, str]:
    """``<table>_digest``, ``<table>_rows`` and ``<table>_window`` for each table."""
    tags = {}
    for table, summary in summaries.items():
        tags[f"{table}_digest"] = summary.digest
        tags[f"{table}_rows"] = str(summary.rows)
        tags[f"{table}_window"] = summary.window
    return tags


def datasets_used(run: Run) -> list[dict[str, str]]:
    """The run's dataset inputs: context, name, digest, rows, source and stored location."""
    rows = []
    for item in run.inputs.dataset_inputs if run.inputs else []:
        tags = {tag.key: tag.value for tag in item.tags}
        rows.append(
            {
                "context": tags.get("mlflow.data.context", ""),
                "name": item.dataset.name,
                "digest": item.dataset.digest,
                "rows": tags.get("rows", ""),
                "source_type": item.dataset.source_type,
                "source": item.dataset.source,
                "stored_at": tags.get(STORED_AT_TAG, ""),
            }
        )
    order = list(SPLITS.values())
    return sorted(rows, key=lambda r: order.index(r["context"]) if r["context"] in order else 9)


# --- what a KFP task's cached output carries to the runs that reuse it --------------------

#: Tags that belong to the run or to the orchestration, not to what a task logged.
RUN_TAG_PREFIXES = ("mlflow.", "kfp_", "stock_assets/", "dagster")
RUN_TAGS = {"environment", "author"}
KEPT_MLFLOW_TAGS = {"mlflow.note.content"}


def _own_tag(key: str) -> bool:
    return key in KEPT_MLFLOW_TAGS or not (key in RUN_TAGS or key.startswith(RUN_TAG_PREFIXES))


def run_lineage(client: Any, run_id: str | None, tracking_uri: str) -> dict[str, Any]:
    """What the run holds, as the KFP exporter's lineage record (exporters/kfp/protocols.py):
    ``params``, ``tags`` (not the run's own bookkeeping) and dataset ``inputs`` by
    ``<context>:<name>:<digest>``, and the ``tracking_uri`` (never with credentials)."""
    found: dict[str, Any] = {"tracking_uri": tracking_uri, "params": {}, "tags": {}, "inputs": {}}
    if run_id is None:
        return found
    run = client.get_run(run_id)
    found["params"] = dict(run.data.params)
    found["tags"] = {k: v for k, v in run.data.tags.items() if _own_tag(k)}
    for item in run.inputs.dataset_inputs if run.inputs else []:
        tags = {tag.key: tag.value for tag in item.tags}
        key = f"{tags.get('mlflow.data.context', '')}:{item.dataset.name}:{item.dataset.digest}"
        found["inputs"][key] = {"dataset": dict(item.dataset.to_dictionary()), "tags": tags}
    return found


def log_run_lineage(client: Any, run_id: str, lineage: dict[str, Any]) -> list[str]:
    """Log a lineage record's params, tags and dataset inputs on the run; return notes.

    A param the run already holds with another value is kept (MLflow refuses to change one)
    and named in a note.
    """
    from mlflow.entities import Param, RunTag

    held = client.get_run(run_id).data.params
    notes, params = [], []
    for key, value in (lineage.get("params") or {}).items():
        if key not in held:
            params.append(Param(key, str(value)))
        elif held[key] != str(value):
            notes.append(f"param {key}: kept {held[key]!r}, the cached task logged {value!r}")
    tags = [RunTag(k, str(v)) for k, v in (lineage.get("tags") or {}).items()]
    for start in range(0, max(len(params), len(tags)), 100):  # MLflow's batch limit
        client.log_batch(run_id, params=params[start : start + 100], tags=tags[start : start + 100])
    datasets = []
    for entry in (lineage.get("inputs") or {}).values():
        dataset = Dataset(**entry["dataset"])
        input_tags = [InputTag(k, str(v)) for k, v in (entry.get("tags") or {}).items()]
        datasets.append(DatasetInput(dataset, input_tags))
    if datasets:
        client.log_inputs(run_id, datasets=datasets)
    return notes


def pipeline_lineage(client: Any, experiment_name: str, kfp_run_id: str, tracking_uri: str) -> str:
    """JSON: the lineage record of KFP run ``kfp_run_id``'s MLflow run (none yet: empty)."""
    import json

    from stock_assets.mlflow_ops.pipeline_runs import find_run

    run_id = find_run(client, experiment_name, kfp_run_id)
    return json.dumps(run_lineage(client, run_id, tracking_uri), sort_keys=True)


def log_pipeline_lineage(
    client: Any, experiment_name: str, kfp_run_id: str, lineage: str
) -> list[str]:
    """Log the JSON ``lineage`` on KFP run ``kfp_run_id``'s MLflow run; return notes."""
    import json

    from stock_assets.mlflow_ops.pipeline_runs import find_run

    run_id = find_run(client, experiment_name, kfp_run_id)
    if run_id is None:
        raise RuntimeError(f"KFP run {kfp_run_id} has no MLflow run to log the cached lineage on")
    return log_run_lineage(client, run_id, json.loads(lineage))
