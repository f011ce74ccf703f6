"""How a run's steps execute locally: Dagster's multiprocess executor, workers forked warm.

By default every step of a multiprocess run starts a fresh Python that imports Dagster, MLflow,
scikit-learn and the project again, seconds per step; the graph has about fifteen steps (one
per candidate among them). Here the default start method is ``forkserver`` with the project
preloaded, so each step's process is forked from one that has already imported it. A run config
can still choose anything Dagster's default executor takes (``in_process``, another
``start_method``, ``max_concurrent``: how many steps run at once, default the CPU count).
"""

from __future__ import annotations

from typing import Any

from dagster import Definitions, definitions, multi_or_in_process_executor

#: What the forkserver imports once, before forking any step's process: the project, and the
#: libraries its steps import on first use (scikit-learn alone takes about a second per process).
PRELOADED = [
    "stock_assets.definitions",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "skops.io",
]


def with_warm_workers(config: dict[str, Any]) -> dict[str, Any]:
    """The executor config, with a forkserver preloading the project unless one was chosen."""
    if "in_process" in (config or {}):
        return config
    multiprocess = dict((config or {}).get("multiprocess") or {})
    multiprocess.setdefault("start_method", {"forkserver": {"preload_modules": PRELOADED}})
    return {"multiprocess": multiprocess}


@definitions
def executor() -> Definitions:
    """Dagster's default executor with warm workers by default (same config schema)."""
    return Definitions(
        executor=multi_or_in_process_executor.configured(
            with_warm_workers,
            name="multi_or_in_process_warm",
            config_schema=multi_or_in_process_executor.config_schema,
        )
    )
