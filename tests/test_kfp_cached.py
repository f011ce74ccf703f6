"""A run whose tasks come from KFP's cache still records what they logged, and says so.

The exported pipeline runs twice under kfp.local with caching on (kfp 2.17's ``LocalCache``:
a cache hit publishes the earlier task's output artifacts, with their metadata, and the task's
code never runs, as on the backend). The tracking URI is not in the YAML but in the process
environment, so, as on the backend whose cache key ignores the environment
(``backend/src/v2/cacheutils/cache.go`` at 2.14.0), the second run reuses the first run's
``stock-data``, ``features`` and ``score-candidate`` while logging to another MLflow store.
Both stores are read back.

The project's tracking resource keeps the lineage protocol (``exporters/kfp/protocols.py``,
``PipelineRunLineage``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.kfp_helpers import executed_tasks, export

MODULE = "stock_assets.definitions"

CACHED = ("stock-data", "features", "model-score-candidate")
ARGUMENTS = {
    "days": 160,
    "tickers": ["AAA", "BBB"],
    "candidates": ["logistic: C=0.1, max_iter=200", "logistic: C=1.0, max_iter=200"],
    "cv_folds": 2,
}


def _run(package: Path, root: Path) -> Path:
    from kfp import components, local

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(root),
        raise_on_error=True,
        enable_caching=True,
        cache_root=str(root / "cache"),
    )
    before = set(root.glob("*"))
    components.load_component_from_file(str(package))(**ARGUMENTS)
    (run_dir,) = {p for p in set(root.glob("*")) - before if p.name != "cache"}
    return run_dir


def _kfp_run(uri: str, kfp_run_id: str):
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        f"tags.kfp_run_id = '{kfp_run_id}'",
    )
    return run


@pytest.mark.slow
def test_cached_tasks_are_recorded_on_the_run_that_reuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    package = tmp_path / "pipeline.yaml"
    done = export(package, "--module", MODULE, "--allow-local-tracking-uri")
    assert done.returncode == 0, done.stderr
    first_store = f"sqlite:///{tmp_path / 'first.db'}"
    second_store = f"sqlite:///{tmp_path / 'second.db'}"
    monkeypatch.setenv("STOCK_ASSETS_DATA_DIR", str(tmp_path / "data"))

    monkeypatch.setenv("MLFLOW_TRACKING_URI", first_store)
    first_dir = _run(package, tmp_path / "root")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", second_store)
    second_dir = _run(package, tmp_path / "root")

    ran = executed_tasks(second_dir)
    assert not any(task.startswith(CACHED) for task in ran), ran  # cache hits
    assert {"model-plan-candidates", "model-train-best"} <= ran, ran

    first = _kfp_run(first_store, first_dir.name)
    second = _kfp_run(second_store, second_dir.name)
    # What the cached tasks logged in the first run is on the second run too.
    for key in ("data_source", "data_days", "data_seed", "data_rows", "feature_rows"):
        assert second.data.params[key] == first.data.params[key], key
    for tag in ("stock_data_digest", "stock_data_rows", "features_digest", "features_window"):
        assert second.data.tags[tag] == first.data.tags[tag], tag
    # The second run says which tasks it reused, and that they logged to another store.
    cached = set(second.data.tags["kfp_cached_tasks"].split(","))
    assert {"stock-data", "features"} <= cached, cached
    assert len([task for task in cached if task.startswith("model-score-candidate/")]) == 2
    assert second.data.tags["kfp_cached_tracking_uri.stock-data"] == first_store
    assert "kfp_cached_tasks" not in first.data.tags
    # The tasks that ran in the second run logged as usual: the model's dataset inputs.
    assert {i.dataset.digest for i in second.inputs.dataset_inputs} == {
        i.dataset.digest for i in first.inputs.dataset_inputs
    }


@pytest.mark.slow
def test_a_task_whose_input_comes_from_another_run_logs_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, in process: ``stock_data`` runs in KFP run ``first``; ``features`` runs in KFP
    run ``second`` on that artifact, as a cache hit hands it over, and logs to another store."""
    from kfp import dsl

    from exporters.kfp.runtime import RUN_ID_ENV
    from tests.kfp_tasks import run_exported_task

    stores = {run: f"sqlite:///{tmp_path / f'{run}.db'}" for run in ("first", "second")}
    monkeypatch.setenv("STOCK_ASSETS_DATA_DIR", str(tmp_path / "data"))
    bars = dsl.Dataset(name="stock_data", uri=str(tmp_path / "first" / "stock_data"))
    table = dsl.Dataset(name="features", uri=str(tmp_path / "second" / "features"))
    for run, asset, inputs, output, config in (
        ("first", "stock_data", {}, bars, {"days": 160, "tickers": ["AAA"]}),
        ("second", "features", {"stock_data": bars}, table, {}),
    ):
        monkeypatch.setenv(RUN_ID_ENV, run)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", stores[run])
        run_exported_task(MODULE, asset, **inputs, **{asset: output}, **config)

    first, second = _kfp_run(stores["first"], "first"), _kfp_run(stores["second"], "second")
    assert second.data.params["data_rows"] == first.data.params["data_rows"]
    assert second.data.tags["stock_data_digest"] == first.data.tags["stock_data_digest"]
    assert second.data.params["feature_rows"]  # its own logging, as usual
    assert second.data.tags["kfp_cached_tasks"] == "stock-data"  # KFP's name of the task
    assert second.data.tags["kfp_cached_tracking_uri.stock-data"] == stores["first"]
    # The output carries both records for the tasks after it.
    records = table.metadata["kfp_lineage"]["mlflow"]
    assert set(records) == {"stock-data", "features"}
    assert records["features"]["params"]["feature_rows"] == second.data.params["feature_rows"]
    assert "data_rows" not in records["features"]["params"]  # not logged by features itself
