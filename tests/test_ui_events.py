"""What the Dagster UI's asset pages hold, read back from a real run's instance: no observation
per input load, KFP hints off the pages, a skipped deployment's reason, code versions, and one
notation for windows and for 'none'; and what the MLflow run records of a CSV."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, materialize

from exporters.kfp.graph import read_graph
from stock_assets.core.data import generate_gbm
from stock_assets.core.history import TRAINING_ROWS_PER_TICKER
from stock_assets.definitions import defs
from stock_assets.defs.config import run_config
from tests.conftest import failure_text, mlflow_run_for, run_graph

KEYS = [key for assets_def in defs.assets for key in assets_def.keys]
WINDOW = re.compile(r"\d{4}-\d\d-\d\d\.\.\d{4}-\d\d-\d\d")


@pytest.fixture(scope="module")
def rejected(
    mlflow_store: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[DagsterInstance, str]:
    """One whole run on a fresh store whose decision rejects the model (threshold 1.0)."""
    instance = DagsterInstance.ephemeral()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STOCK_ASSETS_DATA_DIR", str(tmp_path_factory.mktemp("rejected")))
        result = materialize(
            [*defs.assets, *defs.asset_checks],
            resources=defs.resources,
            run_config=run_config({"deploy_decision": {"accuracy_threshold": 1.0}}),
            instance=instance,
            raise_on_error=False,
        )
    assert result.success, failure_text(result)
    return instance, result.run_id


def _observations(instance: DagsterInstance, asset: str) -> list:
    """The asset's observation events in the instance's event log, newest first."""
    return [r.event_log_entry for r in instance.fetch_observations(AssetKey(asset), 100).records]


def _latest_metadata(instance: DagsterInstance, asset: str) -> dict:
    entry = instance.get_latest_materialization_event(AssetKey(asset))
    assert entry is not None and entry.asset_materialization is not None
    return {k: getattr(v, "value", v) for k, v in entry.asset_materialization.metadata.items()}


@pytest.mark.slow
def test_loading_an_input_adds_no_observation_but_the_step_log_names_the_file(
    rejected: tuple[DagsterInstance, str],
) -> None:
    """The Events tab of an upstream asset holds its materialisations, not one observation per
    downstream load; the path and run stay on the step's "Loaded input" event."""
    instance, run_id = rejected
    observed = {key.to_user_string(): _observations(instance, key.to_user_string()) for key in KEYS}
    assert {asset for asset, entries in observed.items() if entries} == {"deployed_model"}
    loads = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(run_id, of_type=DagsterEventType.LOADED_INPUT)
        if e.dagster_event.step_key == "deploy_decision"
    ]
    by_input = {data.input_name: data.metadata for data in loads}
    assert by_input["features"]["path"].value.endswith(f"runs/{run_id}/features")
    assert by_input["model"]["run_id"].value == run_id


@pytest.mark.slow
def test_a_skipped_deployment_shows_its_reason_on_the_asset(
    rejected: tuple[DagsterInstance, str],
) -> None:
    instance, _ = rejected
    assert instance.get_latest_materialization_event(AssetKey("deployed_model")) is None
    (entry,) = _observations(instance, "deployed_model")
    observation = entry.asset_observation
    reason = _latest_metadata(instance, "deploy_decision")["reason"]
    skipped = observation.metadata["skipped"].value
    assert skipped == f"skipped: {reason}; production is unchanged"
    assert observation.description == skipped
    assert observation.metadata["production_version"].value == "-"  # none yet: '-', not None


@pytest.mark.slow
def test_windows_read_first_dot_dot_last_and_none_reads_dash(
    rejected: tuple[DagsterInstance, str],
) -> None:
    instance, _ = rejected
    model = _latest_metadata(instance, "model")
    assert WINDOW.fullmatch(model["test_window"]), model["test_window"]
    assert f"test window {model['test_window']};" in model["baselines"]
    for asset in ("stock_data", "features"):
        date_range = _latest_metadata(instance, asset)["date_range"]
        assert WINDOW.fullmatch(date_range), date_range
    decision = _latest_metadata(instance, "deploy_decision")
    assert decision["champion_version"] == decision["champion_accuracy"] == "-"


def test_kfp_hints_stay_off_the_asset_pages_and_the_exporter_still_reads_them() -> None:
    graph = {task.asset: task for task in read_graph(defs, "stock_assets.definitions", []).tasks}
    for assets_def in defs.assets:
        for key in assets_def.keys:
            shown = assets_def.specs_by_key[key].metadata
            assert not [name for name in shown if name.startswith("kfp/")], (key, shown)
    assert graph["deployed_model"].run_if == ("deploy_decision", "deploy")
    assert graph["model"].metrics_field == "metrics"
    # a code version on every asset; the steps with side effects stay uncached on KFP
    assert graph["stock_data"].code_version and graph["features"].code_version
    assert graph["deploy_decision"].code_version is None
    assert graph["deployed_model"].code_version is None
    ops = {op.node: op for op in graph["model"].ops}
    assert ops["score_candidate"].code_version == "1"
    assert ops["train_best"].code_version is None and ops["plan_candidates"].code_version is None


def test_every_asset_has_a_code_version_and_the_model_says_where_its_ops_are() -> None:
    versions = {
        key.to_user_string(): version
        for assets_def in defs.assets
        for key, version in assets_def.code_versions_by_key.items()
    }
    assert versions and all(versions.values()), versions
    (model,) = [a for a in defs.assets if AssetKey("model") in a.keys]
    assert "Compute details" in model.descriptions_by_key[AssetKey("model")]


@pytest.mark.slow
def test_a_csv_run_records_what_the_file_held(mlflow_store: str, data_dir: Path) -> None:
    """Not the synthetic defaults (data_days=500, no tickers): rows per ticker, the tickers
    and the dates of the file."""
    short = generate_gbm(days=TRAINING_ROWS_PER_TICKER, tickers=["AAA"])
    long = generate_gbm(days=TRAINING_ROWS_PER_TICKER + 5, tickers=["BBB"])
    path = data_dir.parent / "bars.csv"
    short.merge(long, how="outer").to_csv(path, index=False)

    result = run_graph({"stock_data": {"csv_path": str(path)}}, selection=["stock_data"])

    assert result.success, failure_text(result)
    params = mlflow_run_for(result).data.params
    assert params["data_days"] == f"{TRAINING_ROWS_PER_TICKER}..{TRAINING_ROWS_PER_TICKER + 5}"
    assert params["data_tickers"] == "AAA,BBB"
    assert params["data_dates"] == f"{long['Date'].min():%Y-%m-%d}..{long['Date'].max():%Y-%m-%d}"
    assert params["data_seed"] == "" and params["data_rows"] == str(len(short) + len(long))
