"""A graph-backed asset with a dynamic fan-out: the exporter's graph of ops, another shape.

``samples`` (an asset) feeds ``smoothing``, a ``@graph_asset``: ``plan`` emits one candidate
window per config item (``DynamicOut``), ``score`` runs once per candidate (``.map``; its own
config, retry policy, pod resources and ``kfp/parallelism`` tag) and reads ``samples``, and
``choose`` gets every score (``.collect()``). ``report`` (an asset) reads the chosen window, and
a blocking check guards ``smoothing``, whose ``metrics`` field is also logged as KFP metrics; a
schedule sets ``score``'s config.

``RunLog`` implements the exporter's per-run tracking protocol on files: under a KFP run it
appends, to ``$FAN_OUT_RUN_LOG_DIR/<kfp run id>.jsonl``, one line per op, check and run end, so
a test can see that every task of a run, each ParallelFor iteration included, shares one run id.
"""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    Backoff,
    Config,
    ConfigurableResource,
    Definitions,
    DynamicOut,
    DynamicOutput,
    OpExecutionContext,
    RetryPolicy,
    ScheduleDefinition,
    asset,
    asset_check,
    define_asset_job,
    graph_asset,
    op,
)
from pydantic import Field

RUN_LOG_DIR = "FAN_OUT_RUN_LOG_DIR"


class RunLog(ConfigurableResource):
    """One JSON-lines file per KFP run (nothing outside KFP)."""

    kfp_run_id: str | None = None

    def record(self, **event: object) -> None:
        if self.kfp_run_id and os.environ.get(RUN_LOG_DIR):
            self._append(self.kfp_run_id, event)

    def end_pipeline_run(self, kfp_run_id: str, status: str) -> str | None:
        self._append(kfp_run_id, {"status": status})
        return kfp_run_id

    @staticmethod
    def _append(run_id: str, event: dict[str, object]) -> None:
        path = Path(os.environ[RUN_LOG_DIR]) / f"{run_id}.jsonl"
        with path.open("a") as handle:
            handle.write(json.dumps(event, sort_keys=True) + "\n")


class SamplesConfig(Config):
    rows: int = 60
    seed: int = 7


@asset(kinds={"pandas"}, description="A noisy random walk to smooth.")
def samples(config: SamplesConfig) -> pd.DataFrame:
    steps = np.random.default_rng(config.seed).normal(size=config.rows)
    return pd.DataFrame({"value": steps.cumsum()})


class PlanConfig(Config):
    windows: list[int] = Field(default=[2, 3, 5], description="Moving-average windows to try.")


@op(out=DynamicOut(dict), description="One candidate per window.")
def plan(config: PlanConfig):  # noqa: ANN201 - a generator op
    for window in config.windows:
        yield DynamicOutput({"window": window}, mapping_key=f"window_{window}")


class ScoreConfig(Config):
    horizon: int = Field(default=1, description="How many steps ahead the average predicts.")


@op(
    description="Mean absolute error of one candidate's forecast.",
    retry_policy=RetryPolicy(max_retries=2, delay=1, backoff=Backoff.EXPONENTIAL),
    tags={
        "kfp/parallelism": "2",
        "dagster-k8s/config": {
            "container_config": {
                "resources": {
                    "requests": {"cpu": "500m", "memory": "256Mi"},
                    "limits": {"memory": "1Gi"},
                }
            }
        },
    },
)
def score(
    context: OpExecutionContext,
    candidate: dict,
    samples: pd.DataFrame,
    config: ScoreConfig,
    run_log: RunLog,
) -> dict:
    values = samples["value"]
    forecast = values.rolling(candidate["window"]).mean().shift(config.horizon)
    error = float((values - forecast).abs().mean())
    run_log.record(op="score", key=context.get_mapping_key())
    return {"key": context.get_mapping_key(), "window": candidate["window"], "error": error}


@op(description="The candidate with the smallest error.")
def choose(scores: list[dict], run_log: RunLog) -> dict:
    run_log.record(op="choose", keys=[s["key"] for s in scores])
    best = min(scores, key=lambda s: s["error"])
    metrics = {"best_error": best["error"], "candidates": float(len(scores))}
    return {"best": best, "scores": scores, "metrics": metrics}


@graph_asset(
    description="The best smoothing window, one score per candidate.",
    metadata={"kfp/metrics": "metrics"},
)
def smoothing(samples: pd.DataFrame) -> dict:
    return choose(plan().map(lambda candidate: score(candidate, samples)).collect())


@asset_check(asset=smoothing, blocking=True, description="Every candidate was scored.")
def every_candidate_scored(smoothing: dict, run_log: RunLog) -> AssetCheckResult:
    run_log.record(check="every_candidate_scored")
    errors = [s["error"] for s in smoothing["scores"]]
    return AssetCheckResult(passed=bool(errors) and all(np.isfinite(errors)))


@asset(description="The chosen window.")
def report(smoothing: dict) -> dict:
    return {"window": smoothing["best"]["window"], "candidates": len(smoothing["scores"])}


#: A nightly run that sets an op's config inside the graph-backed asset.
nightly_smoothing = ScheduleDefinition(
    name="nightly_smoothing",
    job=define_asset_job("smooth_everything"),
    cron_schedule="0 3 * * *",
    run_config={"ops": {"smoothing": {"ops": {"score": {"config": {"horizon": 2}}}}}},
)

defs = Definitions(
    assets=[samples, smoothing, report],
    asset_checks=[every_candidate_scored],
    resources={"run_log": RunLog()},
    schedules=[nightly_smoothing],
)
