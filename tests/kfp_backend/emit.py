"""Emit every pipeline.yaml the exporter tests build, into one folder, in one process.

``python -m tests.kfp_backend.emit DIR`` writes ``DIR/<name>.yaml`` for the stock pipeline and
each foreign graph, and prints ``{"name": "path" or "error: <line>"}`` as JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

#: name -> exporter options; the foreign graphs of tests/graphs (all but ``partitioned``, which
#: the exporter refuses) and the Kubernetes one here.
PIPELINES: dict[str, list[str]] = {
    "stock": ["--mlflow-tracking-uri", "http://mlflow.example:5000", "--mlflow-secret", "mlflow"],
    **{
        name: ["--module", f"tests.graphs.{name}"]
        for name in ("fan_in", "fan_out", "fan_out_chain", "flaky", "hostile", "typed")
    },
    "k8s": ["--module", "tests.kfp_backend.k8s_graph"],
}


def emit(folder: Path) -> dict[str, str]:
    """Export each pipeline with the exporter's own CLI entry point."""
    from exporters.kfp.__main__ import main

    os.environ["MLFLOW_TRACKING_URI"] = ""
    results = {}
    for name, options in PIPELINES.items():
        path = folder / f"{name}.yaml"
        errors = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
            try:
                code = main(["-o", str(path), *options])
            except SystemExit as stop:
                code = stop.code
        lines = errors.getvalue().strip().splitlines()
        results[name] = str(path) if code == 0 else f"error: {(lines or [str(code)])[-1]}"
    return results


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(emit(out)))
