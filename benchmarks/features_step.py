"""The ``features`` step inside Dagster, next to the pure function and a polars implementation.

:func:`measure_features_step` materialises ``stock_data`` for ``tickers`` synthetic tickers x
``days`` business days into a temporary data directory, Dagster instance and MLflow (SQLite)
store, then, ``repeats`` times, times:

* the ``features`` step in a real Dagster run (``materialize``): from its STEP_START to its
  STEP_SUCCESS event (Dagster's timestamps), and the wall time of the whole run;
* the ``stock_data`` step and each check step, in a run of both tables and their checks;
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
from dagster import AssetSelection, DagsterInstance, materialize

from benchmarks.columnar_features import columnar_features
from benchmarks.harness.events import event_rows, step_times
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
    _, timed = step_times(event_rows(instance, result.run_id))
    steps = {s.key: s.seconds for s in timed if s.status == "SUCCESS" and s.seconds is not None}
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
    tickers: int = 500, days: int = 2520, repeats: int = 3
) -> dict[str, float]:
    """Seconds (best of ``repeats``) of the ``features`` step in Dagster and its yardsticks.

    ``stock_data`` is materialised once; then each repeat runs ``features`` alone, and the
    two tables with their checks in one run (as a nightly run does). Returns a flat dict:

    * ``rows``: rows of the bars;
    * ``features_step_s``: the ``features`` step alone, STEP_START to STEP_SUCCESS;
      ``features_wall_s``: that whole ``materialize`` call; ``features_cpu_s``: this process's
      CPU time in it (less sensitive to other jobs on the machine);
    * ``compute_features_s``: the pure function; ``polars_s``: the polars implementation,
      compute only; ``polars_io_s``: polars reading the bars' Parquet, computing, writing
      Parquet (what the step does); ``step_vs_polars_io``, ``step_vs_polars``: the ratios;
    * ``stock_data_step_s``: the ``stock_data`` step (best of the first run and the full runs);
    * ``checks_s``: the check steps of a full run together, ``check.<step key>_s`` each;
    * ``load_average``: the machine's 1-minute load average at the end.

    Runs in a temporary data dir, Dagster instance and MLflow store, all removed afterwards.
    """
    names = [f"T{i:03d}" for i in range(tickers)]
    config = {"ops": {"stock_data": {"config": {"tickers": names, "days": days}}}}
    data_only = AssetSelection.assets("stock_data").without_checks()
    features_only = AssetSelection.assets("features").without_checks()
    both_with_checks = AssetSelection.assets("stock_data", "features")  # checks included
    best: dict[str, float] = {}

    def keep_best(name: str, seconds: float) -> None:
        best[name] = min(seconds, best.get(name, seconds))

    with _isolated_store() as data, DagsterInstance.ephemeral() as instance:
        _, steps, _ = _run(instance, data_only, config)
        keep_best("stock_data_step_s", steps["stock_data"])
        bars_file = latest_path(data, "stock_data")
        bars = read_value(bars_file)
        for _ in range(repeats):
            wall, steps, cpu = _run(instance, features_only)
            keep_best("features_step_s", steps["features"])
            keep_best("features_wall_s", wall)
            keep_best("features_cpu_s", cpu)
            _, steps, _ = _run(instance, both_with_checks, config)
            keep_best("stock_data_step_s", steps.pop("stock_data"))
            steps.pop("features")
            keep_best("checks_s", sum(steps.values()))
            for key, seconds in steps.items():
                keep_best(f"check.{key}_s", seconds)
        keep_best("compute_features_s", _best(lambda: compute_features(bars), repeats))
        polars_bars = pl.from_pandas(bars)
        keep_best("polars_s", _best(lambda: columnar_features(polars_bars), repeats))
        out = Path(data) / "polars_features.parquet"
        keep_best("polars_io_s", _best(lambda: _polars_round_trip(bars_file, out), repeats))
    order = ["features_step_s", "features_wall_s", "features_cpu_s", "compute_features_s"]
    order += ["polars_s", "polars_io_s", "stock_data_step_s", "checks_s"]
    figures: dict[str, float] = {"rows": len(bars), **{name: best[name] for name in order}}
    figures["step_vs_polars_io"] = figures["features_step_s"] / figures["polars_io_s"]
    figures["step_vs_polars"] = figures["features_step_s"] / figures["polars_s"]
    figures.update({name: best[name] for name in sorted(best) if name.startswith("check.")})
    figures["load_average"] = os.getloadavg()[0]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--days", type=int, default=2520)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    figures = measure_features_step(args.tickers, args.days, args.repeats)
    width = max(map(len, figures))
    for name, value in figures.items():
        shown = f"{value:,.0f}" if name == "rows" else f"{value:.3f}"
        print(f"{name:<{width}}  {shown}")


if __name__ == "__main__":
    main()
