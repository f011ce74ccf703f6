"""The KFP runtime and the MLflow resource's lifecycle methods, called directly on a real store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from exporters.kfp.runtime import (
    RUN_ID_ENV,
    ParameterValueError,
    RunIdError,
    coerce_config,
    finish_pipeline_run,
    format_macros,
    kfp_run_id,
    pipeline_status,
    read_value,
    run_task,
    write_value,
)
from stock_assets.defs.resources import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_NAME,
    MlflowTracking,
)
from stock_assets.defs.run_record import close_open_runs
from tests.kfp_tasks import defaults, run_exported_task, task_spec

MODULE = "stock_assets.definitions"


def _runs_tagged(kfp_run_id: str) -> list[mlflow.entities.Run]:
    return mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.kfp_run_id = '{kfp_run_id}'",
        output_format="list",
    )


@pytest.mark.slow
def test_tasks_of_one_kfp_run_share_one_mlflow_run(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "run-a")  # what the pod label pipeline/runid gives on KFP
    bars = tmp_path / "stock_data"
    run_exported_task(MODULE, "stock_data", stock_data=str(bars), days=130)
    run_exported_task(MODULE, "features", stock_data=str(bars), features=str(tmp_path / "features"))
    (run,) = _runs_tagged("run-a")
    assert run.info.status == "RUNNING"  # left open for the exit handler
    assert run.data.params["data_days"] == "130" and "feature_rows" in run.data.params
    assert isinstance(read_value(tmp_path / "features"), pd.DataFrame)

    finish_pipeline_run(module="stock_assets.definitions", state="FAILED")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"


@pytest.mark.slow
def test_an_injected_mlflow_run_id_is_respected(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_store: str
) -> None:
    experiment_id = MlflowTracking().experiment_id()
    injected = mlflow.MlflowClient().create_run(experiment_id, run_name="platform").info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", injected)
    monkeypatch.setenv(RUN_ID_ENV, "run-b")
    run_exported_task(MODULE, "stock_data", stock_data=str(tmp_path / "bars"), days=110)
    assert [r.info.run_id for r in _runs_tagged("run-b")] == [injected]  # no second run
    assert mlflow.get_run(injected).data.params["data_days"] == "110"
    finish_pipeline_run(module="stock_assets.definitions", state="SUCCEEDED")
    assert mlflow.get_run(injected).info.status == "FINISHED"


@pytest.mark.slow
def test_backstop_closes_runs_left_running(mlflow_store: str) -> None:
    tracking = MlflowTracking()
    client = mlflow.MlflowClient()
    orphan = client.create_run(
        tracking.experiment_id(), tags={"dagster_run_id": "crashed"}
    ).info.run_id
    name = tracking.experiment_name
    assert close_open_runs(tracking.client, name, "crashed", "KILLED") == [orphan]
    assert client.get_run(orphan).info.status == "KILLED"
    assert close_open_runs(tracking.client, name, "crashed") == []  # safe to repeat


@pytest.mark.slow
def test_end_pipeline_run_checks_the_status_and_finds_nothing_for_an_unknown_run(
    mlflow_store: str,
) -> None:
    tracking = MlflowTracking()
    with pytest.raises(ValueError, match="'SUCCEEDED'; expected one of FINISHED, FAILED, KILLED"):
        tracking.end_pipeline_run("run-x", "SUCCEEDED")
    assert tracking.end_pipeline_run("never-started", "FAILED") is None


@pytest.mark.slow
def test_an_existing_experiment_gets_the_experiment_kind_tag(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    old = client.create_experiment(EXPERIMENT_NAME, tags={"project": "stock-prediction"})
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(old).tags
    assert MlflowTracking(mlflow_tracking_uri=uri).experiment_id() == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


#: Every state an exit handler can be given, as a status when there are no task records (a
#: tracker without the ledger methods, or no plan). The backend passes the MLMD execution state
#: of the exit handler's DAG (backend/src/v2/driver/resolve.go:425 at 2.14.0), one of
#: Execution_State_name in third_party/ml-metadata/go/ml_metadata/metadata_store.pb.go at 2.14.0.
#: Only COMPLETE (and CACHED) says the group completed; it stays RUNNING up to 2.16 when the
#: group holds a ParallelFor or a dsl.If (exporters/kfp/outcome.py), and CANCELED means "not
#: triggered" (backend/src/v2/metadata/client.go CreateExecution), never "terminated by the
#: user": nothing maps to KILLED. kfp.local passes 'SUCCEEDED' / 'FAILED' (kfp 2.17.3).
STATES = {
    "COMPLETE": "FINISHED",
    "CACHED": "FINISHED",
    "FAILED": "FAILED",
    "CANCELED": "FAILED",
    "RUNNING": "FAILED",
    "NEW": "FAILED",
    "UNKNOWN": "FAILED",
    "SUCCEEDED": "FINISHED",  # kfp.local
    "CANCELLED": "FAILED",
    "SYSTEM_ERROR": "FAILED",
    "": "FAILED",
}


@pytest.mark.parametrize(("state", "status"), sorted(STATES.items()))
def test_every_kfp_state_maps_to_a_tracking_status(state: str, status: str) -> None:
    assert pipeline_status(state) == status
    assert pipeline_status(state.lower()) == status


@pytest.mark.slow
@pytest.mark.parametrize(("state", "status"), [("COMPLETE", "FINISHED"), ("CANCELED", "FAILED")])
def test_without_a_plan_the_exit_handler_ends_the_mlflow_run_with_the_state(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str, status: str
) -> None:
    """An exit task emitted before plans existed; with a plan, see tests/test_kfp_outcome.py."""
    run_id = f"run-{state.lower()}"
    monkeypatch.setenv(RUN_ID_ENV, run_id)
    run_exported_task(MODULE, "stock_data", stock_data=str(tmp_path / "bars"), days=110)
    finish_pipeline_run(module="stock_assets.definitions", state=state)
    (run,) = _runs_tagged(run_id)
    assert run.info.status == status


def test_the_run_id_comes_from_the_pod_label_else_the_local_run_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(RUN_ID_ENV, raising=False)
    assert kfp_run_id("/pipeline-root/my-pipeline-2026-01-01-00-00-00-000000/task/out") == (
        "my-pipeline-2026-01-01-00-00-00-000000"
    )
    # Inside a ParallelFor, kfp.local nests each iteration's tasks one folder deeper.
    iteration = "/pipeline-root/my-pipeline-2026-01-01-00-00-00-000000/for-loop-2-iteration-10"
    assert kfp_run_id(f"{iteration}/task/out") == "my-pipeline-2026-01-01-00-00-00-000000"
    assert kfp_run_id(run_name="my-pipeline-x") == "my-pipeline-x"
    monkeypatch.setenv(RUN_ID_ENV, "3f0c9d2e")
    assert kfp_run_id("/minio/mlpipeline/v2/artifacts/p/3f0c9d2e/task/1/out") == "3f0c9d2e"
    monkeypatch.setenv(RUN_ID_ENV, "")  # a pod without the label
    with pytest.raises(RunIdError, match="pipeline/runid"):
        kfp_run_id("/x/y/z")


def test_list_of_ints_reach_dagster_as_ints() -> None:
    """KFP hands list items over as JSON doubles; Dagster's Int rejects 1.0."""
    from tests.graphs.typed import numbers

    assert coerce_config(numbers, {"counts": [3.0, 4.0], "limit": None, "scale": 2.0}) == {
        "counts": [3, 4],
        "scale": 2.0,
    }


def test_optional_fields_arrive_as_text_and_reach_dagster_typed(tmp_path: Path) -> None:
    """An `X | None = None` field is a STRING parameter whose default "" means unset: a blank
    reaches the asset as None, other text as X, in a real Dagster run."""
    output = tmp_path / "numbers"
    arguments = {"numbers": str(output), "counts": [3.0], "limit": " 2 ", "label": ""}
    run_exported_task("tests.graphs.typed", "numbers", **arguments)
    assert read_value(output) == {"counts": [3], "limit": 2, "label": None}


def test_a_bad_optional_value_fails_before_dagster_runs(tmp_path: Path) -> None:
    output = tmp_path / "numbers"
    message = "pipeline parameter 'numbers_limit': expected an integer (blank = unset), got 'abc'"
    with pytest.raises(ParameterValueError) as raised:
        spec = task_spec("tests.graphs.typed", "numbers")
        renamed = tuple(  # the name a clash would give it
            replace(c, parameter="numbers_limit") if c.field == "limit" else c for c in spec.config
        )
        arguments = {**defaults("tests.graphs.typed", "numbers"), "numbers_limit": "abc"}
        arguments["numbers"] = str(output)
        run_task(replace(spec, config=renamed), arguments)
    assert str(raised.value) == message
    assert not output.exists()  # nothing written for the failed step


def test_optional_text_is_parsed_as_the_field_type() -> None:
    from tests.graphs.typed import numbers

    assert coerce_config(numbers, {"limit": "7", "label": "x", "scale": 2.0}) == {
        "limit": 7,
        "label": "x",
        "scale": 2.0,
    }
    with pytest.raises(ParameterValueError, match=r"'limit': expected an integer .* got '1.5'"):
        coerce_config(numbers, {"limit": "1.5"})


def test_macros_as_the_backend_formats_them() -> None:
    """backend/src/common/util/parameter_formatter.go at 2.14.0: [[ScheduledTime.<Go layout>]],
    bare [[ScheduledTime]] = layout 20060102150405, always UTC."""
    import datetime as dt

    when = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    assert format_macros("[[ScheduledTime.2006-01-02]]", when) == "2026-03-04"
    assert format_macros("d=[[ScheduledTime.20060102]]/x", when) == "d=20260304/x"
    assert format_macros("[[ScheduledTime]]", when) == "20260304050607"
    assert format_macros("[[CurrentTime.2006-01-02T15:04:05]]", when) == "2026-03-04T05:06:07"
    assert format_macros("2026-01-01", when) == "2026-01-01"


def test_default_storage_is_parquet_or_json_and_never_pickles(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    write_value("bars", str(tmp_path / "frame"), frame)
    pd.testing.assert_frame_equal(read_value(tmp_path / "frame"), frame)
    write_value("summary", str(tmp_path / "dict"), {"rows": 2})
    assert read_value(tmp_path / "dict") == {"rows": 2}
    with pytest.raises(TypeError, match="asset 'model'.*dump_to_path"):
        write_value("model", str(tmp_path / "model"), object())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dict", "frame"]  # nothing half-written
