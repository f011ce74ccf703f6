"""Talking to a KFP cluster: upload or add a version, run, wait, and replace the recurring run.

No KFP server runs in this project's tests, so this stays thin: :func:`deploy` makes one
``kfp.Client`` call per step and is tested against a client that records the calls; the
printed ``kfp`` CLI commands (:func:`cli_commands`) do the same steps.

A redeploy is repeatable: the API server refuses a second pipeline of the same name (HTTP 409,
backend/src/apiserver/storage/pipeline_store.go at 2.14.0), so an existing pipeline gets a new
version named after the YAML's content. The first upload cannot name its version: the server
names it after the pipeline (backend/src/apiserver/server/pipeline_upload_server.go:138-142 at
2.14.0, :168-171 at 2.17.0, with the pipeline's description), so the pipeline's description
records the content's version name, and a redeploy of the same YAML finds that first version
through it and uploads nothing. The recurring run of the same name is deleted and
created again on that version; runs and recurring runs reference the uploaded version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters.kfp.schedule import RecurringRun

#: Where kfp.Client reads the projected service-account token in a Kubeflow pod.
SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
#: Terminal run states (backend/api/v2beta1/run.proto RuntimeState, tag 2.14.0).
FINAL_STATES = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}


@dataclass(frozen=True)
class Deployment:
    """Everything a deploy does, decided before any call."""

    package: str
    pipeline_name: str
    version_name: str
    experiment: str
    namespace: str | None = None
    run: bool = False
    run_name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    recurring: RecurringRun | None = None
    wait: bool = False
    timeout: int = 3600


def version_name(pipeline_name: str, package: str | Path) -> str:
    """A version name that changes with the YAML's content and only with it."""
    digest = hashlib.sha256(Path(package).read_bytes()).hexdigest()[:12]
    return f"{pipeline_name}-{digest}"


def client_kwargs(host: str, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """``kfp.Client`` arguments: the host, and in a Kubeflow pod its service-account token."""
    env = os.environ if environ is None else environ
    token_path = env.get(SA_TOKEN_ENV) or SA_TOKEN_PATH
    kwargs: dict[str, Any] = {"host": host}
    if env.get(SA_TOKEN_ENV) or Path(token_path).is_file():
        from kfp.client import ServiceAccountTokenVolumeCredentials

        kwargs["credentials"] = ServiceAccountTokenVolumeCredentials(path=token_path)
    return kwargs


#: How the pipeline's description names the content of its first version (see above).
FIRST_VERSION_NOTE = "first version's content: "


def _first_version_is(pipeline: Any, version: str) -> bool:
    """Whether ``pipeline``'s first version (named after it) holds the YAML of ``version``."""
    description = str(getattr(pipeline, "description", "") or "")
    return description.endswith(f"{FIRST_VERSION_NOTE}{version}")


def _by_name(name: str) -> str:
    return json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    )


def deploy(client: Any, plan: Deployment, log: Callable[[str], None] = print) -> dict[str, str]:
    """Upload (or add a version), then run and/or replace the recurring run; return the ids."""
    done: dict[str, str] = {}
    found = client.list_pipelines(filter=_by_name(plan.pipeline_name), namespace=plan.namespace)
    pipelines = found.pipelines or []
    if pipelines:
        pipeline_id = pipelines[0].pipeline_id
        versions = client.list_pipeline_versions(pipeline_id, filter=_by_name(plan.version_name))
        if not versions.pipeline_versions and _first_version_is(pipelines[0], plan.version_name):
            versions = client.list_pipeline_versions(
                pipeline_id, filter=_by_name(plan.pipeline_name)
            )
        if versions.pipeline_versions:
            version_id = versions.pipeline_versions[0].pipeline_version_id
            log(f"pipeline {plan.pipeline_name}: version {plan.version_name} already uploaded")
        else:
            version = client.upload_pipeline_version(
                plan.package, plan.version_name, pipeline_id=pipeline_id
            )
            version_id = version.pipeline_version_id
    else:
        pipeline_id = client.upload_pipeline(
            plan.package,
            plan.pipeline_name,
            description=f"{FIRST_VERSION_NOTE}{plan.version_name}",
            namespace=plan.namespace,
        ).pipeline_id
        versions = client.list_pipeline_versions(pipeline_id)
        version_id = versions.pipeline_versions[0].pipeline_version_id
    done.update(pipeline_id=pipeline_id, version_id=version_id)
    experiment_id = client.create_experiment(
        plan.experiment, namespace=plan.namespace
    ).experiment_id
    if plan.recurring:
        recurring = plan.recurring
        existing = client.list_recurring_runs(
            experiment_id=experiment_id,
            namespace=plan.namespace,
            filter=_by_name(recurring.job_name),
        )
        for old in existing.recurring_runs or []:
            client.delete_recurring_run(old.recurring_run_id)
            log(f"replaced recurring run {recurring.job_name} ({old.recurring_run_id})")
        job = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=recurring.job_name,
            description=recurring.description,
            cron_expression=recurring.cron_expression,
            params={**recurring.parameters, **plan.arguments},
            pipeline_id=pipeline_id,
            version_id=version_id,
            no_catchup=True,  # like a Dagster schedule: missed ticks are not backfilled
            enabled=True,
        )
        done["recurring_run_id"] = job.recurring_run_id
    if plan.run:
        run = client.run_pipeline(
            experiment_id=experiment_id,
            job_name=plan.run_name or plan.pipeline_name,
            params=plan.arguments,
            pipeline_id=pipeline_id,
            version_id=version_id,
        )
        done["run_id"] = run.run_id
    return done


def wait_for_run(
    client: Any,
    run_id: str,
    timeout: float,
    poll: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll the run until a final state; return it, or ``"TIMEOUT"``."""
    deadline = clock() + timeout
    while True:
        state = str(client.get_run(run_id).state or "").upper()
        if state in FINAL_STATES:
            return state
        if clock() >= deadline:
            return "TIMEOUT"
        sleep(min(poll, max(0.0, deadline - clock())))


def run_url(host: str, run_id: str) -> str:
    """The run's page in the KFP UI."""
    return f"{host.rstrip('/')}/#/runs/details/{run_id}"


def cli_commands(plan: Deployment) -> list[str]:
    """The ``kfp`` CLI commands (bash) that do what ``--host`` does for ``plan``."""
    q = shlex.quote
    kfp = 'kfp --endpoint "$KFP_HOST"'
    if plan.namespace:
        kfp += f" --namespace {q(plan.namespace)}"

    def field_of(name: str, first: bool = True) -> str:
        pick = f'json.load(sys.stdin)[0]["{name}"]' if first else f'json.load(sys.stdin)["{name}"]'
        return f"python3 -c 'import json,sys; print({pick})'"

    commands = [
        "# upload: a new version of the existing pipeline, else the pipeline itself",
        f"{kfp} pipeline create-version -n {q(plan.pipeline_name)} "
        f"-v {q(plan.version_name)} {q(plan.package)} "
        f"|| {kfp} pipeline create -p {q(plan.pipeline_name)} {q(plan.package)}",
    ]
    if not (plan.run or plan.recurring):
        return commands
    commands += [
        "# the ids of the pipeline and of the version just uploaded",
        f"PIPELINE_ID=$({kfp} --output json pipeline list "
        f"--filter {q(_by_name(plan.pipeline_name))} | {field_of('pipeline_id')})",
        f'VERSION_ID=$({kfp} --output json pipeline list-versions "$PIPELINE_ID" '
        f"--filter {q(_by_name(plan.version_name))} | {field_of('pipeline_version_id')}) "
        f'|| VERSION_ID=$({kfp} --output json pipeline list-versions "$PIPELINE_ID" '
        f"| {field_of('pipeline_version_id')})",
    ]
    if plan.recurring:
        recurring = plan.recurring
        params = {**recurring.parameters, **plan.arguments}
        args = "".join(f" {q(f'{k}={_cli_value(v)}')}" for k, v in sorted(params.items()))
        commands += [
            "# the recurring run, replacing the one of the same name",
            f"EXPERIMENT_ID=$({kfp} --output json experiment create {q(plan.experiment)} "
            f"| {field_of('experiment_id', first=False)})",
            f"for OLD in $({kfp} --output json recurring-run list --experiment-id "
            f'"$EXPERIMENT_ID" --filter {q(_by_name(recurring.job_name))} | python3 -c '
            "'import json,sys; [print(r[\"recurring_run_id\"]) for r in json.load(sys.stdin)]'); "
            f'do echo y | {kfp} recurring-run delete "$OLD"; done',
            f'{kfp} recurring-run create --experiment-id "$EXPERIMENT_ID" '
            f"--job-name {q(recurring.job_name)} --description {q(recurring.description)} "
            f"--cron-expression {q(recurring.cron_expression)} --no-catchup --enabled "
            f'--pipeline-id "$PIPELINE_ID" --version-id "$VERSION_ID"{args}',
        ]
    if plan.run:
        args = "".join(f" {q(f'{k}={_cli_value(v)}')}" for k, v in sorted(plan.arguments.items()))
        commands += [
            "# a run of that version",
            f"{kfp} run create -e {q(plan.experiment)} -r {q(plan.run_name or plan.pipeline_name)} "
            f'-p "$PIPELINE_ID" -v "$VERSION_ID"'
            + (f" -t {plan.timeout}" if plan.wait else "")
            + args,
        ]
    return commands


def _cli_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
