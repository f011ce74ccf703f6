"""The ``features`` step inside Dagster, next to the pure function and a polars implementation.

:func:`measure_features_step` materialises ``stock_data`` for ``tickers`` synthetic tickers x
``days`` business days into a temporary data directory, Dagster instance and MLflow (SQLite)
store, then, ``repeats`` times, times:

* the ``features`` step in a real Dagster run (``materialize``): from its STEP_START to its
  STEP_SUCCESS event (Dagster's timestamps), and the wall time of the whole run;
* each asset check's step (the checks of ``stock_data`` and of ``features``, in their own runs);
* the pure :func:`stock_assets.core.features.compute_features` on the same bars;
* the polars implementation (:mod:`benchmarks.columnar_features`), compute only and with its
  own Parquet round trip (read the bars, compute, write the table: what the step does).

Each figure is the best of the repeats, in seconds. Run:
``.venv/bin/python -m benchmarks.features_step --tickers 500 --days 2520``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
from dagster import AssetSelection, DagsterEventType, DagsterInstance, materialize

from benchmarks.columnar_features import columnar_features
from stock_assets.core.features import compute_features
from stock_assets.definitions import defs
from stock_assets.defs.io_manager import latest_path
from stock_assets.defs.storage import read_value


@contextlib.contextmanager
def _isolated_store() -> Iterator[Path]:
    """A temporary data dir and MLflow SQLite store, through the environment; restored after."""
    keys = ("STOCK_ASSETS_DATA_DIR", "MLFLOW_TRACKING_URI")
    saved = {key: os.environ.get(key) for key in keys}
    previous_uri = mlflow.get_tracking_uri()
    with tempfile.TemporaryDirectory(prefix="features-step-") as root:
        data = Path(root) / "data"
        uri = f"sqlite:///{Path(root) / 'mlflow.db'}"
        os.environ.update({"STOCK_ASSETS_DATA_DIR": str(data), "MLFLOW_TRACKING_URI": uri})
        mlflow.set_tracking_uri(uri)
        try:
            yield data
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            mlflow.set_tracking_uri(previous_uri)


def _run(
    instance: DagsterInstance, selection: AssetSelection, run_config: dict[str, Any] | None = None
) -> tuple[float, dict[str, float], float]:
    """Materialise ``selection``: the run's wall time, each step's STEP_START->SUCCESS, and
    the CPU time this process spent on the run."""
    cpu = time.process_time()
    start = time.perf_counter()
    result = materialize(
        [*defs.assets, *defs.asset_checks],
        resources=defs.resources,
        run_config=run_config or {},
        selection=selection,
        instance=instance,
        raise_on_error=False,
    )
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if not result.success:
        raise RuntimeError(f"run {result.run_id} failed")
    started: dict[str, float] = {}
    steps: dict[str, float] = {}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            started[event.step_key] = entry.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            steps[event.step_key] = entry.timestamp - started[event.step_key]
    return wall, steps, cpu


def _best(function: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _polars_round_trip(source: Path, target: Path) -> None:
    columnar_features(pl.read_parquet(source)).write_parquet(target)


def measure_features_step(
    tickers: int = 500, days: int = 2520, repeats: int = 3, data_repeats: int = 1
) -> dict[str, float]:
    """Seconds (best of ``repeats``) of the ``features`` step in Dagster and its yardsticks.

    Returns a flat dict: ``rows`` (of the bars), ``stock_data_step_s`` and
    ``stock_data_wall_s`` (best of ``data_repeats`` runs; the first also creates the MLflow
    store), ``features_step_s`` (STEP_START to STEP_SUCCESS),
    ``features_wall_s`` (the whole ``materialize`` call), ``features_cpu_s`` (this process's
    CPU time in that call: less sensitive to other jobs), ``compute_features_s`` (the pure
    function), ``polars_s`` (polars, compute only), ``polars_io_s`` (polars reading the bars'
    Parquet, computing and writing Parquet), ``step_vs_polars_io`` and ``step_vs_polars``
    (ratios), ``checks_s`` (sum of the check steps), ``check.<step key>_s`` for each check
    step, and ``load_average`` (the machine's 1-minute load when done).
    Runs in a temporary data dir, Dagster instance and MLflow store, all removed afterwards.
    """
    names = [f"T{i:03d}" for i in range(tickers)]
    config = {"ops": {"stock_data": {"config": {"tickers": names, "days": days}}}}
    figures: dict[str, float] = {}
    data_only = AssetSelection.assets("stock_data").without_checks()
    features_only = AssetSelection.assets("features").without_checks()
    checks = AssetSelection.checks_for_assets("stock_data", "features")
    with _isolated_store() as data, DagsterInstance.ephemeral() as instance:
        data_steps, data_walls = [], []
        for _ in range(data_repeats):
            wall, steps, _ = _run(instance, data_only, config)
            data_steps.append(steps["stock_data"])
            data_walls.append(wall)
        figures.update(stock_data_step_s=min(data_steps), stock_data_wall_s=min(data_walls))
        bars_file = latest_path(data, "stock_data")
        bars = read_value(bars_file)
        figures["rows"] = len(bars)
        step_times, wall_times, cpu_times, check_times = [], [], [], {}
        for _ in range(repeats):
            wall, steps, cpu = _run(instance, features_only)
            step_times.append(steps["features"])
            wall_times.append(wall)
            cpu_times.append(cpu)
            _, steps, _ = _run(instance, checks)
            for key, seconds in steps.items():
                check_times[key] = min(seconds, check_times.get(key, seconds))
        figures.update(
            features_step_s=min(step_times),
            features_wall_s=min(wall_times),
            features_cpu_s=min(cpu_times),
        )
        figures["compute_features_s"] = _best(lambda: compute_features(bars), repeats)
        polars_bars = pl.from_pandas(bars)
        figures["polars_s"] = _best(lambda: columnar_features(polars_bars), repeats)
        out = Path(data) / "polars_features.parquet"
        figures["polars_io_s"] = _best(lambda: _polars_round_trip(bars_file, out), repeats)
    figures["step_vs_polars_io"] = figures["features_step_s"] / figures["polars_io_s"]
    figures["step_vs_polars"] = figures["features_step_s"] / figures["polars_s"]
    figures["checks_s"] = sum(check_times.values())
    figures.update({f"check.{key}_s": seconds for key, seconds in sorted(check_times.items())})
    figures["load_average"] = os.getloadavg()[0]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-repeats", type=int, default=1, help="runs of stock_data")
    args = parser.parse_args()
    figures = measure_features_step(args.tickers, args.days, args.repeats, args.data_repeats)
    width = max(map(len, figures))
    for name, value in figures.items():
        shown = f"{value:,.0f}" if name == "rows" else f"{value:.3f}"
        print(f"{name:<{width}}  {shown}")


if __name__ == "__main__":
    main()
