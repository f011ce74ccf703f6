"""The files under the data directory are a cache.

The graph runs for real on a SQLite MLflow store; each test edits the stored files on disk as an
attacker would, re-runs the deploy step(s) and reads the registry's ``production`` alias back.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetSelection, ExecuteInProcessResult

from stock_assets.definitions import defs
from stock_assets.defs.io_manager import latest_path
from stock_assets.defs.storage import read_value, write_value
from tests.conftest import failure_text, production_version, run_graph
from tests.reliability.helpers import FAST_MODEL

#: A gate the real model (about 0.5 on random-walk prices) cannot pass; an edited one would.
STRICT = {"deploy_decision": {"accuracy_threshold": 0.9, "challenge_production": False}}
DEPLOY_STEPS = AssetSelection.assets("deploy_decision").downstream()


@pytest.fixture(scope="module")
def challenger(deployed: tuple[ExecuteInProcessResult, Path]) -> Iterator[Path]:
    """Production at the deployed version; a newer model, rejected by ``STRICT``, is latest."""
    _, data = deployed
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STOCK_ASSETS_DATA_DIR", str(data))
        before = production_version()
        result = run_graph(
            {"model": FAST_MODEL, **STRICT}, AssetSelection.assets("model").downstream()
        )
        assert result.success, failure_text(result)
        assert production_version() == before is not None
        assert read_value(latest_path(data, "model")).metrics["accuracy"] < 0.9
        yield data


@pytest.fixture
def data(challenger: Path, tmp_path: Path) -> Iterator[Path]:
    """The challenger's data directory, put back as it was after the test's edits."""
    assets = challenger / "assets"
    shutil.copytree(assets, tmp_path / "saved", symlinks=True)
    yield challenger
    shutil.rmtree(assets)
    shutil.copytree(tmp_path / "saved", assets, symlinks=True)


def model_file(data: Path) -> Path:
    return latest_path(data, "model")


def edited_model(data: Path, **changes: object) -> dict:
    stored = json.loads(model_file(data).read_text())
    for name, value in changes.items():
        if name.startswith("metrics."):
            stored["metrics"][name.split(".", 1)[1]] = value
        else:
            stored[name] = value
    return stored


def refused(result: ExecuteInProcessResult, *fragments: str) -> str:
    """The one-line message the failed step gave, which names each of ``fragments``."""
    assert not result.success
    failures = result.get_step_failure_events()
    assert failures, failure_text(result)
    message = failures[0].step_failure_data.error.message.strip()
    assert "\n" not in message, message
    assert "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.mark.slow
def test_an_edited_accuracy_does_not_promote(data: Path) -> None:
    before = production_version()
    path = model_file(data)
    path.write_text(json.dumps(edited_model(data, **{"metrics.accuracy": 0.99})))
    result = run_graph(STRICT, DEPLOY_STEPS)
    refused(result, str(path), "metrics.accuracy")
    assert production_version() == before


@pytest.mark.slow
def test_infinity_in_a_stored_value_is_refused(data: Path) -> None:
    before = production_version()
    path = model_file(data)
    text = json.dumps(edited_model(data, **{"metrics.accuracy": 0.5}), indent=2)
    path.write_text(text.replace('"accuracy": 0.5', '"accuracy": Infinity'))
    result = run_graph(STRICT, DEPLOY_STEPS)
    refused(result, str(path), "metrics.accuracy", "Infinity")
    assert production_version() == before


@pytest.mark.slow
def test_a_symlink_out_of_the_data_directory_is_not_followed(data: Path, tmp_path: Path) -> None:
    before = production_version()
    outside = tmp_path / "outside_model"
    outside.write_text(json.dumps(edited_model(data, **{"metrics.accuracy": 0.99})))
    path = model_file(data)
    path.unlink()
    path.symlink_to(outside)
    result = run_graph(STRICT, DEPLOY_STEPS)
    refused(result, str(path), "outside the data directory")
    assert production_version() == before


@pytest.mark.slow
@pytest.mark.parametrize("target", ["crafted", "/etc/passwd"])
def test_a_pointer_naming_a_file_outside_is_refused(
    data: Path, tmp_path: Path, target: str
) -> None:
    before = production_version()
    outside = tmp_path / "crafted_model"
    outside.write_text(json.dumps(edited_model(data, **{"metrics.accuracy": 0.99})))
    pointer = data / "assets" / "latest" / "model.json"
    entry = json.loads(pointer.read_text())
    entry["path"] = str(outside) if target == "crafted" else target
    pointer.write_text(json.dumps(entry))
    result = run_graph(STRICT, DEPLOY_STEPS)
    refused(result, str(pointer), "'path'")
    assert production_version() == before


@pytest.mark.slow
def test_an_edited_decision_does_not_promote(data: Path) -> None:
    """The stored decision rejected the challenger; flipping it to deploy moves nothing."""
    before = production_version()
    path = latest_path(data, "deploy_decision")
    stored = json.loads(path.read_text())
    assert stored["deploy"] is False and stored["registered_version"] != before
    stored.update(deploy=True, passes_threshold=True, accuracy=0.99, accuracy_threshold=0.0)
    path.write_text(json.dumps(stored))
    result = run_graph(selection=AssetSelection.assets("deployed_model"))
    refused(result, str(path), "'deploy'")
    assert production_version() == before


@pytest.mark.slow
def test_edited_features_do_not_change_the_champions_score(data: Path) -> None:
    """Production is scored on the stored features' test rows: flipped labels are refused."""
    before = production_version()
    model = read_value(model_file(data))
    path = latest_path(data, "features")
    features = read_value(path)
    rows = features["Target"].notna() & features["Date"].between(
        pd.Timestamp(model.test_window.first), pd.Timestamp(model.test_window.last)
    )
    features.loc[rows, "Target"] = 1 - features.loc[rows, "Target"]
    write_value(path, features)
    result = run_graph(
        {"deploy_decision": {"accuracy_threshold": 0.0, "challenge_production": True}},
        DEPLOY_STEPS,
    )
    refused(result, str(path), "test window", "digest")
    assert production_version() == before


@pytest.mark.slow
def test_another_run_id_in_the_model_value_is_refused(data: Path) -> None:
    """A model value claiming the deployed model's run (good metrics) for the new version."""
    before = production_version()
    deployed_run = read_value(latest_path(data, "deployed_model"))
    assert deployed_run.version == before
    path = model_file(data)
    stored = edited_model(data, mlflow_run_id="0" * 32)
    path.write_text(json.dumps(stored))
    result = run_graph(STRICT, DEPLOY_STEPS)
    refused(result, str(path), "mlflow_run_id")
    assert production_version() == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ('{"run_id": "x", "path": "runs/x/model", "written_at": "yesterday"', ["not valid JSON"]),
        ("yesterday", ["'written_at'", "number"]),
        ("Infinity", ["'written_at'", "Infinity"]),
    ],
    ids=["not JSON", "string written_at", "infinite written_at"],
)
def test_a_damaged_pointer_is_named_with_its_field(
    data: Path, content: str, fragments: list[str]
) -> None:
    pointer = data / "assets" / "latest" / "model.json"
    if not content.startswith("{"):  # the pointer as written, with ``written_at`` replaced
        entry = json.loads(pointer.read_text())
        entry["written_at"] = "WHEN"
        spelt = "Infinity" if content == "Infinity" else json.dumps(content)
        content = json.dumps(entry).replace('"WHEN"', spelt, 1)
    pointer.write_text(content)
    result = run_graph(STRICT, DEPLOY_STEPS)
    message = refused(result, str(pointer), *fragments)
    assert "materialise it first" not in message


@pytest.mark.slow
def test_load_asset_value_reads_the_latest_committed_value(data: Path) -> None:
    """``Definitions.load_asset_value`` outside a run (as in a notebook)."""
    model = defs.load_asset_value("model")
    assert model == read_value(model_file(data))
    features = defs.load_asset_value("features")
    assert len(features) == len(read_value(latest_path(data, "features")))


@pytest.mark.slow
def test_the_untouched_values_still_deploy(data: Path) -> None:
    """The checks refuse edits, not honest values: threshold 0 promotes the challenger."""
    challenger_version = read_value(model_file(data)).registered_version
    result = run_graph(
        {"deploy_decision": {"accuracy_threshold": 0.0, "challenge_production": False}},
        DEPLOY_STEPS,
    )
    assert result.success, failure_text(result)
    assert production_version() == challenger_version
