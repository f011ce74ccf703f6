"""Data lineage in real Dagster and a real MLflow store: same data, same digests; else not.

Three runs over a CSV with one config: twice the same content, then one Volume changed in the
training period. Read back: Dagster's data versions and stale status from the instance, the
MLflow runs' dataset inputs and tags, the registered versions' tags, and ``stock-registry show``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import AssetKey, AssetSelection, DagsterInstance, ExecuteInProcessResult, materialize
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver
from mlflow import MlflowClient

from stock_assets.core.data import generate_gbm
from stock_assets.core.lineage import frame_digest
from stock_assets.core.splits import time_split
from stock_assets.definitions import defs
from stock_assets.defs.config import run_config
from stock_assets.defs.io_manager import latest_path
from stock_assets.defs.storage import read_value
from stock_assets.mlflow_ops.registry import REGISTERED_MODEL_NAME, mark_staging, promote
from tests.conftest import PROJECT_ROOT, env_for_subprocess, failure_text, mlflow_run_for

TEST_SIZE = 0.2
CHANGED_ROW = 100  # in the training period; Volume enters only 20-day rolling features


def _materialize(
    instance: DagsterInstance, csv: Path, assets: tuple[str, ...]
) -> ExecuteInProcessResult:
    config: dict[str, Any] = {
        "stock_data": {"csv_path": str(csv)},
        "model": {"model_type": "logistic", "test_size": TEST_SIZE},
    }
    result = materialize(
        [*defs.assets, *defs.asset_checks],
        resources=defs.resources,
        run_config=run_config({op: cfg for op, cfg in config.items() if op in assets}),
        selection=AssetSelection.assets(*assets),
        instance=instance,
        raise_on_error=False,
    )
    assert result.success, failure_text(result)
    return result


def _data_version(instance: DagsterInstance, asset: str, run_id: str) -> str:
    """The data version ``asset`` was materialised with in ``run_id``, from the instance."""
    records = instance.fetch_materializations(AssetKey(asset), limit=100).records
    (record,) = [r for r in records if r.run_id == run_id]
    return record.asset_materialization.tags["dagster/data_version"]


def _stale(instance: DagsterInstance, asset: str) -> StaleStatus:
    return get_stale_status_resolver(instance, defs.assets).get_status(AssetKey(asset))


def _inputs(result: ExecuteInProcessResult) -> dict[str, Any]:
    """The MLflow run's dataset inputs by context."""
    run = MlflowClient().get_run(mlflow_run_for(result).info.run_id)
    inputs = {}
    for item in run.inputs.dataset_inputs:
        tags = {t.key: t.value for t in item.tags}
        inputs[tags["mlflow.data.context"]] = (item.dataset, tags)
    return inputs


def _digests(result: ExecuteInProcessResult) -> dict[str, str]:
    """Every digest recorded in MLflow for this run: dataset inputs, run and version tags."""
    run = mlflow_run_for(result)
    version = MlflowClient().get_model_version(
        REGISTERED_MODEL_NAME, run.data.tags["registered_version"]
    )
    found = {f"input:{ctx}": ds.digest for ctx, (ds, _) in _inputs(result).items()}
    found.update({f"run:{k}": v for k, v in run.data.tags.items() if k.endswith("_digest")})
    found.update({f"version:{k}": v for k, v in version.tags.items() if k.endswith("_digest")})
    return found


@pytest.fixture(scope="module")
def runs(mlflow_store: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs over the same CSV twice, then over the CSV with one Volume changed."""
    root = tmp_path_factory.mktemp("lineage")
    csv = root / "bars.csv"
    bars = generate_gbm(days=300, seed=5)
    bars.to_csv(csv, index=False)
    everything = ("stock_data", "features", "model")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STOCK_ASSETS_DATA_DIR", str(root / "data"))
        instance = DagsterInstance.ephemeral()
        first = _materialize(instance, csv, everything)
        same = _materialize(instance, csv, everything)
        features_first = read_value(latest_path(root / "data", "features"))
        # Re-reading the same bars does not make features stale; different bars do.
        _materialize(instance, csv, ("stock_data",))
        stale_after_same_data = _stale(instance, "features")
        bars.loc[CHANGED_ROW, "Volume"] *= 2
        bars.to_csv(csv, index=False)
        changed_bars = _materialize(instance, csv, ("stock_data",))
        stale_after_new_data = _stale(instance, "features")
        changed = _materialize(instance, csv, ("features", "model"))
    return {
        "instance": instance,
        "data": root / "data",
        "first": first,
        "same": same,
        "changed_bars": changed_bars,
        "changed": changed,
        "features_first": features_first,
        "stale_after_same_data": stale_after_same_data,
        "stale_after_new_data": stale_after_new_data,
    }


@pytest.mark.slow
def test_same_csv_gives_same_data_versions_and_mlflow_digests(runs) -> None:
    instance, first, same = runs["instance"], runs["first"], runs["same"]
    for asset in ("stock_data", "features"):
        assert _data_version(instance, asset, first.run_id) == _data_version(
            instance, asset, same.run_id
        )
    first_digests, same_digests = _digests(first), _digests(same)
    assert {
        "input:training",
        "input:evaluation",
        "run:stock_data_digest",
        "run:features_digest",
        "version:features_digest",
        "version:train_digest",
        "version:test_digest",
    } <= set(first_digests)
    assert first_digests == same_digests
    # Two runs, two registered versions, learned from the same bytes.
    versions = {mlflow_run_for(r).data.tags["registered_version"] for r in (first, same)}
    assert len(versions) == 2
    assert runs["stale_after_same_data"] == StaleStatus.FRESH


@pytest.mark.slow
def test_changed_csv_changes_versions_and_digests_and_marks_features_stale(runs) -> None:
    instance, first, changed = runs["instance"], runs["first"], runs["changed"]
    old_bars = _data_version(instance, "stock_data", first.run_id)
    new_bars = _data_version(instance, "stock_data", runs["changed_bars"].run_id)
    assert new_bars != old_bars
    assert runs["stale_after_new_data"] == StaleStatus.STALE
    assert _stale(instance, "features") == StaleStatus.FRESH  # rematerialised since
    assert _data_version(instance, "features", changed.run_id) != _data_version(
        instance, "features", first.run_id
    )
    before, after = _digests(first), _digests(changed)
    for key in ("input:training", "run:features_digest", "version:features_digest"):
        assert after[key] != before[key], key
    # The changed row lies in the training period: the test window's data is the same.
    assert after["input:evaluation"] == before["input:evaluation"]
    assert after["version:test_digest"] == before["version:test_digest"]
    # The changed run's own stock_data tag is the new bars' data version.
    assert mlflow_run_for(runs["changed_bars"]).data.tags["stock_data_digest"] == new_bars


@pytest.mark.slow
def test_digests_are_of_the_stored_tables_and_datasets_say_where_they_live(runs) -> None:
    instance, first = runs["instance"], runs["first"]
    stored = runs["features_first"]
    assert _data_version(instance, "features", first.run_id) == frame_digest(stored)
    train, test = time_split(stored, TEST_SIZE)
    inputs = _inputs(first)
    path = str(runs["data"] / "assets" / "runs" / first.run_id / "features")
    for context, window in (("training", train), ("evaluation", test)):
        dataset, tags = inputs[context]
        start, end = f"{window['Date'].min():%Y-%m-%d}", f"{window['Date'].max():%Y-%m-%d}"
        assert dataset.digest == frame_digest(window)
        assert f"{start}..{end}" in dataset.name
        assert (tags["rows"], tags["start"], tags["end"]) == (str(len(window)), start, end)
        assert tags["stored_at"] == path
        assert dataset.source_type == "local"
        assert path in dataset.source
        assert f'"num_rows": {len(window)}' in dataset.profile
    # Dagster's model materialisation shows the same digests.
    (model,) = runs["instance"].fetch_materializations(AssetKey("model"), limit=1).records
    assert model.run_id == runs["changed"].run_id
    metadata = model.asset_materialization.metadata
    assert metadata["test_digest"].value == _digests(runs["changed"])["version:test_digest"]


def _cli(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stock_assets.mlflow_ops.registry_cli", *args],
        cwd=PROJECT_ROOT,
        env=env_for_subprocess(MLFLOW_TRACKING_URI=store),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_registry_show_names_the_data_metrics_and_stage_history(mlflow_store, runs) -> None:
    client = MlflowClient()
    first_run, changed_run = mlflow_run_for(runs["first"]), mlflow_run_for(runs["changed"])
    first = first_run.data.tags["registered_version"]
    changed = changed_run.data.tags["registered_version"]
    mark_staging(client, first)
    promote(client, first)
    promote(client, changed)  # first is archived

    done = _cli(mlflow_store, "show", first)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert first_run.info.run_id in out
    version_tags = client.get_model_version(REGISTERED_MODEL_NAME, first).tags
    for table in ("features", "train", "test"):
        line = next(x for x in out.splitlines() if x.strip().startswith(table + " "))
        assert version_tags[f"{table}_digest"] in line
        assert version_tags[f"{table}_window"] in line
        assert f"{version_tags[f'{table}_rows']} rows" in line
    assert first_run.data.tags["stock_data_digest"] in out
    for dataset, _ in _inputs(runs["first"]).values():
        assert dataset.name in out and dataset.digest in out
    accuracy = first_run.data.metrics["accuracy"]
    assert re.search(rf"^\s+accuracy\s+{accuracy:.4f}$", out, re.M)
    assert re.search(r"^\s+stage\s+archived$", out, re.M)
    history = out.split("stage history (UTC):\n")[1].split()
    assert history[1::2] == ["none", "staging", "production", "archived"]
    stamps = [pd.Timestamp(s) for s in history[0::2]]
    assert stamps == sorted(stamps)
    created = pd.Timestamp(
        client.get_model_version(REGISTERED_MODEL_NAME, first).creation_timestamp, unit="ms"
    )
    assert abs(stamps[0].tz_localize(None) - created) < pd.Timedelta(seconds=5)

    current = _cli(mlflow_store, "show", changed)
    assert re.search(r"^\s+aliases\s+production$", current.stdout, re.M)
    assert changed_run.data.tags["features_digest"] in current.stdout


@pytest.mark.slow
def test_registry_show_of_a_missing_version_is_one_line_and_exit_2(mlflow_store, runs) -> None:
    done = _cli(mlflow_store, "show", "999")
    assert done.returncode == 2
    existing = sorted(
        int(v.version)
        for v in MlflowClient().search_model_versions(f"name = '{REGISTERED_MODEL_NAME}'")
    )
    assert done.stderr.strip().splitlines() == [
        f"error: version '999' of {REGISTERED_MODEL_NAME} does not exist; existing versions: "
        + ", ".join(map(str, existing))
    ]
    assert done.stdout == ""
