"""Where an asset's input was read from, and the MLflow dataset source made of it.

A two-asset graph run by real Dagster with IO managers that report a URI on load, a path on
store, or nothing (as in a KFP task, which runs one asset on a fresh instance).
"""

from typing import Any, ClassVar

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    ConfigurableIOManager,
    DagsterInstance,
    InputContext,
    OutputContext,
    asset,
    materialize,
)

from stock_assets.defs.lineage import stored_input


class ReportingIOManager(ConfigurableIOManager):
    """Values in memory; reports ``load_uri`` when loading, ``store_path`` when storing."""

    load_uri: str = ""
    store_path: str = ""
    values: ClassVar[dict[str, Any]] = {}

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self.values[context.asset_key.to_user_string()] = obj
        if self.store_path:
            context.add_output_metadata({"path": self.store_path})

    def load_input(self, context: InputContext) -> Any:
        if self.load_uri:
            context.add_input_metadata({"uri": self.load_uri})
        return self.values[context.asset_key.to_user_string()]


@asset
def table() -> pd.DataFrame:
    return pd.DataFrame({"Date": pd.to_datetime(["2024-01-02"]), "x": [1.0]})


@asset
def consumer(context: AssetExecutionContext, table: pd.DataFrame) -> dict[str, Any]:
    stored = stored_input(context, "table")
    source = stored.dataset_source()
    return {
        "location": stored.location,
        "described": stored.describe(),
        "source_type": source._get_source_type(),
        "source": source.to_dict(),
    }


def _run(
    io_manager: ReportingIOManager, instance: DagsterInstance, *assets: str, **tags: str
) -> tuple[str, dict[str, Any]]:
    result = materialize(
        [table, consumer],
        selection=AssetSelection.assets(*assets),
        resources={"io_manager": io_manager},
        instance=instance,
        tags=tags or None,
    )
    assert result.success
    return result.run_id, result.output_for_node("consumer") if "consumer" in assets else {}


def test_location_reported_while_loading_wins() -> None:
    manager = ReportingIOManager(
        load_uri="minio://mlpipeline/v2/artifacts/r1/table", store_path="/x"
    )
    _, found = _run(manager, DagsterInstance.ephemeral(), "table", "consumer")
    assert found["location"] == found["described"] == "minio://mlpipeline/v2/artifacts/r1/table"
    # MLflow has no source type for minio://: the URI is kept in our asset_run source.
    assert found["source_type"] == "asset_run"
    assert found["source"]["uri"] == found["location"]
    assert found["source"]["asset"] == "table"


def test_location_of_the_latest_materialisation_otherwise(tmp_path) -> None:
    path = str(tmp_path / "table.parquet")
    instance = DagsterInstance.ephemeral()
    _run(ReportingIOManager(store_path=path), instance, "table")
    _, found = _run(ReportingIOManager(), instance, "consumer")
    assert found["location"] == path
    assert found["source_type"] == "local"
    assert found["source"] == {"uri": path}


def test_no_location_names_the_asset_and_the_runs() -> None:
    """As in a KFP task: the upstream was stored elsewhere, on another instance."""
    manager = ReportingIOManager()
    _run(manager, DagsterInstance.ephemeral(), "table")
    run_id, found = _run(manager, DagsterInstance.ephemeral(), "consumer", kfp_run_id="kfp-123")
    assert found["location"] is None
    assert found["described"] == f"asset table of dagster_run_id {run_id}, kfp_run_id kfp-123"
    assert found["source_type"] == "asset_run"
    assert found["source"] == {"asset": "table", "dagster_run_id": run_id, "kfp_run_id": "kfp-123"}
