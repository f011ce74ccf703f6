"""A foreign graph whose task carries every Kubernetes setting the exporter translates."""

from dagster import Definitions, asset

K8S_CONFIG = {
    "container_config": {
        "env": [
            {
                "name": "API_TOKEN",
                "value_from": {"secret_key_ref": {"name": "api-secret", "key": "token"}},
            }
        ]
    },
    "pod_spec_config": {
        "node_selector": {"pool": "training"},
        "tolerations": [
            {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}
        ],
        "active_deadline_seconds": 900,
    },
}


@asset(op_tags={"dagster-k8s/config": K8S_CONFIG}, description="One number.")
def pinned() -> int:
    return 1


defs = Definitions(assets=[pinned])
