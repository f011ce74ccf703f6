"""An asset and an op of a graph-backed asset that fail on their first attempt, each with a
RetryPolicy: the attempts are counted in ``$FLAKY_ATTEMPTS_DIR/<name>.attempts``, one line each.

Run by Dagster, each succeeds on its second attempt. Inside a KFP task it must run once: KFP
retries the task itself (the exporter's ``set_retry``), so Dagster must not retry inside it.
"""

import os
from pathlib import Path

from dagster import Definitions, RetryPolicy, asset, graph_asset, op

ATTEMPTS_DIR = "FLAKY_ATTEMPTS_DIR"


def attempts(name: str) -> int:
    """How many times ``name`` has started so far."""
    path = Path(os.environ[ATTEMPTS_DIR]) / f"{name}.attempts"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _start(name: str) -> None:
    """Count one more attempt; fail the first one."""
    with (Path(os.environ[ATTEMPTS_DIR]) / f"{name}.attempts").open("a") as log:
        log.write("attempt\n")
    if attempts(name) == 1:
        raise RuntimeError(f"{name}: the first attempt fails")


@asset(retry_policy=RetryPolicy(max_retries=2), description="Fails once, then 1.")
def flaky_asset() -> int:
    _start("flaky_asset")
    return 1


@op(retry_policy=RetryPolicy(max_retries=2), description="Fails once, then 2.")
def flaky_op() -> int:
    _start("flaky_op")
    return 2


@op(description="Twice its input.")
def doubled(value: int) -> int:
    return 2 * value


@graph_asset(description="A graph whose first op fails once.")
def flaky_graph() -> int:
    return doubled(flaky_op())


defs = Definitions(assets=[flaky_asset, flaky_graph])
