"""Graph-backed assets and dynamic fan-outs: the emitted YAML and one kfp.local run.

What the YAML relies on, checked in the kubeflow/pipelines backend source (no cluster here):

* ``iteratorPolicy.parallelismLimit`` becomes the Argo loop template's ``parallelism``:
  backend/src/v2/compiler/argocompiler/dag.go iteratorTask (l.367) at 2.14.0, (l.370) at 2.15.0.
* A ``dsl.Collected`` input from a ParallelFor is resolved by the driver for parameters and
  artifacts alike: backend/src/v2/driver/resolve.go resolveUpstreamArtifacts -> CollectInputs
  (isArtifact=true; l.707, l.821 at 2.14.0; l.733, l.849 at 2.15.0), iterating
  ``for i := range iterations`` (item order). Each collected artifact keeps its metadata
  (custom properties -> ``metadata``: backend/src/v2/metadata/converter.go toRuntimeArtifact at
  2.14.0), which is how the runtime matches an artifact to its fan-out item.
* Tasks are found by their key, not their display name: the argocompiler passes
  ``--task_name`` = the task key to every driver (argocompiler/container.go l.198, dag.go at
  2.14.0). The exporter never names a ParallelFor: a named one breaks ``dsl.Collected`` on 2.14
  (kubeflow/pipelines#13239; the driver-side task name fix #12808 is only in 2.16.0).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from exporters.kfp.runtime import MAPPING_KEY_METADATA, read_value
from tests.graphs import fan_out
from tests.kfp_helpers import all_tasks, export, load_spec, run_yaml
from tests.kfp_helpers import kubernetes_executors as _platform


@pytest.fixture(scope="module")
def fan_out_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fan_out") / "pipeline.yaml"
    done = export(path, "--module", "tests.graphs.fan_out", MLFLOW_TRACKING_URI="")
    assert done.returncode == 0, done.stderr
    assert f"wrote {path} (5 tasks, 4 parameters)" in done.stdout  # samples, 3 ops, report
    return path


@pytest.mark.slow
def test_each_op_is_a_task_and_the_fan_out_a_parallel_for(fan_out_yaml: Path) -> None:
    spec = load_spec(fan_out_yaml)
    tasks = all_tasks(spec)
    loops = {name: task for name, task in tasks.items() if "parameterIterator" in task}
    ((loop_name, loop),) = loops.items()
    # The loop iterates over the list the fan-out op returns, at most 2 at once (its op tag).
    items = loop["parameterIterator"]["items"]["inputParameter"]
    assert loop["inputs"]["parameters"][items]["taskOutputParameter"] == {
        "outputParameterKey": "Output",
        "producerTask": "smoothing-plan",
    }
    plan_outputs = spec["components"]["comp-smoothing-plan"]["outputDefinitions"]
    assert plan_outputs["parameters"]["Output"]["parameterType"] == "LIST"
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2
    # Inside: the mapped op, fed the loop item and the upstream asset from outside the loop.
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(body) == {"smoothing-score"}
    score_inputs = body["smoothing-score"]["inputs"]
    assert score_inputs["parameters"]["loop_item"] == {
        "componentInputParameter": loop["parameterIterator"]["itemInput"]
    }
    assert loop["inputs"]["artifacts"][
        score_inputs["artifacts"]["samples"]["componentInputArtifact"]
    ]["taskOutputArtifact"] == {"outputArtifactKey": "samples", "producerTask": "samples"}
    # The collecting op takes every iteration's artifact (Collected) and the items' keys.
    choose = tasks["smoothing-choose"]
    assert choose["inputs"]["artifacts"]["smoothing__score"]["taskOutputArtifact"][
        "producerTask"
    ] == (loop_name)
    choose_inputs = spec["components"]["comp-smoothing-choose"]["inputDefinitions"]
    assert choose_inputs["artifacts"]["smoothing__score"]["isArtifactList"] is True
    assert choose["inputs"]["parameters"]["smoothing__plan"]["taskOutputParameter"] == {
        "outputParameterKey": "Output",
        "producerTask": "smoothing-plan",
    }
    # The last op's artifact is the asset's value, read downstream as usual.
    assert tasks["report"]["inputs"]["artifacts"]["smoothing"]["taskOutputArtifact"] == {
        "outputArtifactKey": "smoothing__choose",
        "producerTask": "smoothing-choose",
    }
    assert set(tasks) >= {"samples", "smoothing-plan", "smoothing-choose", "report"}
    # The ParallelFor keeps its generated name: a named one breaks Collected on 2.14 (#13239).
    assert loop["taskInfo"]["name"] == loop_name


@pytest.mark.slow
def test_each_op_task_has_its_own_config_resources_retries_and_run_id(fan_out_yaml: Path) -> None:
    spec = load_spec(fan_out_yaml)
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {n: p["parameterType"] for n, p in params.items()} == {
        "rows": "NUMBER_INTEGER",  # the samples asset
        "seed": "NUMBER_INTEGER",
        "windows": "LIST",  # the plan op
        "horizon": "NUMBER_INTEGER",  # the mapped op
    }
    assert params["windows"]["defaultValue"] == [2, 3, 5]
    text = fan_out_yaml.read_text()
    assert "#    windows: list [Default: [2, 3, 5]]\n" in text  # ints, not 2.0
    assert "#    rows: int [Default: 60]\n" in text
    executors = spec["deploymentSpec"]["executors"]
    resources = executors["exec-smoothing-score"]["container"]["resources"]
    assert resources["cpuRequest"] == 0.5
    assert resources["memoryRequest"] == pytest.approx(0.268435456)
    assert resources["memoryLimit"] == pytest.approx(1.073741824)
    assert "resources" not in executors["exec-smoothing-plan"]["container"]
    retry = all_tasks(spec)["smoothing-score"]["retryPolicy"]
    assert (retry["maxRetryCount"], retry["backoffDuration"], retry["backoffFactor"]) == (
        2,
        "1s",
        2.0,
    )
    assert "retryPolicy" not in all_tasks(spec)["smoothing-choose"]
    run_id = {"name": "KFP_RUN_ID", "fieldPath": "metadata.labels['pipeline/runid']"}
    platform = _platform(fan_out_yaml)
    for executor in ("exec-smoothing-plan", "exec-smoothing-score", "exec-smoothing-choose"):
        assert run_id in platform[executor]["fieldPathAsEnv"], executor
    choose_outputs = spec["components"]["comp-smoothing-choose"]["outputDefinitions"]
    assert choose_outputs["artifacts"]["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    choose_source = executors["exec-smoothing-choose"]["container"]["command"][-1]
    assert "Asset checks run in this task: every_candidate_scored" in choose_source
    assert (
        "every_candidate_scored"
        not in executors["exec-smoothing-score"]["container"]["command"][-1]
    )


@pytest.mark.slow
def test_the_fan_out_runs_under_kfp_local_as_in_dagster(
    fan_out_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each iteration is its own task; the collected result equals Dagster's, in its order."""
    log_dir = tmp_path / "run_log"
    log_dir.mkdir()
    monkeypatch.setenv(fan_out.RUN_LOG_DIR, str(log_dir))
    succeeded, run_dir = run_yaml(fan_out_yaml, tmp_path / "root", windows=[5, 3], horizon=2)
    assert succeeded
    iterations = sorted(run_dir.glob("for-loop-*-iteration-*/smoothing-score/smoothing__score"))
    assert len(iterations) == 2
    keys = {
        json.loads((p.parent / "executor_output.json").read_text())["artifacts"][
            "smoothing__score"
        ]["artifacts"][0]["metadata"][MAPPING_KEY_METADATA]
        for p in iterations
    }
    assert keys == {"window_5", "window_3"}

    dagster = materialize(
        [*fan_out.defs.assets, *fan_out.defs.asset_checks],
        resources=fan_out.defs.resources,
        run_config={
            "ops": {
                "smoothing": {
                    "ops": {
                        "plan": {"config": {"windows": [5, 3]}},
                        "score": {"config": {"horizon": 2}},
                    }
                }
            }
        },
        instance=DagsterInstance.ephemeral(),
    )
    chosen = read_value(run_dir / "smoothing-choose" / "smoothing__choose")
    assert chosen == dagster.output_for_node("smoothing")
    assert [s["key"] for s in chosen["scores"]] == ["window_5", "window_3"]  # Dagster's order
    assert read_value(run_dir / "report" / "report") == dagster.output_for_node("report")
    executor_output = json.loads(
        (run_dir / "smoothing-choose" / "executor_output.json").read_text()
    )
    (metrics,) = executor_output["artifacts"]["metrics"]["artifacts"]
    assert metrics["metadata"] == chosen["metrics"]  # kfp/metrics of the graph-backed asset

    # The tracking protocol: every task, each iteration too, saw the run's one id.
    events = [json.loads(line) for line in (log_dir / f"{run_dir.name}.jsonl").open()]
    assert [p.name for p in log_dir.iterdir()] == [f"{run_dir.name}.jsonl"]
    assert sorted(e["key"] for e in events if e.get("op") == "score") == ["window_3", "window_5"]
    assert {"check": "every_candidate_scored"} in events  # in the final op's task
    assert events[-1] == {"status": "FINISHED"}
