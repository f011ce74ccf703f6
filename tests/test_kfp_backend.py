"""Backend conformance: the Kubeflow Pipelines backend's own Go packages, at each
supported version, run over every pipeline.yaml the exporter emits.

``tests/kfp_backend`` is a Go program built once per version (pins/<version>.mod). For each
emitted YAML it creates a run as the API server does (backend/src/apiserver/template, the Argo
compiler); the workflows are kept under ``tests/kfp_backend/build/<version>/workflows``. It
replays one run's executions through the backend's ``metadata.Client`` against an in-memory
MLMD and prints the state string the exit task receives. Run by ``make test-backend``
(KFP_BACKEND_TIER=1); a plain ``pytest`` skips it, since the first build takes minutes.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, env_for_subprocess
from tests.kfp_backend import harness

pytestmark = pytest.mark.skipif(
    os.environ.get("KFP_BACKEND_TIER") != "1", reason="the backend tier: make test-backend"
)

VERSIONS = harness.versions()
#: What the exit task receives, per version, for each replayed run (found by execution): up
#: to 2.16 the launcher updates only the finished task's direct parent DAG, so the exit
#: handler's DAG is RUNNING whatever happened; 2.17.0 propagates upward (kubeflow/pipelines#13322)
#: but only UpdateDAGExecutionsState calls from the launcher (launcher_v2.go) do any update.
EXPECTED_STATES = {
    "2.14.0": dict.fromkeys(
        [
            "succeeded-deployed",
            "succeeded-deploy-skipped",
            "parallelfor-task-failed",
            "cached-tasks",
        ],
        "RUNNING",
    ),
}
EXPECTED_STATES["2.15.0"] = EXPECTED_STATES["2.14.0"]
#: 2.17.0 propagates only from a launched task: a dsl.If not taken (its DAG is created CANCELED
#: after the last task ran) and cache hits (published by the driver) update no DAG.
EXPECTED_STATES["2.17.0"] = {
    "succeeded-deployed": "COMPLETE",
    "succeeded-deploy-skipped": "RUNNING",
    "parallelfor-task-failed": "FAILED",
    "cached-tasks": "RUNNING",
}
EXPECTED_OUTCOME = {
    "succeeded-deployed": "FINISHED",
    "succeeded-deploy-skipped": "FINISHED",
    "parallelfor-task-failed": "FAILED",
    "cached-tasks": "FINISHED",
}
RESULTS: dict[str, dict[str, Any]] = {version: {} for version in VERSIONS}


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = harness.BUILD / "emitted"
    done = subprocess.run(
        [sys.executable, "-m", "tests.kfp_backend.emit", str(folder)],
        cwd=PROJECT_ROOT,
        env=env_for_subprocess(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    failed = {name: r for name, r in results.items() if not r.endswith(".yaml")}
    assert not failed, failed
    return {name: Path(path) for name, path in results.items()}


@pytest.fixture(scope="module", params=VERSIONS)
def binary(request: pytest.FixtureRequest) -> tuple[str, Path]:
    version = request.param
    try:
        return version, harness.prepare(version)
    except harness.SetupError as error:
        harness.write_verdict(version, f"FAILED set-up: {error}", ok=False)
        pytest.fail(str(error), pytrace=False)


def compile_yaml(
    binary: Path, version: str, path: Path
) -> tuple[subprocess.CompletedProcess, Path]:
    out = harness.BUILD / version / "workflows" / f"{path.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(binary), "compile", str(path), str(out)], capture_output=True, text=True, timeout=120
    )
    return done, out


def templates(workflow: dict) -> dict[str, dict]:
    return {t["name"]: t for t in workflow["spec"]["templates"]}


def dag_tasks(workflow: dict, template: str) -> dict[str, dict]:
    return {t["name"]: t for t in templates(workflow)[template]["dag"]["tasks"]}


def arguments(task: dict) -> dict[str, str]:
    return {p["name"]: p.get("value", "") for p in task.get("arguments", {}).get("parameters", [])}


def workflow_parameters(workflow: dict) -> dict[str, str]:
    return {p["name"]: p.get("value", "") for p in workflow["spec"]["arguments"]["parameters"]}


def kubernetes_config(workflow: dict, component: str) -> dict:
    return json.loads(workflow_parameters(workflow)[f"kubernetes-{component}"])


def executors(workflow: dict) -> dict[str, dict]:
    """Container task name -> its driver task (in any DAG template)."""
    found = {}
    for template in workflow["spec"]["templates"]:
        for task in (template.get("dag") or {}).get("tasks", []):
            if task.get("template") == "system-container-driver":
                found[arguments(task)["task-name"]] = task
    return found


def spec_container_tasks(spec: dict) -> set[str]:
    """Every task of the pipeline spec that runs an executor (not a DAG)."""
    names = set()
    for component in [spec["root"], *spec["components"].values()]:
        for name, task in (component.get("dag") or {}).get("tasks", {}).items():
            if "executorLabel" in spec["components"][task["componentRef"]["name"]]:
                names.add(name)
    return names


def test_every_emitted_yaml_compiles_with_the_api_servers_compiler(
    binary: tuple[str, Path], emitted: dict[str, Path]
) -> None:
    version, path = binary
    for name, source in emitted.items():
        done, out = compile_yaml(path, version, source)
        assert done.returncode == 0, f"KFP {version}, {name}: {done.stderr.strip()}"
        workflow = json.loads(out.read_text())
        spec = next(d for d in yaml.safe_load_all(source.read_text()) if d)
        # one driver + executor per task of the pipeline spec, none more
        assert set(executors(workflow)) == spec_container_tasks(spec), name
    RESULTS[version]["compiled"] = len(emitted)


def test_the_stock_workflow_has_what_a_run_relies_on(
    binary: tuple[str, Path], emitted: dict[str, Path]
) -> None:
    version, path = binary
    done, out = compile_yaml(path, version, emitted["stock"])
    assert done.returncode == 0, done.stderr
    workflow = json.loads(out.read_text())
    root = dag_tasks(workflow, "root")
    # the exit task runs after the exit-handler group, whatever its outcome
    hook = root["exit-handler-1"]["hooks"]["exit"]["template"]
    assert "end-tracking-run" in dag_tasks(workflow, hook)
    assert templates(workflow)[hook]["dag"]["tasks"][0]["template"] == "system-container-driver"
    # the run id reaches every pod as the label the tasks read through the field-path env
    assert workflow["spec"]["podMetadata"]["labels"]["pipeline/runid"] == harness_run_id()
    for task in executors(workflow):
        config = (
            kubernetes_config(workflow, f"comp-{task}") if task != "resolve-scheduled-dates" else {}
        )
        if config:
            env = {e["name"]: e["fieldPath"] for e in config["fieldPathAsEnv"]}
            assert env["KFP_RUN_ID"] == "metadata.labels['pipeline/runid']", task
            (secret,) = config["secretAsEnv"]
            assert secret["secretName"] == "mlflow", task
    # no cached task has a per-run parameter among its inputs
    for task, driver in executors(workflow).items():
        spec_task = json.loads(arguments(driver)["task"])
        if spec_task.get("cachingOptions", {}).get("enableCache"):
            text = json.dumps(spec_task["inputs"])
            assert "pipeline_job" not in text and "KFP_RUN_ID" not in text, task
    RESULTS[version]["stock"] = True


def harness_run_id() -> str:
    return re.search(r'RunID = "([^"]+)"', (harness.HERE / "compile.go").read_text())[1]


def test_kubernetes_settings_and_parallelism_reach_the_workflow(
    binary: tuple[str, Path], emitted: dict[str, Path]
) -> None:
    version, path = binary
    done, out = compile_yaml(path, version, emitted["k8s"])
    assert done.returncode == 0, done.stderr
    config = kubernetes_config(json.loads(out.read_text()), "comp-pinned")
    assert config["nodeSelector"] == {"labels": {"pool": "training"}}
    assert config["tolerations"] == [
        {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}
    ]
    assert int(config["activeDeadlineSeconds"]) == 900
    assert {s["secretName"] for s in config["secretAsEnv"]} >= {"api-secret"}
    done, out = compile_yaml(path, version, emitted["fan_out"])
    assert done.returncode == 0, done.stderr
    iterators = [
        t for t in json.loads(out.read_text())["spec"]["templates"] if "iterator" in t["name"]
    ]
    assert [t.get("parallelism") for t in iterators] == [2]
    RESULTS[version]["k8s"] = True


def test_a_yaml_the_backend_rejects_fails_with_the_backends_error(
    binary: tuple[str, Path], emitted: dict[str, Path]
) -> None:
    version, path = binary
    docs = [d for d in yaml.safe_load_all(emitted["k8s"].read_text()) if d]
    docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-pinned"][
        "notAField"
    ] = True
    broken = harness.BUILD / version / "broken.yaml"
    broken.write_text(yaml.safe_dump_all(docs))
    done, _ = compile_yaml(path, version, broken)
    assert done.returncode == 1
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "notAField" in message and str(broken) in message, message
    RESULTS[version]["reject"] = message


def exit_plan(source: Path) -> list[dict] | None:
    """The plan the exit task decides from, read back from its code in the YAML."""

    def strings(node: Any) -> Iterator[str]:
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)

    for text in strings(list(yaml.safe_load_all(source.read_text()))):
        found = re.search(r"plan=('(?:[^'\\]|\\.)*')", text)
        if found:
            return json.loads(ast.literal_eval(found[1]))
    return None


def records_for(plan: list[dict], case: str, iterations: int) -> dict[str, str]:
    """What the tasks of a replayed run record, as exporters/kfp/outcome.py defines it."""
    gates = {g for entry in plan for g in entry.get("gates", [])}
    loops = {entry["loop"] for entry in plan if entry.get("loop")}
    records: dict[str, str] = {}
    failed: set[str] = set()
    for entry in plan:
        task = entry["task"]
        if any(a in failed for a in entry["after"]):
            failed.add(task)
            continue
        if case == "succeeded-deploy-skipped" and entry.get("gates"):
            continue
        if case == "cached-tasks" and entry.get("cache"):
            continue
        fields: dict[str, Any] = {"state": "succeeded"}
        if task in gates:
            fields["gate"] = case != "succeeded-deploy-skipped"
        if task in loops:
            fields["items"] = iterations
        keys = [f"{task}/{i}" for i in range(iterations)] if entry.get("loop") else [task]
        for key in keys:
            records[key] = json.dumps(fields)
        if case == "parallelfor-task-failed" and entry.get("loop"):
            records[keys[0]] = json.dumps({"state": "failed", "error": "boom"})
            failed.add(task)
    return records


def test_replayed_run_states_and_the_exit_handlers_outcome(
    binary: tuple[str, Path], emitted: dict[str, Path]
) -> None:
    version, path = binary
    done = subprocess.run(
        [str(path), "replay", str(emitted["stock"])], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    states = {case: found["end-tracking-run"] for case, found in json.loads(done.stdout).items()}
    (harness.BUILD / version / "replay.json").write_text(json.dumps(states, indent=1))
    RESULTS[version]["states"] = states
    if version in EXPECTED_STATES:
        assert states == EXPECTED_STATES[version]
    from exporters.kfp.outcome import decide

    plan = exit_plan(emitted["stock"])
    assert plan, "the exit task's code in the YAML carries no plan (exporters/kfp/compile.py)"
    iterations = int(re.search(r"Iterations = (\d+)", (harness.HERE / "replay.go").read_text())[1])
    outcomes = {
        case: decide(plan, records_for(plan, case, iterations), state).status
        for case, state in states.items()
    }
    RESULTS[version]["outcomes"] = outcomes
    assert outcomes == EXPECTED_OUTCOME
    harness.write_verdict(version, verdict_line(version, "MLflow outcomes as expected"), True)


def verdict_line(version: str, outcome: str) -> str:
    """One line for ``make test-backend``; the earlier tests of this version must have passed."""
    done = RESULTS[version]
    states = ", ".join(f"{case}={state}" for case, state in sorted(done["states"].items()))
    line = f"compiled {done.get('compiled', 0)} pipelines; exit task receives {states}; {outcome}"
    if not (done.get("compiled") and done.get("stock") and done.get("k8s") and done.get("reject")):
        raise AssertionError(f"KFP {version}: an earlier test of this version failed: {line}")
    return line
