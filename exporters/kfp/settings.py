"""Per-task settings read off the graph: caching, retries, Kubernetes, fan-out limits, gates.

Each reads an op tag, an asset's metadata or a policy and returns what the KFP task gets, or
raises :class:`UnsupportedConstructError` where KFP cannot do what Dagster would.
"""

from __future__ import annotations

from typing import Any

from dagster import AssetsDefinition, Backoff, RetryPolicy

from exporters.kfp.errors import UnsupportedConstructError
from exporters.kfp.k8s import K8sConfigError, K8sSettings, k8s_settings, read_k8s_config
from exporters.kfp.ops import PARALLELISM_KEY, OpNode

RUN_IF_KEY = "kfp/run_if"
METRICS_KEY = "kfp/metrics"
CACHE_KEY = "kfp/cache"


def cached_version(version: str | None, tags: Any) -> str | None:
    """The code version that makes a task cacheable, None under ``kfp/cache: "false"``."""
    return None if str(dict(tags).get(CACHE_KEY, "")).lower() == "false" else version


def parallelism(
    fan_out: OpNode, members: list[OpNode], metadata: dict[str, Any], asset: str
) -> int:
    """``kfp/parallelism`` of a fan-out: an op tag of its ops, else the asset's metadata."""
    found: dict[str, int] = {}
    for node in [fan_out, *members]:
        if PARALLELISM_KEY in node.tags:
            found[node.name] = _positive(node.tags[PARALLELISM_KEY], asset, f"op {node.name!r}")
    values = set(found.values())
    if len(values) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
        raise UnsupportedConstructError(
            asset,
            f"conflicting '{PARALLELISM_KEY}' tags in the fan-out of {fan_out.name!r} ({listed})",
            "Set one value.",
        )
    if values:
        return values.pop()
    if PARALLELISM_KEY in metadata:
        return _positive(metadata_text(metadata[PARALLELISM_KEY]), asset, "metadata")
    return 0


def _positive(value: Any, asset: str, where: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise UnsupportedConstructError(
            asset, f"{where}: '{PARALLELISM_KEY}: {value}'", "Expected a positive integer."
        )
    return number


def op_hints(assets_def: AssetsDefinition) -> dict[str, Any]:
    """``kfp/run_if`` and ``kfp/metrics`` given as tags of the asset's op(s), first found."""
    found: dict[str, Any] = {}
    for op_def in assets_def.node_def.iterate_op_defs():
        for key in (RUN_IF_KEY, METRICS_KEY):
            if key in op_def.tags:
                found.setdefault(key, op_def.tags[key])
    return found


def metadata_text(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", getattr(value, "text", value)))


def run_if(
    metadata: dict[str, Any], assets_def: AssetsDefinition, name: str, parents: list[str]
) -> tuple[str, str] | None:
    text = metadata_text(metadata.get(RUN_IF_KEY))
    optional = any(not o.is_required for o in assets_def.node_def.output_defs)
    if not text:
        if optional:
            raise UnsupportedConstructError(
                name,
                "output_required=False without a 'kfp/run_if' condition",
                "Say which upstream boolean decides, e.g. metadata {'kfp/run_if': 'decision.ok'}.",
            )
        return None
    asset, _, field_name = text.rpartition(".")
    if asset not in parents or not field_name:
        raise UnsupportedConstructError(
            name, f"'kfp/run_if: {text}'", "Expected '<upstream asset>.<boolean field>'."
        )
    return asset, field_name


def retry(policy: RetryPolicy | None, name: str, where: str = "") -> dict[str, Any] | None:
    """Dagster's RetryPolicy as KFP's retry policy, or an error where they differ.

    KFP's backend turns the policy into an Argo retryStrategy of whole seconds (it reads
    ``backoffDuration.seconds``: backend/src/v2/compiler/argocompiler/container.go at 2.14.0)
    with delay * factor ** n; Dagster's exponential backoff is delay * (2 ** n - 1).
    """
    if policy is None:
        return None
    if policy.jitter is not None:
        raise UnsupportedConstructError(
            name, f"{where}RetryPolicy jitter={policy.jitter.value}", "KFP retries have no jitter."
        )
    delay = policy.delay or 0
    if delay != int(delay):
        raise UnsupportedConstructError(
            name,
            f"{where}RetryPolicy delay={delay} (not whole seconds)",
            "KFP's backend keeps whole seconds of a retry delay: use an integer delay.",
        )
    if policy.backoff is Backoff.LINEAR and policy.max_retries > 1:
        raise UnsupportedConstructError(
            name,
            f"{where}RetryPolicy backoff=LINEAR",
            "KFP backs off by a constant factor: use Backoff.EXPONENTIAL or no backoff.",
        )
    factor = 2.0 if policy.backoff is Backoff.EXPONENTIAL else None
    return {
        "num_retries": policy.max_retries,
        "backoff_duration": f"{int(delay)}s",
        "backoff_factor": factor,
    }


def k8s(tags: dict[str, Any], metadata: dict[str, Any], name: str, where: str = "") -> K8sSettings:
    """``dagster-k8s/config`` (op tag, else the asset's metadata) as kfp-kubernetes settings."""
    config = read_k8s_config(dict(tags), metadata)
    try:
        return k8s_settings(config)
    except (K8sConfigError, KeyError, TypeError, ValueError) as error:
        raise UnsupportedConstructError(name, f"{where}dagster-k8s/config: {error}") from error
