"""Data lineage in Dagster: data versions from content digests, and where an input was stored.

Assets call two functions: :func:`table_lineage` for the ``data_version`` and metadata of a
table they output (its digest also tagged on the MLflow run), and :func:`stored_input` for where
an input table was read from (passed on to MLflow). Both work the same in a Dagster run and in a
KFP task, which runs the asset's code.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    BetaWarning,
    DagsterEventType,
    DataVersion,
    MetadataValue,
    OpExecutionContext,
    Output,
)

from stock_assets.core.lineage import TableSummary, summarise
from stock_assets.mlflow_ops.lineage import StoredTable, lineage_tags
from stock_assets.mlflow_ops.run_logging import set_tags

if TYPE_CHECKING:
    from stock_assets.defs.resources import MlflowTracking

#: Run tags naming the run in each backend (the KFP runtime tags its Dagster run with the second).
RUN_ID_TAGS = ("kfp_run_id",)
#: Metadata keys an IO manager may use to report where a value is stored, most precise first.
LOCATION_KEYS = ("uri", "path")


@dataclass(frozen=True)
class TableLineage:
    """A table's summary, as the ``data_version`` and metadata of its ``Output``."""

    summary: TableSummary

    @property
    def data_version(self) -> DataVersion:
        """The content digest: Dagster marks downstream assets stale when it changes."""
        return DataVersion(self.summary.digest)

    @property
    def metadata(self) -> dict[str, Any]:
        """The digest, for the materialisation's metadata panel."""
        return {"data_digest": MetadataValue.text(self.summary.digest)}

    def output(self, table: pd.DataFrame, metadata: dict[str, Any]) -> Output[pd.DataFrame]:
        """``table`` as the asset's ``Output``, with this data version and the digest shown."""
        with warnings.catch_warnings():  # Output(data_version=) is marked beta; used knowingly
            warnings.filterwarnings(
                "ignore", message="Parameter `data_version`", category=BetaWarning
            )
            return Output(
                table, data_version=self.data_version, metadata={**self.metadata, **metadata}
            )


def table_lineage(
    context: AssetExecutionContext, table: pd.DataFrame, mlflow: MlflowTracking
) -> TableLineage:
    """Digest ``table`` (the asset's value) and tag the step's MLflow run with the digest,
    rows and dates."""
    lineage = TableLineage(summarise(table))
    tags = lineage_tags({context.asset_key.to_python_identifier(): lineage.summary})
    with mlflow.reporting_errors():
        set_tags(mlflow.client, mlflow.run_id, tags)
    return lineage


def stored_input(
    context: AssetExecutionContext | OpExecutionContext, input_name: str
) -> StoredTable:
    """Where the asset's input ``input_name`` was read from, and the run that read it.

    The location is the ``uri`` or ``path`` the IO manager reported when loading the input
    (``add_input_metadata``), else the one in the upstream asset's latest materialisation
    (this project's IO manager reports ``path``). A KFP task's IO manager reports neither, so
    there the table is named by its asset and the Dagster and KFP run ids.
    """
    asset_key = context.asset_key_for_input(input_name)
    step_key = context.get_step_execution_context().step.key
    location = None
    for entry in context.instance.all_logs(
        context.run.run_id, of_type=DagsterEventType.LOADED_INPUT
    ):
        event = entry.dagster_event
        if event is None or event.step_key != step_key:
            continue
        loaded = event.event_specific_data  # LoadedInputData: input_name, metadata
        if getattr(loaded, "input_name", None) == input_name:
            location = _location(getattr(loaded, "metadata", None) or {})
    if location is None:
        latest = context.instance.get_latest_materialization_event(asset_key)
        if latest is not None and latest.asset_materialization is not None:
            location = _location(latest.asset_materialization.metadata)
    run_ids = {"dagster_run_id": context.run.run_id}
    run_ids.update({tag: context.run.tags[tag] for tag in RUN_ID_TAGS if tag in context.run.tags})
    return StoredTable(asset=asset_key.to_user_string(), location=location, run_ids=run_ids)


def _location(metadata: Mapping[str, Any]) -> str | None:
    for key in LOCATION_KEYS:
        if key in metadata:
            value = metadata[key]
            return str(getattr(value, "value", value))
    return None
