"""Parity: the exported pipeline under kfp.local against Dagster on the same config.

The same run config, given to kfp.local as pipeline arguments, must choose the same candidate
with the same metrics (to 1e-9) as Dagster in one process: the export changes where the graph
runs, not what it computes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import runs
from benchmarks.harness.models import (
    candidate_label,
    compare_models,
    kfp_model_artifact,
    model_summary,
    pipeline_arguments,
)
from benchmarks.harness.report import fmt_s, verdict
from benchmarks.harness.sandbox import Sandbox


@dataclass
class Parity:
    tickers: int
    days: int
    ok: bool = False
    kfp_seconds: float = 0.0
    dagster_seconds: float = 0.0
    kfp_model: dict[str, Any] | None = None
    dagster_model: dict[str, Any] | None = None
    differences: tuple[str, ...] = ()
    error: str = ""


def parity(
    work: Path,
    config: dict[str, Any],
    size: tuple[int, int],
    job: str,
    dagster: runs.GraphRun | None = None,
) -> Parity:
    """Export, run under kfp.local with ``config`` as arguments, compare with Dagster's run of
    ``job`` (``dagster``, else one run here) on ``size`` (tickers, days)."""
    found = Parity(*size)
    sandbox = Sandbox(work / f"parity_kfp_{size[0]}")
    package = sandbox.root / "pipeline.yaml"
    exported = runs.export(sandbox, package)
    if not exported.ok:
        found.error = f"export failed: {exported.log}"
        return found
    kfp, run_dir = runs.kfp_local(sandbox, package, pipeline_arguments(config), "parity_kfp")
    found.kfp_seconds = kfp.wall_s
    if not kfp.ok or run_dir is None:
        found.error = kfp.error or "kfp.local made no run folder"
        return found
    found.kfp_model = model_summary(kfp_model_artifact(run_dir))
    if dagster is None or not dagster.ok:
        label = f"parity_dagster_{size[0]}"
        dagster = runs.in_process(Sandbox(work / label), config, label, job)
    found.dagster_seconds, found.dagster_model = dagster.wall_s, dagster.model
    if not dagster.ok or dagster.model is None:
        found.error = f"Dagster run failed:\n{dagster.error}"
        return found
    found.differences = tuple(compare_models(found.kfp_model, dagster.model))
    found.ok = not found.differences
    return found


def print_parity(found: Parity) -> None:
    print(
        f"  kfp.local run: {fmt_s(found.kfp_seconds)}; Dagster in-process: "
        f"{fmt_s(found.dagster_seconds)}"
    )
    for name, model in (("kfp.local", found.kfp_model), ("Dagster", found.dagster_model)):
        if model:
            print(
                f"  {name:<9}: {candidate_label(model)}; test window {model['test_window']}; "
                f"metrics {json.dumps(model['metrics'])}"
            )
    for difference in found.differences:
        print(f"  differs: {difference}")
    if found.error:
        print("  error:\n" + "\n".join("    " + x for x in found.error.splitlines()))
    print(f"  parity: {verdict(found.ok)}")
