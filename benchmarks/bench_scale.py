"""The scale targets, measured in one invocation: the nightly retrain at N tickers x D days.

Every run is a fresh child process on its own sandbox (``benchmarks/harness``). The config is
the default one except ``stock_data`` (tickers ``T0000``.., days) and the deploy gate opened.

1. In-process: the ``retrain`` job by ``execute_in_process``, per size: wall time, steps from
   its event log, peak memory of the process tree.
2. CLI: ``dagster asset materialize`` (multiprocess executor), same config: wall time, steps,
   peak memory (summed PSS: the project the forkserver preloaded counts once). Ratio to 1.
3. Features step: ``benchmarks.features_step.measure_features_step`` at the largest size.
4. Parity: the exported pipeline under kfp.local against Dagster in-process, same config as
   pipeline arguments; same candidate, metrics equal to 1e-9.
5. Reference set (last, the slow one): the reference pipeline's seven candidates on the same rows
   and test window (``--reference-tickers``); its choice and accuracy next to the default set's.

Under Linux's autogroup scheduling a run competes with every other session as one unit: measure
on an otherwise idle machine (the load average is printed at start and end).

Targets, at 500 x 2,520 on the 2-core machine: in-process <= 120 s and <= 4 GiB; CLI <= 1.3x
in-process; default set's test accuracy >= the reference set's; parity at 50 tickers.

Run: ``.venv/bin/python -m benchmarks.bench_scale [--tickers 10 100 500] [--days 2520] ...``
(smallest: ``--quick``); exit code 1 if a run failed, parity failed or a target was missed
(targets are judged at the largest size measured, and labelled with it).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import runs
from benchmarks.harness.measure import load_average, versions
from benchmarks.harness.models import (
    PARITY_TOLERANCE,
    accuracy_margin,
    candidate_label,
    fmt_acc,
    reference_candidates,
    run_config,
    stored_model,
)
from benchmarks.harness.parity import Parity, parity, print_parity
from benchmarks.harness.report import (
    TARGET_HEADER,
    Target,
    all_met,
    at_most,
    fmt_mem,
    fmt_s,
    md_table,
    table,
    target_rows,
    targets_table,
)
from benchmarks.harness.sandbox import Sandbox, work_dir

JOB = "retrain"
ASSET_SELECTION = "group:stock_prediction"  # the retrain job's selection, for the CLI
MULTIPROCESS: dict[str, Any] = {"execution": {"config": {"multiprocess": {}}}}

WALL_TARGET_S = 120.0
RSS_TARGET_BYTES = 4 * 2**30
CLI_RATIO_TARGET = 1.3
TARGET_SCALE = (500, 2_520)
QUICK = {"tickers": [3], "days": 300, "parity_tickers": 3}  # every part, in about 2 minutes


@dataclass
class ScaleRun:
    """A measured run of the graph on ``tickers`` x ``days`` rows."""

    tickers: int
    days: int
    run: runs.GraphRun

    @property
    def rows(self) -> int:
        return self.tickers * self.days

    @property
    def ok(self) -> bool:
        return self.run.ok

    @property
    def model(self) -> dict[str, Any] | None:
        return self.run.model

    def record(self) -> dict[str, Any]:
        return {"tickers": self.tickers, "days": self.days, "rows": self.rows, **self.run.record()}


def in_process(
    work: Path, label: str, tickers: int, days: int, candidates: list[str] | None = None
) -> ScaleRun:
    """The ``retrain`` job by ``execute_in_process``, on the sandbox's instance."""
    config = run_config(tickers, days, candidates)
    return ScaleRun(tickers, days, runs.in_process(Sandbox(work / label), config, label, JOB))


def cli(work: Path, label: str, tickers: int, days: int) -> ScaleRun:
    """``dagster asset materialize`` on the multiprocess executor (each step forked warm)."""
    sandbox = Sandbox(work / label)
    config = {**run_config(tickers, days), **MULTIPROCESS}
    run = runs.cli(sandbox, config, label, select=ASSET_SELECTION)
    run.model = stored_model(sandbox.data) if run.ok else None
    return ScaleRun(tickers, days, run)


def print_run(scaled: ScaleRun) -> None:
    size = f"{scaled.tickers} tickers x {scaled.days:,} days ({scaled.rows:,} rows)"
    runs.print_run(scaled.run, size)


def features_step(tickers: int, days: int) -> dict[str, Any]:
    """``measure_features_step`` (best of 3), printed figure by figure."""
    from benchmarks.features_step import measure_features_step

    figures = measure_features_step(tickers, days, repeats=3)
    for name, value in figures.items():
        print(f"  {name}: {value}")
    return figures


def targets(
    largest: ScaleRun | None,
    cli_run: ScaleRun | None,
    reference: ScaleRun | None,
    found_parity: Parity | None,
    default_same_rows: ScaleRun | None = None,
) -> list[Target]:
    """The targets, judged on what this invocation measured (``default_same_rows``: the default
    set's run on the reference run's rows; default: the largest run)."""
    found = []
    if largest is not None and largest.ok:
        scale, m = f"{largest.tickers} x {largest.days:,}", largest.run.measured
        goal_s, goal_mem = fmt_s(WALL_TARGET_S), fmt_mem(RSS_TARGET_BYTES)
        wall, peak = m.seconds, m.tree_peak_bytes
        name = f"in-process wall ({scale})"
        found.append(at_most(name, wall, WALL_TARGET_S, fmt_s(wall), goal_s))
        name = f"in-process peak RSS ({scale})"
        found.append(at_most(name, peak, RSS_TARGET_BYTES, fmt_mem(peak), goal_mem))
        if cli_run is not None and cli_run.ok:
            pss, wall = cli_run.run.measured.tree_peak_pss_bytes, cli_run.run.wall_s
            name = f"CLI peak memory, PSS of the process tree ({scale})"
            found.append(at_most(name, pss, RSS_TARGET_BYTES, fmt_mem(pss), goal_mem))
            ratio = wall / m.seconds
            shown = f"{ratio:.2f}x ({fmt_s(wall)})"
            name = f"CLI / in-process wall ({scale})"
            found.append(at_most(name, ratio, CLI_RATIO_TARGET, shown, f"{CLI_RATIO_TARGET}x"))
        compared = default_same_rows or largest
        if reference is not None and reference.ok and compared.model and reference.model:
            default = compared.model["metrics"]["accuracy"]
            seed = reference.model["metrics"]["accuracy"]
            same_window = compared.model["test_window"] == reference.model["test_window"]
            margin = accuracy_margin(compared.model, compared.tickers)
            found.append(
                Target(
                    f"default vs reference test accuracy ({compared.tickers} x {compared.days:,})",
                    f"{default:.4f} vs {seed:.4f} (95 % margin of each: ±{margin:.4f})"
                    + ("" if same_window else " (DIFFERENT test windows)"),
                    "default >= reference",
                    default >= seed and same_window,
                )
            )
    if found_parity is not None:
        found.append(
            Target(
                f"parity Dagster vs kfp.local ({found_parity.tickers} x {found_parity.days:,})",
                "same candidate, equal metrics" if found_parity.ok else "differs or failed",
                f"equal to {PARITY_TOLERANCE:g}",
                found_parity.ok,
            )
        )
    return found


SCALING_HEADER = [
    "tickers",
    "rows",
    "in-process",
    "CLI (multiprocess)",
    "peak RSS in-process",
    "peak memory CLI (PSS)",
    "chosen candidate",
    "test accuracy",
]


def scaling_rows(sized: list[ScaleRun], cli_runs: dict[int, ScaleRun]) -> list[list[str]]:
    def wall(run: ScaleRun | None) -> str:
        return "-" if run is None else fmt_s(run.run.wall_s) if run.ok else "failed"

    rows = []
    for run in sized:
        cli_run = cli_runs.get(run.tickers)
        pss = cli_run.run.measured.tree_peak_pss_bytes if cli_run else None
        rss = run.run.measured.tree_peak_bytes
        rows.append([f"{run.tickers:,}", f"{run.rows:,}", wall(run), wall(cli_run), fmt_mem(rss)])
        rows[-1] += [fmt_mem(pss), candidate_label(run.model), fmt_acc(run.model)]
    return rows


def reference_line(reference: ScaleRun) -> str:
    return (
        f"{fmt_s(reference.run.wall_s) if reference.ok else 'failed'}, chose "
        f"{candidate_label(reference.model)}, test accuracy {fmt_acc(reference.model)}"
    )


def markdown(
    sized: list[ScaleRun],
    cli_runs: dict[int, ScaleRun],
    reference: ScaleRun | None,
    found: list[Target],
    days: int,
) -> str:
    """The docs' tables (docs/scale.md), from this invocation's figures."""
    lines = [
        f"Nightly retrain, default config, {days:,} business days per ticker, deploy allowed; "
        f"{os.cpu_count()} cores. Wall = whole subprocess; peak memory = summed RSS (in-process) "
        "or PSS (CLI) of the process tree, sampled every 0.2 s.",
        "",
        *md_table(SCALING_HEADER, scaling_rows(sized, cli_runs)),
    ]
    if reference is not None:
        lines += [
            "",
            f"Reference candidate set ({reference.tickers:,} tickers, same rows and test "
            f"window): {reference_line(reference)}.",
        ]
    if found:
        lines += ["", *md_table(TARGET_HEADER, target_rows(found))]
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_scale", description=__doc__.split("\n\n")[0]
    )
    add = parser.add_argument
    add("--tickers", type=int, nargs="+", default=[10, 100, 500], help="sizes (10 100 500)")
    add("--days", type=int, default=2_520, help="business days per ticker (default: 2520)")
    add(
        "--cli-tickers",
        type=int,
        nargs="*",
        help="sizes also run by `dagster asset materialize` (default: the largest; none: skip)",
    )
    add("--parity-tickers", type=int, default=50, help="kfp.local parity size (50; 0: skip)")
    add(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the reference pipeline's candidate set, last (slow)",
    )
    add(
        "--reference-tickers",
        type=int,
        help="size of the reference set's run, one of --tickers (default: the largest); the "
        "default set's run of that size is its comparison",
    )
    add(
        "--features",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time the features step at the largest size (benchmarks/features_step.py)",
    )
    add("--quick", action="store_true", help="every part at 3 tickers x 300 days")
    add("--json", type=Path, help="write the full report as JSON to this file")
    add("--markdown", type=Path, help="write the docs' tables to this file")
    add("--keep", action="store_true", help="keep the runs' temporary folders")
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    if min([*args.tickers, *(args.cli_tickers or [1])]) < 1 or args.days < 1:
        parser.error("--tickers, --cli-tickers and --days must be >= 1")
    if args.parity_tickers < 0:
        parser.error("--parity-tickers must be >= 0 (0: skip the parity run)")
    if args.cli_tickers is None:
        args.cli_tickers = [max(args.tickers)]
    if args.reference_tickers is None:
        args.reference_tickers = max(args.tickers)
    elif args.reference_tickers not in args.tickers:
        parser.error(
            f"--reference-tickers {args.reference_tickers} must be one of --tickers "
            f"{' '.join(map(str, args.tickers))}: the default set's run of that size is compared"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes, days = sorted(set(args.tickers)), args.days
    started = time.time()
    print(f"bench_scale: {os.cpu_count()} cpus; load average at start: {load_average()}")
    print(f"versions: {', '.join(f'{k} {v}' for k, v in versions().items())}")
    print(
        f"sizes: {', '.join(map(str, sizes))} tickers x {days:,} days; CLI at "
        f"{', '.join(map(str, args.cli_tickers)) or 'none'}; parity at "
        f"{args.parity_tickers or 'skipped'}; reference set: {'on' if args.reference else 'off'}"
    )
    if (sizes[-1], days) != TARGET_SCALE:
        print(
            f"note: the targets are defined at {TARGET_SCALE[0]} x {TARGET_SCALE[1]:,}; they are "
            f"judged below at {sizes[-1]} x {days:,}"
        )
    sized: list[ScaleRun] = []
    cli_runs: dict[int, ScaleRun] = {}
    reference = found_parity = features = None
    with work_dir("bench_scale_", keep=args.keep) as work:
        print("\n== 1. Nightly retrain in one process (execute_in_process), per size ==")
        for size in sizes:
            sized.append(in_process(work, f"inproc_{size}", size, days))
            print_run(sized[-1])
        by_size = {run.tickers: run for run in sized}
        if args.cli_tickers:
            print("\n== 2. The same under `dagster asset materialize` (multiprocess) ==")
        for size in sorted(set(args.cli_tickers)):
            cli_runs[size] = cli(work, f"cli_{size}", size, days)
            print_run(cli_runs[size])
            base = by_size.get(size)
            if base is not None and base.ok and cli_runs[size].ok:
                ratio = cli_runs[size].run.wall_s / base.run.wall_s
                print(f"  CLI / in-process wall: {ratio:.2f}x (target <= {CLI_RATIO_TARGET}x)")
        if args.features:
            print(f"\n== 3. Features step at {sizes[-1]} x {days:,} ==")
            features = features_step(sizes[-1], days)
        if args.parity_tickers:
            print(f"\n== 4. Parity: Dagster vs kfp.local at {args.parity_tickers} tickers ==")
            size = args.parity_tickers
            same = by_size.get(size)
            config = run_config(size, days)
            found_parity = parity(work, config, (size, days), JOB, same.run if same else None)
            print_parity(found_parity)
        if args.reference:
            size = args.reference_tickers
            print(f"\n== 5. Reference candidate set at {size} x {days:,} (last) ==")
            candidates = reference_candidates()
            reference = in_process(work, f"reference_{size}", size, days, candidates)
            print_run(reference)

    found = targets(
        by_size[sizes[-1]],
        cli_runs.get(sizes[-1]),
        reference,
        found_parity,
        by_size.get(args.reference_tickers),
    )
    print(f"\n== Scaling ({days:,} days per ticker) ==")
    print(table(SCALING_HEADER, scaling_rows(sized, cli_runs), left=(6,)))
    if reference is not None:
        same = by_size.get(reference.tickers)
        default = same.model if same else None
        print(
            f"\n  reference set at {reference.tickers} tickers: {reference_line(reference)} "
            f"(default set: {candidate_label(default)}, {fmt_acc(default)})"
        )
    print("\n== Targets ==")
    print(targets_table(found))
    print(f"\nload average at end: {load_average()}; benchmark took {fmt_s(time.time() - started)}")

    every = [*sized, *cli_runs.values(), *([reference] if reference else [])]
    failed = [r.run.label for r in every if not r.ok]
    if args.json:
        report = {
            "days": days,
            "cpus": os.cpu_count(),
            "versions": versions(),
            "runs": [r.record() for r in sized],
            "cli_runs": [r.record() for r in cli_runs.values()],
            "reference": reference.record() if reference else None,
            "parity": asdict(found_parity) if found_parity else None,
            "features_step": features,
            "targets": [asdict(t) for t in found],
            "failed_runs": failed,
        }
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    if args.markdown:
        args.markdown.write_text(markdown(sized, cli_runs, reference, found, days))
        print(f"wrote {args.markdown}")
    if failed:
        print(f"failed runs: {', '.join(failed)}")
    return 1 if failed or not all_met(found) else 0


if __name__ == "__main__":
    raise SystemExit(main())
