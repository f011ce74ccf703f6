"""Time and peak memory of each step: the reference pipeline's pandas code vs the project's.

For every step, two implementations do the same work:

* ``reference``: the reference pipeline's KFP component code (generate_data,
  feature_engineering), plain pandas, called once per ticker in a Python loop and concatenated;
* ``project``: the project's functions (generate_gbm, compute_features), vectorised
  across tickers.

Both sides draw each ticker's prices from the same random stream, so their outputs are
compared as well (they must agree; the one intended difference is that the project's
Target is <NA> on each ticker's last row, where the reference pipeline writes 0).

Run: ``.venv/bin/python benchmarks/bench_pipeline.py [--quick]`` (``--quick``: reference scale
only, 1 ticker x 500 days). Peak memory is what tracemalloc sees (Python objects and numpy
buffers) during a separate, untimed run of the step, which also warms the step up.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: benchmarks/ too

from stock_assets.core.data import DEFAULT_TICKER, generate_gbm  # noqa: E402
from stock_assets.core.features import FEATURE_COLUMNS, TARGET_COLUMN, compute_features  # noqa: E402
from tests.support.reference import reference_feature_engineering, reference_generate_data  # noqa: E402

SEED = 42

# --------------------------------------------------------------------------------------
# The reference pipeline's code (Composant 1 and 2), minus the KFP/CSV plumbing, run per ticker.
# --------------------------------------------------------------------------------------


def ticker_seed(seed: int, ticker: str) -> int:
    """The per-ticker seed generate_gbm uses, so both sides draw the same prices.

    (np.random.seed(s) and np.random.RandomState(s) give the same stream.)
    """
    if ticker == DEFAULT_TICKER:
        return seed
    entropy = [seed, zlib.crc32(ticker.encode("utf-8"))]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


# --------------------------------------------------------------------------------------
# Steps: each side gets the scale and the outputs of its own previous steps.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    tickers: list[str]
    days: int

    @property
    def label(self) -> str:
        n = len(self.tickers)
        return f"{n} ticker{'s' if n > 1 else ''} x {self.days:,} days ({n * self.days:,} rows)"


StepFn = Callable[[Scale, dict[str, Any]], Any]


@dataclass(frozen=True)
class Step:
    name: str
    reference: StepFn
    project: StepFn
    check: Callable[[Any, Any], str]  # compares the two outputs; returns a short verdict


def reference_data(scale: Scale, _: dict[str, Any]) -> pd.DataFrame:
    frames = [
        reference_generate_data(scale.days, ticker_seed(SEED, t), t) for t in sorted(scale.tickers)
    ]
    return pd.concat(frames, ignore_index=True)


def project_data(scale: Scale, _: dict[str, Any]) -> pd.DataFrame:
    return generate_gbm(days=scale.days, seed=SEED, tickers=scale.tickers)


def check_data(reference: pd.DataFrame, project: pd.DataFrame) -> str:
    pd.testing.assert_frame_equal(project, reference, check_exact=True)
    return "identical"


def reference_features(_: Scale, inputs: dict[str, Any]) -> pd.DataFrame:
    bars = inputs["data"]
    frames = [
        reference_feature_engineering(group) for _, group in bars.groupby("Ticker", sort=True)
    ]
    return pd.concat(frames, ignore_index=True)


def project_features(_: Scale, inputs: dict[str, Any]) -> pd.DataFrame:
    return compute_features(inputs["data"])


def check_features(reference: pd.DataFrame, project: pd.DataFrame) -> str:
    assert len(reference) == len(project)
    for column in FEATURE_COLUMNS:
        np.testing.assert_array_equal(project[column].to_numpy(), reference[column].to_numpy())
    known = project[TARGET_COLUMN].notna().to_numpy()
    assert (project[TARGET_COLUMN].to_numpy()[known] == reference["Target"].to_numpy()[known]).all()
    return f"identical (Target <NA> on {int((~known).sum())} last rows)"


STEPS: list[Step] = [
    Step("data", reference_data, project_data, check_data),
    Step("features", reference_features, project_features, check_features),
    # Later steps (e.g. training) go here: Step(name, reference_fn, project_fn, check_fn).
]

# --------------------------------------------------------------------------------------
# Measuring and reporting
# --------------------------------------------------------------------------------------


@dataclass
class Measure:
    seconds: float
    peak_bytes: int


def measure(fn: StepFn, scale: Scale, inputs: dict[str, Any], repeat: int) -> tuple[Any, Measure]:
    """Peak memory from one traced run, then the best wall time of ``repeat`` untraced runs."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    output = fn(scale, inputs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn(scale, inputs)
        best = min(best, time.perf_counter() - start)
    return output, Measure(best, peak)


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def fmt_mem(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.1f} MiB"


def run_scale(scale: Scale, repeat: int) -> None:
    print(f"\n{scale.label}; best of {repeat} timed run(s)")
    header = (
        f"{'step':<10}{'ref. time':>12}{'project time':>14}{'speed-up':>10}"
        f"{'ref. peak':>13}{'project peak':>14}{'mem ratio':>11}  outputs"
    )
    print(header)
    print("-" * len(header))
    reference_out: dict[str, Any] = {}
    project_out: dict[str, Any] = {}
    totals = [Measure(0.0, 0), Measure(0.0, 0)]
    for step in STEPS:
        reference_out[step.name], s = measure(step.reference, scale, reference_out, repeat)
        project_out[step.name], p = measure(step.project, scale, project_out, repeat)
        verdict = step.check(reference_out[step.name], project_out[step.name])
        for total, m in zip(totals, (s, p), strict=True):
            total.seconds += m.seconds
            total.peak_bytes = max(total.peak_bytes, m.peak_bytes)
        print(row(step.name, s, p, verdict))
    print("-" * len(header))
    print(row("total", *totals, "(peak = largest step peak)"))


def row(name: str, reference: Measure, project: Measure, note: str) -> str:
    speed_up = reference.seconds / project.seconds if project.seconds else float("inf")
    mem_ratio = reference.peak_bytes / project.peak_bytes if project.peak_bytes else float("inf")
    return (
        f"{name:<10}{fmt_time(reference.seconds):>12}{fmt_time(project.seconds):>14}"
        f"{speed_up:>9.1f}x{fmt_mem(reference.peak_bytes):>13}{fmt_mem(project.peak_bytes):>14}"
        f"{mem_ratio:>10.2f}x  {note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reference scale only (1 x 500)")
    args = parser.parse_args()

    print(f"pandas {pd.__version__}, numpy {np.__version__}")
    print(
        "reference = the reference pipeline's pandas code per ticker; project = stock_assets.core"
    )
    print("speed-up = reference time / project time; mem ratio = reference peak / project peak")
    run_scale(Scale([DEFAULT_TICKER], 500), repeat=5)
    if not args.quick:
        run_scale(Scale([f"T{i:03d}" for i in range(500)], 2_520), repeat=2)


if __name__ == "__main__":
    main()
