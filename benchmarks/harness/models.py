"""The run config a benchmark builds, and what a run chose: the model, compared across runs.

A model is compared by a summary (type, hyperparameters, metrics, windows) that survives JSON,
so a child process can hand it back and two runners' models can be told equal or not.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# The deploy gate opened: a benchmark measures the whole graph, deployment included.
DEPLOY_ALLOWED = {"accuracy_threshold": 0.0, "challenge_production": False}
PARITY_TOLERANCE = 1e-9


def reference_candidates() -> list[str]:
    """The reference pipeline's seven configurations, by their preset name."""
    return ["reference"]


def ticker_names(count: int) -> list[str]:
    """``count`` synthetic ticker symbols, T0000, T0001, ..."""
    return [f"T{i:04d}" for i in range(count)]


def run_config(tickers: int, days: int, candidates: list[str] | None = None) -> dict[str, Any]:
    """Default config except the data's size, the open deploy gate and (optionally) candidates."""
    from stock_assets.defs.config import run_config as asset_run_config

    config: dict[str, dict[str, Any]] = {
        "stock_data": {"tickers": ticker_names(tickers), "days": days},
        "deploy_decision": dict(DEPLOY_ALLOWED),
    }
    if candidates is not None:
        config["model"] = {"candidates": candidates}
    return asset_run_config(config)


def pipeline_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """Every ``config`` leaf of a run config, as KFP pipeline arguments (field name -> value)."""
    arguments: dict[str, Any] = {}

    def walk(node: dict[str, Any]) -> None:
        for key, value in node.items():
            if key == "config":
                clash = set(arguments) & set(value)
                if clash:
                    raise ValueError(f"config fields {sorted(clash)} appear in two steps")
                arguments.update(value)
            elif isinstance(value, dict):
                walk(value)

    walk(config)
    return arguments


def model_summary(trained: Any) -> dict[str, Any]:
    """What a benchmark compares of a ``TrainedModel``: type, hyperparameters, test figures."""
    return {
        "model_type": trained.model_type,
        "hyperparameters": dict(trained.hyperparameters),
        "metrics": dict(trained.metrics),
        "train_window": str(trained.train_window),
        "test_window": str(trained.test_window),
    }


def stored_model(data: Path) -> dict[str, Any] | None:
    """The ``model`` value the IO manager stored under data directory ``data``."""
    from stock_assets.defs.io_manager import latest_path
    from stock_assets.defs.storage import read_value

    path = latest_path(data, "model")
    return model_summary(read_value(path)) if path.is_file() else None


def kfp_model_artifact(run_dir: Path) -> Any:
    """The ``TrainedModel`` a kfp.local run stored: the ``model`` task's output artifact.

    ``<run>/model/model`` while ``model`` is one task; otherwise the one task output that reads
    back as a TrainedModel (e.g. the last op's of a graph-backed ``model``).
    """
    from stock_assets.core.values import TrainedModel
    from stock_assets.defs.storage import read_value

    preferred = run_dir / "model" / "model"
    for path in [preferred, *sorted(p for p in run_dir.glob("*/*") if p != preferred)]:
        if not path.is_file():
            continue
        with path.open("rb") as handle:
            if handle.read(1) != b"{":  # typed JSON values only; Parquet tables are skipped
                continue
        try:
            value = read_value(path)
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if isinstance(value, TrainedModel):
            return value
    raise FileNotFoundError(f"no TrainedModel among the outputs of kfp.local run {run_dir.name}")


def compare_models(kfp: dict[str, Any], dagster: dict[str, Any]) -> list[str]:
    """What differs between two model summaries (metrics within PARITY_TOLERANCE)."""
    differences = []
    for key in ("model_type", "hyperparameters", "train_window", "test_window"):
        if kfp[key] != dagster[key]:
            differences.append(f"{key}: kfp {kfp[key]!r} != dagster {dagster[key]!r}")
    for name in sorted(set(kfp["metrics"]) | set(dagster["metrics"])):
        a, b = kfp["metrics"].get(name), dagster["metrics"].get(name)
        if a is None or b is None or not math.isclose(a, b, rel_tol=0, abs_tol=PARITY_TOLERANCE):
            differences.append(f"metrics[{name!r}]: kfp {a!r} != dagster {b!r}")
    return differences


def accuracy_margin(model: dict[str, Any] | None, tickers: int) -> float:
    """Half-width of a 95 % interval of a test accuracy near 0.5 on the model's test rows.

    Synthetic tickers have a bar on every business day: the test rows are the tickers times
    the business days of the test window. On a random walk no model is much better than a coin,
    so two sets' accuracies closer than this are equal within sampling noise.
    """
    import numpy as np

    first, _, last = (model or {}).get("test_window", "").partition("..")
    if not first or not last:
        return float("nan")
    days = int(np.busday_count(first, np.datetime64(last) + np.timedelta64(1, "D")))
    return 1.96 * math.sqrt(0.25 / max(days * tickers, 1))


def candidate_label(model: dict[str, Any] | None) -> str:
    if not model:
        return "-"
    # Sorted: the stored JSON sorts its keys, the in-memory value keeps the config's order.
    params = ", ".join(f"{k}={v}" for k, v in sorted(model["hyperparameters"].items()))
    return f"{model['model_type']}: {params}" if params else model["model_type"]


def fmt_acc(model: dict[str, Any] | None) -> str:
    return "-" if not model else f"{model['metrics']['accuracy']:.4f}"
