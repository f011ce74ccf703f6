"""A small graph of another shape, to prove the exporter is not tied to the stock graph.

Two roots fan in to ``combined``; one asset has a RetryPolicy and a dagster-k8s config (resources,
a GPU, env, node selector, toleration, pull secret, timeout, pod label), one
depends on another without reading it, and the configs cover int, float, str and bool fields,
one of them shared by two assets.
"""

import pandas as pd
from dagster import Backoff, Config, Definitions, RetryPolicy, asset


class LeftConfig(Config):
    rows: int = 4
    scale: float = 1.5
    label: str = "left"


class RightConfig(Config):
    rows: int = 3
    negate: bool = False


@asset(kinds={"pandas"}, description="The left-hand numbers.")
def left(config: LeftConfig) -> pd.DataFrame:
    return pd.DataFrame(
        {"value": [i * config.scale for i in range(config.rows)], "source": config.label}
    )


@asset(kinds={"pandas"}, code_version="2", description="The right-hand numbers.")
def right(config: RightConfig) -> pd.DataFrame:
    sign = -1 if config.negate else 1
    return pd.DataFrame({"value": [sign * 10.0 * i for i in range(config.rows)], "source": "right"})


@asset(
    kinds={"pandas"},
    retry_policy=RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL),
    op_tags={
        "dagster-k8s/config": {
            "container_config": {
                "resources": {
                    "requests": {"cpu": "250m", "memory": "256Mi"},
                    "limits": {"memory": "512Mi", "nvidia.com/gpu": 1},
                },
                "env": [
                    {"name": "LOG_LEVEL", "value": "debug"},
                    {
                        "name": "API_TOKEN",
                        "value_from": {"secret_key_ref": {"name": "api-keys", "key": "token"}},
                    },
                ],
            },
            "pod_spec_config": {
                "node_selector": {"pool": "batch"},
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
                ],
                "image_pull_secrets": [{"name": "registry-credentials"}],
                "active_deadline_seconds": 600,
            },
            "pod_template_spec_metadata": {"labels": {"team": "ml"}},
        }
    },
    description="Both sides stacked: the fan-in.",
)
def combined(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([left, right], ignore_index=True)


@asset(description="Summary of the combined numbers.")
def summary(combined: pd.DataFrame) -> dict:
    return {"rows": len(combined), "total": float(combined["value"].sum())}


@asset(deps=[summary], description="Runs after summary without reading it (an ordering edge).")
def notice() -> dict:
    return {"message": "summary is ready"}


defs = Definitions(assets=[left, right, combined, summary, notice])
