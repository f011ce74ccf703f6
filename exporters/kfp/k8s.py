"""``dagster-k8s/config`` of an asset, translated to kfp-kubernetes settings of its task.

Every key is either translated faithfully or rejected with an error naming the asset and the
key. Every setting used here is handled by the KFP driver from 2.14 on
(``backend/src/v2/driver/k8s.go`` and ``driver.go`` at tag 2.14.0).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

K8S_CONFIG_TAG = "dagster-k8s/config"
#: Extended resources that KFP expresses as an accelerator limit.
ACCELERATOR = re.compile(r"^[a-z0-9.-]+/gpu$")


class K8sConfigError(ValueError):
    """A ``dagster-k8s/config`` key with no faithful KFP translation."""


@dataclass
class K8sSettings:
    """What a task's pod gets, from ``dagster-k8s/config``."""

    requests: dict[str, str] = field(default_factory=dict)  # cpu, memory
    limits: dict[str, str] = field(default_factory=dict)
    accelerator: tuple[str, int] | None = None  # (resource name, count)
    env: dict[str, str] = field(default_factory=dict)
    secret_env: list[tuple[str, str, str]] = field(default_factory=list)  # secret, key, env
    field_env: list[tuple[str, str]] = field(default_factory=list)  # env, field path
    image_pull_policy: str = ""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    image_pull_secrets: list[str] = field(default_factory=list)
    timeout_seconds: int = 0
    pod_labels: dict[str, str] = field(default_factory=dict)
    pod_annotations: dict[str, str] = field(default_factory=dict)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _section(config: Any, where: str) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise K8sConfigError(f"{where} must be a mapping")
    return {_snake(k): v for k, v in config.items()}


def _refuse(section: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in sorted(set(section) - allowed):
        raise K8sConfigError(f"{f'{where}.' if where else ''}{key} has no KFP translation")


def read_k8s_config(tags: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The raw ``dagster-k8s/config`` of an asset: op tag first, else metadata."""
    config = tags.get(K8S_CONFIG_TAG) or metadata.get(K8S_CONFIG_TAG)
    if config is None:
        return None
    if isinstance(config, str):
        config = json.loads(config)
    return getattr(config, "value", getattr(config, "data", config))


def k8s_settings(config: dict[str, Any] | None) -> K8sSettings:
    """Translate a ``dagster-k8s/config`` mapping; raise :class:`K8sConfigError` on any gap."""
    settings = K8sSettings()
    top = _section(config, K8S_CONFIG_TAG)
    _refuse(
        top,
        {
            "container_config",
            "pod_spec_config",
            "pod_template_spec_metadata",
            "job_spec_config",
            "merge_behavior",
        },
        "",
    )
    _container(_section(top.get("container_config"), "container_config"), settings)
    _pod_spec(_section(top.get("pod_spec_config"), "pod_spec_config"), settings)
    meta = _section(top.get("pod_template_spec_metadata"), "pod_template_spec_metadata")
    _refuse(meta, {"labels", "annotations"}, "pod_template_spec_metadata")
    settings.pod_labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    settings.pod_annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    job = _section(top.get("job_spec_config"), "job_spec_config")
    _refuse(job, {"active_deadline_seconds"}, "job_spec_config")
    if job.get("active_deadline_seconds"):
        _timeout(settings, job["active_deadline_seconds"], "job_spec_config")
    return settings


def _container(container: dict[str, Any], settings: K8sSettings) -> None:
    _refuse(container, {"resources", "env", "image_pull_policy"}, "container_config")
    resources = _section(container.get("resources"), "container_config.resources")
    _refuse(resources, {"requests", "limits"}, "container_config.resources")
    for section in ("requests", "limits"):
        for name, amount in (resources.get(section) or {}).items():
            where = f"container_config.resources.{section}.{name}"
            if name in ("cpu", "memory"):
                getattr(settings, section)[name] = str(amount)
            elif ACCELERATOR.match(name):
                count = int(amount)
                if settings.accelerator and settings.accelerator != (name, count):
                    raise K8sConfigError(f"{where}: one accelerator type and count per task")
                settings.accelerator = (name, count)
            else:
                raise K8sConfigError(f"{where}: only cpu, memory and <vendor>/gpu are translated")
    settings.image_pull_policy = str(container.get("image_pull_policy") or "")
    for index, item in enumerate(container.get("env") or []):
        where = f"container_config.env[{index}]"
        entry = _section(item, where)
        _refuse(entry, {"name", "value", "value_from"}, where)
        name = str(entry.get("name") or "")
        if not name:
            raise K8sConfigError(f"{where} has no name")
        source = _section(entry.get("value_from"), f"{where}.value_from")
        if not source:
            settings.env[name] = str(entry.get("value", ""))
            continue
        _refuse(source, {"secret_key_ref", "field_ref"}, f"{where}.value_from")
        if "secret_key_ref" in source:
            ref = _section(source["secret_key_ref"], f"{where}.value_from.secret_key_ref")
            _refuse(ref, {"name", "key"}, f"{where}.value_from.secret_key_ref")
            settings.secret_env.append((str(ref["name"]), str(ref["key"]), name))
        else:
            ref = _section(source["field_ref"], f"{where}.value_from.field_ref")
            _refuse(ref, {"field_path"}, f"{where}.value_from.field_ref")
            settings.field_env.append((name, str(ref["field_path"])))


def _pod_spec(pod: dict[str, Any], settings: K8sSettings) -> None:
    allowed = {"node_selector", "tolerations", "image_pull_secrets", "active_deadline_seconds"}
    _refuse(pod, allowed, "pod_spec_config")
    settings.node_selector = {str(k): str(v) for k, v in (pod.get("node_selector") or {}).items()}
    for index, item in enumerate(pod.get("tolerations") or []):
        where = f"pod_spec_config.tolerations[{index}]"
        toleration = _section(item, where)
        _refuse(toleration, {"key", "operator", "value", "effect", "toleration_seconds"}, where)
        settings.tolerations.append(toleration)
    for index, item in enumerate(pod.get("image_pull_secrets") or []):
        secret = _section(item, f"pod_spec_config.image_pull_secrets[{index}]")
        _refuse(secret, {"name"}, f"pod_spec_config.image_pull_secrets[{index}]")
        settings.image_pull_secrets.append(str(secret["name"]))
    if pod.get("active_deadline_seconds"):
        _timeout(settings, pod["active_deadline_seconds"], "pod_spec_config")


def _timeout(settings: K8sSettings, seconds: Any, where: str) -> None:
    value = int(seconds)
    if value <= 0:
        raise K8sConfigError(f"{where}.active_deadline_seconds must be a positive integer")
    settings.timeout_seconds = min(settings.timeout_seconds or value, value)


def apply_k8s(task: Any, settings: K8sSettings) -> None:
    """Set ``settings`` on a KFP task (container spec and kfp-kubernetes platform config)."""
    from kfp import kubernetes

    setters = {
        ("requests", "cpu"): task.set_cpu_request,
        ("requests", "memory"): task.set_memory_request,
        ("limits", "cpu"): task.set_cpu_limit,
        ("limits", "memory"): task.set_memory_limit,
    }
    for section in ("requests", "limits"):
        for name, amount in getattr(settings, section).items():
            setters[(section, name)](amount)
    if settings.accelerator:
        name, count = settings.accelerator
        task.set_accelerator_type(name).set_accelerator_limit(count)
    for name, value in sorted(settings.env.items()):
        task.set_env_variable(name, value)
    for secret, key, env in settings.secret_env:
        use_secret_as_env(task, secret, {key: env})
    for env, field_path in settings.field_env:
        kubernetes.use_field_path_as_env(task, env, field_path)
    if settings.image_pull_policy:
        kubernetes.set_image_pull_policy(task, settings.image_pull_policy)
    for key, value in sorted(settings.node_selector.items()):
        kubernetes.add_node_selector(task, key, value)
    for toleration in settings.tolerations:
        kubernetes.add_toleration(task, **toleration)
    if settings.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, settings.image_pull_secrets)
    if settings.timeout_seconds:
        kubernetes.set_timeout(task, settings.timeout_seconds)
    for key, value in sorted(settings.pod_labels.items()):
        kubernetes.add_pod_label(task, key, value)
    for key, value in sorted(settings.pod_annotations.items()):
        kubernetes.add_pod_annotation(task, key, value)


def use_secret_as_env(task: Any, secret: str, key_to_env: dict[str, str]) -> None:
    """kfp-kubernetes ``use_secret_as_env`` without the ``optional`` field.

    ``SecretAsEnv.optional`` exists only from KFP 2.15 (kubernetes_executor_config.proto). At
    2.14 the API server's compiler reads each task's Kubernetes config with a strict
    ``protojson.Unmarshal`` (backend/src/v2/compiler/argocompiler/container.go:285 at 2.14.0),
    which rejects an unknown field: creating the run would fail ("failed to unmarshal
    kubernetes config"). So the field is left out, and only keys that must exist are mapped.
    """
    from kfp import kubernetes

    kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=key_to_env)
    for entry in task.platform_config["kubernetes"]["secretAsEnv"]:
        entry.pop("optional", None)
