"""The exporter's command line: one-line errors, refused tracking URIs, and the deploy steps.

Runs ``exporters.kfp.__main__.main`` in process (the real parser, graph reader and compiler).
No KFP server runs here: the deploy logic is exercised against ``RecordingClient``, a stand-in
for ``kfp.Client`` that records calls and answers like the API; it is used only for the
submission logic (upload or version, replace the recurring run), never to claim a run works.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dagster import Definitions, asset

from exporters.kfp.__main__ import main, redact
from exporters.kfp.graph import UnsupportedConstructError, read_graph
from exporters.kfp.schedule import RecurringRun
from exporters.kfp.submit import Deployment, cli_commands, client_kwargs, deploy, wait_for_run
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run the CLI in the project root with no tracking URI in the environment."""
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's own errors
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _one_line_error(code: int, err: str, option: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1 and option in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--schedule", "nope"], "--schedule"),
        (["--image", ""], "--image"),
        (["--image", "Bad Image!"], "--image"),
        (["--mlflow-secret", "Bad_Name"], "--mlflow-secret"),
        (["--mlflow-secret", "creds:not a key"], "--mlflow-secret"),
        (["--run"], "--run"),
        (["--pipeline-name", "My Pipeline"], "--pipeline-name"),
        (["--param", "nope=1"], "--param"),
        (["--param", "days=many"], "--param"),
        (["--host", "http://127.0.0.1:9"], "--host"),
        (["--host", "ftp://x"], "--host"),
        (["--module", "no_such_module_here"], "--module"),
        (["--mlflow-tracking-uri", "http://127.0.0.1:5001"], "--mlflow-tracking-uri"),
        (["--mlflow-tracking-uri", "sqlite:///data/mlflow.db"], "--mlflow-tracking-uri"),
        (["--timeout", "0"], "--timeout"),
        (["--run", "--host", "http://127.0.0.1:9", "--wait", "--timeout", "-5"], "--timeout"),
    ],
)
def test_a_wrong_option_is_one_line_exit_2_and_nothing_written(
    cli, tmp_path: Path, args: list[str], option: str
) -> None:
    code, _, err = cli("-o", str(tmp_path / "p.yaml"), *args)
    _one_line_error(code, err, option)
    assert list(tmp_path.iterdir()) == []


def test_output_into_missing_directories_creates_them(cli, tmp_path: Path) -> None:
    """The README's `-o build/pipeline.yaml` on a fresh clone."""
    out = tmp_path / "build" / "nested" / "pipeline.yaml"
    code, _, err = cli("-o", str(out))
    assert code == 0, err
    assert out.read_text().startswith("# PIPELINE DEFINITION")


def test_output_under_a_file_or_onto_a_directory(cli, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    (tmp_path / "dir.yaml").mkdir()
    for target in (tmp_path / "plain" / "p.yaml", tmp_path / "dir.yaml"):
        code, _, err = cli("-o", str(target))
        _one_line_error(code, err, "--output")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.yaml", "plain"]  # no temp file


def test_loopback_uri_from_the_environment_is_refused(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://localhost:5001")
    code, _, err = cli("-o", str(tmp_path / "p.yaml"))
    _one_line_error(code, err, "$MLFLOW_TRACKING_URI")
    code, _, err = cli("-o", str(tmp_path / "p.yaml"), "--allow-local-tracking-uri")
    assert code == 0, err


def test_credentials_in_the_uri_are_refused_and_never_shown(cli, tmp_path: Path) -> None:
    uri = "https://alice:s3cret-pw@mlflow.example.org"
    code, out, err = cli("-o", str(tmp_path / "p.yaml"), "--mlflow-tracking-uri", uri)
    _one_line_error(code, err, "--mlflow-secret")
    assert "s3cret-pw" not in out + err and "alice" not in out + err
    assert redact(uri) == "https://***@mlflow.example.org"
    code, _, err = cli(
        "-o", str(tmp_path / "p.yaml"), "--mlflow-tracking-uri", uri, "--allow-local-tracking-uri"
    )
    assert code == 2 and "s3cret-pw" not in err  # credentials are refused even then


def test_without_a_uri_the_export_says_what_happens(cli, tmp_path: Path) -> None:
    code, _, err = cli("-o", str(tmp_path / "p.yaml"))
    assert code == 0
    assert "no MLflow tracking URI" in err and "--mlflow-tracking-uri" in err


def _definitions(*assets: Any) -> Definitions:
    return Definitions(assets=list(assets))


def test_two_assets_with_one_task_name_are_refused() -> None:
    @asset(key=["a", "b"])
    def slash() -> int:
        return 1

    @asset(name="a__b")
    def underscores() -> int:
        return 2

    with pytest.raises(UnsupportedConstructError, match=r"task name 'a-b'.*'a/b'"):
        read_graph(_definitions(slash, underscores), "m", [])


def test_assets_named_like_generated_code_still_export(tmp_path: Path) -> None:
    """``materialize_asset`` (and kfp/typing names) would shadow the generated code."""
    from exporters.kfp.compile import ExportOptions, compile_pipeline

    @asset(name="materialize_asset")
    def first() -> int:
        return 1

    @asset(name="Input")
    def second(materialize_asset: int) -> int:
        return materialize_asset

    graph = read_graph(_definitions(first, second), "m", [])
    assert [t.function_name for t in graph.tasks] == ["materialize_asset", "asset_Input"]
    compile_pipeline(graph, ExportOptions(image="x:1"), tmp_path / "p.yaml")


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"max_retries": 3, "delay": 1, "backoff": "LINEAR"}, "LINEAR"),
        ({"max_retries": 2, "delay": 0.5}, "whole seconds"),
        ({"max_retries": 2, "delay": 2, "jitter": "FULL"}, "jitter"),
    ],
)
def test_retry_policies_kfp_cannot_express_are_refused(policy: dict, message: str) -> None:
    from dagster import Backoff, Jitter, RetryPolicy

    kwargs = dict(policy)
    if "backoff" in kwargs:
        kwargs["backoff"] = Backoff[kwargs["backoff"]]
    if "jitter" in kwargs:
        kwargs["jitter"] = Jitter[kwargs["jitter"]]

    @asset(retry_policy=RetryPolicy(**kwargs))
    def flaky() -> int:
        return 1

    with pytest.raises(UnsupportedConstructError, match=f"asset 'flaky'.*{message}"):
        read_graph(_definitions(flaky), "m", [])


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"pod_spec_config": {"affinity": {}}}, "pod_spec_config.affinity"),
        ({"container_config": {"volume_mounts": []}}, "container_config.volume_mounts"),
        (
            {"container_config": {"resources": {"limits": {"ephemeral-storage": "1Gi"}}}},
            "limits.ephemeral-storage",
        ),
        ({"job_config": {}}, "job_config"),
    ],
)
def test_untranslatable_k8s_keys_name_the_asset_and_key(config: dict, key: str) -> None:
    @asset(op_tags={"dagster-k8s/config": config})
    def heavy() -> int:
        return 1

    with pytest.raises(UnsupportedConstructError, match=rf"asset 'heavy'.*{key}"):
        read_graph(_definitions(heavy), "m", [])


class RecordingClient:
    """Records kfp.Client calls; answers like a KFP API server that keeps what it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.pipelines: dict[str, str] = {}
        self.descriptions: dict[str, str | None] = {}
        self.versions: dict[str, list[tuple[str, str]]] = {}
        self.recurring: dict[str, str] = {}

    def _call(self, method: str, **kwargs: Any) -> None:
        self.calls.append((method, kwargs))

    @staticmethod
    def _name(filter: str | None) -> str | None:
        import json

        return json.loads(filter)["predicates"][0]["stringValue"] if filter else None

    def list_pipelines(self, filter: str, namespace: str | None) -> Any:
        pid = self.pipelines.get(self._name(filter))
        found = SimpleNamespace(pipeline_id=pid, description=self.descriptions.get(pid))
        return SimpleNamespace(pipelines=[found] if pid else None)

    def upload_pipeline(
        self, package: str, name: str, namespace: str | None, description: str | None = None
    ) -> Any:
        """As the API server: the first version is named after the pipeline and gets its
        description (backend/src/apiserver/server/pipeline_upload_server.go:138-142, 2.14.0)."""
        self._call(
            "upload_pipeline",
            pipeline_package_path=package,
            pipeline_name=name,
            description=description,
            namespace=namespace,
        )
        self.pipelines[name] = f"p-{len(self.pipelines)}"
        self.descriptions[self.pipelines[name]] = description
        self.versions[self.pipelines[name]] = [(name, "v-0")]
        return SimpleNamespace(pipeline_id=self.pipelines[name])

    def list_pipeline_versions(self, pipeline_id: str, filter: str | None = None) -> Any:
        wanted = self._name(filter)
        found = [v for n, v in self.versions[pipeline_id] if wanted in (None, n)]
        return SimpleNamespace(
            pipeline_versions=[SimpleNamespace(pipeline_version_id=v) for v in found] or None
        )

    def upload_pipeline_version(self, package: str, name: str, pipeline_id: str) -> Any:
        self._call(
            "upload_pipeline_version",
            pipeline_package_path=package,
            pipeline_version_name=name,
            pipeline_id=pipeline_id,
        )
        version = f"v-{len(self.versions[pipeline_id])}"
        self.versions[pipeline_id].append((name, version))
        return SimpleNamespace(pipeline_version_id=version)

    def create_experiment(self, name: str, namespace: str | None) -> Any:
        return SimpleNamespace(experiment_id=f"e-{name}")

    def list_recurring_runs(self, experiment_id: str, namespace: Any, filter: str) -> Any:
        rid = self.recurring.get(self._name(filter))
        return SimpleNamespace(
            recurring_runs=[SimpleNamespace(recurring_run_id=rid)] if rid else None
        )

    def delete_recurring_run(self, recurring_run_id: str) -> None:
        self._call("delete_recurring_run", recurring_run_id=recurring_run_id)
        self.recurring = {k: v for k, v in self.recurring.items() if v != recurring_run_id}

    def create_recurring_run(self, **kwargs: Any) -> Any:
        self._call("create_recurring_run", **kwargs)
        rid = f"r-{len(self.calls)}"
        self.recurring[kwargs["job_name"]] = rid
        return SimpleNamespace(recurring_run_id=rid)

    def run_pipeline(self, **kwargs: Any) -> Any:
        self._call("run_pipeline", **kwargs)
        return SimpleNamespace(run_id="run-1")


def _plan(tmp_path: Path, content: str) -> Deployment:
    package = tmp_path / "pipeline.yaml"
    package.write_text(content)
    from exporters.kfp.submit import version_name

    return Deployment(
        package=str(package),
        pipeline_name="stock-prediction",
        version_name=version_name("stock-prediction", package),
        experiment="stock-prediction",
        run=True,
        run_name="nightly-check",
        arguments={"days": 300},
        recurring=RecurringRun(
            "nightly_retrain", "0 0 2 * * *", "UTC", "nightly", {"end_date": "[[x]]"}
        ),
    )


def test_a_second_deploy_adds_a_version_and_replaces_the_recurring_run(tmp_path: Path) -> None:
    """The API server refuses a second pipeline of one name (HTTP 409:
    backend/src/apiserver/storage/pipeline_store.go:612, server/pipeline_upload_server.go:150
    at 2.14.0): a redeploy uploads a version and references it."""
    client = RecordingClient()
    first = deploy(client, _plan(tmp_path, "one"), log=lambda _: None)
    second = deploy(client, _plan(tmp_path, "two"), log=lambda _: None)
    names = [name for name, _ in client.calls]
    assert names == [
        "upload_pipeline",
        "create_recurring_run",
        "run_pipeline",
        "upload_pipeline_version",
        "delete_recurring_run",
        "create_recurring_run",
        "run_pipeline",
    ]
    assert second["pipeline_id"] == first["pipeline_id"]
    assert second["version_id"] != first["version_id"]
    assert len(client.recurring) == 1  # replaced, not duplicated
    recurring = [kw for name, kw in client.calls if name == "create_recurring_run"][-1]
    run = [kw for name, kw in client.calls if name == "run_pipeline"][-1]
    for call in (recurring, run):
        assert call["pipeline_id"] == second["pipeline_id"]
        assert call["version_id"] == second["version_id"]
    assert recurring["no_catchup"] is True and recurring["cron_expression"] == "0 0 2 * * *"
    assert recurring["params"] == {"end_date": "[[x]]", "days": 300}
    assert run["job_name"] == "nightly-check" and run["params"] == {"days": 300}
    # Every recorded call binds to the real kfp.Client method of that name.
    import inspect

    import kfp

    for method, kwargs in client.calls:
        inspect.signature(getattr(kfp.Client, method)).bind(None, **kwargs)
    # The same file again: nothing new is uploaded.
    deploy(client, _plan(tmp_path, "two"), log=lambda _: None)
    assert [n for n, _ in client.calls].count("upload_pipeline_version") == 1


def test_deploying_the_same_yaml_twice_uploads_it_once(tmp_path: Path) -> None:
    """The first upload's version is named after the pipeline, never after the content; the
    second deploy of that file must still find it."""
    client = RecordingClient()
    first = deploy(client, _plan(tmp_path, "one"), log=lambda _: None)
    second = deploy(client, _plan(tmp_path, "one"), log=lambda _: None)
    uploads = [n for n, _ in client.calls if n.startswith("upload_")]
    assert uploads == ["upload_pipeline"]
    assert second["version_id"] == first["version_id"] == "v-0"
    run = [kw for name, kw in client.calls if name == "run_pipeline"][-1]
    assert run["version_id"] == "v-0"
    # Other content is a new version, found again by its name on the next deploy.
    deploy(client, _plan(tmp_path, "two"), log=lambda _: None)
    deploy(client, _plan(tmp_path, "two"), log=lambda _: None)
    deploy(client, _plan(tmp_path, "one"), log=lambda _: None)
    uploads = [n for n, _ in client.calls if n.startswith("upload_")]
    assert uploads == ["upload_pipeline", "upload_pipeline_version"]


def test_printed_commands_do_what_host_does(tmp_path: Path) -> None:
    commands = "\n".join(cli_commands(_plan(tmp_path, "one")))
    assert "pipeline create-version -n stock-prediction" in commands
    assert "pipeline create -p stock-prediction" in commands
    assert "recurring-run delete" in commands
    assert "--no-catchup --enabled" in commands
    assert '--pipeline-id "$PIPELINE_ID" --version-id "$VERSION_ID"' in commands
    assert 'run create -e stock-prediction -r nightly-check -p "$PIPELINE_ID" -v' in commands


def test_wait_follows_the_run_to_a_final_state() -> None:
    """Final states of backend/api/v2beta1/run.proto RuntimeState at 2.14.0."""
    states = iter(["PENDING", "RUNNING", "CANCELED"])
    client = SimpleNamespace(get_run=lambda run_id: SimpleNamespace(state=next(states)))
    assert wait_for_run(client, "r", timeout=60, sleep=lambda s: None) == "CANCELED"
    clock = iter([0.0, 0.0, 100.0, 100.0])
    client = SimpleNamespace(get_run=lambda run_id: SimpleNamespace(state="RUNNING"))
    assert wait_for_run(client, "r", 60, sleep=lambda s: None, clock=lambda: next(clock)) == (
        "TIMEOUT"
    )


def test_client_uses_the_service_account_token_in_a_kubeflow_pod(tmp_path: Path) -> None:
    """Multi-user KFP authenticates a Bearer token with audience pipelines.kubeflow.org
    (backend/src/apiserver/common/const.go:50-54 at 2.14.0); kfp.Client reads the projected
    token from $KF_PIPELINES_SA_TOKEN_PATH."""
    token = tmp_path / "token"
    token.write_text("projected-token")
    kwargs = client_kwargs(
        "http://ml-pipeline-ui.kubeflow", {"KF_PIPELINES_SA_TOKEN_PATH": str(token)}
    )
    assert kwargs["host"] == "http://ml-pipeline-ui.kubeflow"
    assert kwargs["credentials"]._token_path == str(token)
    assert "credentials" not in client_kwargs("http://h", {})  # no pod, no token file
