"""The same data gives the same digests in a kfp.local run of the exported pipeline and in Dagster.

One kfp.local run of the emitted pipeline.yaml with its defaults, and one in-process Dagster run
of the same (default) config, both recorded in one real MLflow store and read back from it.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from dagster import AssetSelection
from mlflow import MlflowClient
from mlflow.entities import Run

from stock_assets.core.lineage import frame_digest
from stock_assets.defs.io_manager import latest_path
from stock_assets.defs.storage import read_value
from stock_assets.mlflow_ops.registry import REGISTERED_MODEL_NAME
from tests.conftest import failure_text, mlflow_run_for, run_graph
from tests.kfp_helpers import export, run_yaml

DIGEST_TAGS = ("stock_data_digest", "features_digest", "train_digest", "test_digest")


def _inputs(run: Run) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Context → (dataset name, digest, input tags), read back from the store."""
    found = {}
    for item in MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs:
        tags = {t.key: t.value for t in item.tags}
        found[tags["mlflow.data.context"]] = (item.dataset.name, item.dataset.digest, tags)
    return found


@pytest.mark.slow
def test_kfp_local_and_dagster_record_the_same_digests(
    mlflow_store: str, data_dir: Path, tmp_path: Path
) -> None:
    package = tmp_path / "pipeline.yaml"
    done = export(package, "--allow-local-tracking-uri", MLFLOW_TRACKING_URI=mlflow_store)
    assert done.returncode == 0, done.stderr
    succeeded, run_dir = run_yaml(package, tmp_path / "root")
    assert succeeded
    (kfp_run,) = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.kfp_run_id != ''", output_format="list"
    )

    dagster = run_graph(selection=AssetSelection.assets("stock_data", "features", "model"))
    assert dagster.success, failure_text(dagster)
    dagster_run = mlflow_run_for(dagster)

    # The same digests in both backends' MLflow runs, and they are Dagster's data versions.
    kfp_tags = {tag: kfp_run.data.tags[tag] for tag in DIGEST_TAGS}
    assert kfp_tags == {tag: dagster_run.data.tags[tag] for tag in DIGEST_TAGS}
    for asset in ("stock_data", "features"):
        (event,) = dagster.asset_materializations_for_node(asset)
        assert event.tags["dagster/data_version"] == kfp_tags[f"{asset}_digest"]
    # ... and the digest of what KFP stored as the features artifact.
    assert (
        frame_digest(read_value(run_dir / "features" / "features")) == kfp_tags["features_digest"]
    )

    kfp_inputs, dagster_inputs = _inputs(kfp_run), _inputs(dagster_run)
    assert set(kfp_inputs) == {"training", "evaluation"}
    for context in kfp_inputs:
        assert kfp_inputs[context][:2] == dagster_inputs[context][:2]  # name (dates), digest
    # Where each run read the table: KFP, the features artifact's URI (the runtime reports it
    # as input metadata; under kfp.local a path in the run's folder); Dagster, the stored file.
    kfp_stored = kfp_inputs["training"][2]["stored_at"]
    assert kfp_stored == str(run_dir / "features" / "features")
    assert dagster_inputs["training"][2]["stored_at"] == str(latest_path(data_dir, "features"))

    # Both registered versions carry the same features digest.
    client = MlflowClient()
    versions = [
        client.get_model_version(REGISTERED_MODEL_NAME, run.data.tags["registered_version"])
        for run in (kfp_run, dagster_run)
    ]
    assert {v.tags["features_digest"] for v in versions} == {kfp_tags["features_digest"]}
