"""Config defaults cannot rewrite the exported pipeline, or crash the exporter.

Each case of :mod:`tests.graphs.hostile` is exported with the real CLI; the YAML is read back with
``yaml.safe_load`` and must equal the PipelineSpec the compiler built in memory (no injected
``defaultPipelineRoot``, every default as the Config has it). A default the pipeline cannot
carry is refused with one line naming the field, exit status 2 and no file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format

from exporters.kfp.compile import ExportOptions, build_pipeline
from exporters.kfp.graph import read_graph
from exporters.kfp.runtime import read_value
from tests.graphs import hostile
from tests.kfp_helpers import export, run_yaml

MODULE = "tests.graphs.hostile"


def _export(path: Path, case: str) -> Any:
    return export(path, "--module", MODULE, HOSTILE_CASE=case, MLFLOW_TRACKING_URI="")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _compiled(case: str) -> list[dict[str, Any]]:
    """The documents the compiler builds in memory for ``case``: what the file must hold."""
    graph = read_graph(hostile.definitions(case), MODULE, [])
    pipeline = build_pipeline(graph, ExportOptions(image="x:1"))
    documents = [json_format.MessageToDict(pipeline.pipeline_spec)]
    if pipeline.platform_spec.platforms:
        documents.append(json_format.MessageToDict(pipeline.platform_spec))
    return documents


def _image_free(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``documents`` without the image (the CLI's default comes from pyproject.toml)."""
    for executor in documents[0]["deploymentSpec"]["executors"].values():
        executor["container"].pop("image")
    return documents


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(hostile.ESCAPED))
def test_a_default_is_escaped_and_reads_back_unchanged(case: str, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    done = _export(path, case)
    assert done.returncode == 0, done.stderr
    written = _documents(path)
    assert "defaultPipelineRoot" not in written[0]
    assert _image_free(written) == _image_free(_compiled(case))
    root = written[0]["root"]["inputDefinitions"]["parameters"]
    assert root == {
        "value": {
            "defaultValue": hostile.ESCAPED[case],
            "isOptional": True,
            "parameterType": "STRING",
        }
    }
    # The comment header is comments only, and shows the default on one line.
    header = path.read_text().split("\ncomponents:")[0].split("\n")
    assert all(line.startswith("#") for line in header), header
    assert f"#    value: str [Default: {hostile.ESCAPED[case]!r}]" in header


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("nul", "config field 'value' default 'a\\x00b' (a NUL character)"),
        ("surrogate", "config field 'value' default 'a\\ud800b' (a lone surrogate)"),
        ("inf", "config field 'value' default inf (not a finite number)"),
        ("nan", "config field 'value' default nan (not a finite number)"),
        ("list_inf", "config field 'value' default [1.0, -inf] (not a finite number)"),
        ("list_nul", "config field 'value' default ['ok', 'x\\x00'] (a NUL character)"),
        ("big_int", "config field 'value' default 9007199254740993 (an integer beyond 2**53)"),
    ],
)
def test_a_default_the_pipeline_cannot_carry_is_refused(
    case: str, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "pipeline.yaml"
    done = _export(path, case)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: asset 'stamp': "), line
    assert expected in line, line
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_scheduled_field_named_json_gets_its_value(tmp_path: Path) -> None:
    """The date resolver's own modules do not shadow a parameter named like them."""
    path = tmp_path / "pipeline.yaml"
    done = _export(path, "json")
    assert done.returncode == 0, done.stderr
    spec = _documents(path)[0]
    assert "defaultPipelineRoot" not in spec
    assert "comp-resolve-scheduled-dates" in spec["components"]
    days = {str(dt.datetime.now(dt.UTC).date())}
    succeeded, run_dir = run_yaml(path, tmp_path / "root", json="[[ScheduledTime.2006-01-02]]")
    days.add(str(dt.datetime.now(dt.UTC).date()))
    assert succeeded
    value = read_value(run_dir / "stamp" / "stamp")
    assert value["json"] in days
    assert value["note"] == hostile.INJECTION


@pytest.mark.slow
def test_refused_values_are_refused_in_params_too(tmp_path: Path) -> None:
    """``--param`` is typed like its parameter: a non-finite number is refused the same way."""
    path = tmp_path / "pipeline.yaml"
    done = export(
        path,
        "--module",
        "tests.graphs.fan_in",
        "--param",
        "scale=inf",
        MLFLOW_TRACKING_URI="",
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == "error: --param: scale='inf': not a finite number", done.stderr
    assert not path.exists()


@pytest.mark.slow
def test_a_schedule_value_the_pipeline_cannot_carry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    done = export(path, "--module", MODULE, "--schedule", "weekly_nul", MLFLOW_TRACKING_URI="")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "\x00" not in done.stdout + done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error")]
    assert line == (
        "error: --schedule: schedule 'weekly_nul' sets ops.stamp.config.note to 'x\\x00' "
        "(a NUL character). KFP's backend database and the pod's command line cannot carry it."
    ), line
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
