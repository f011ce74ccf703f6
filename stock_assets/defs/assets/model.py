"""The ``model`` asset, a graph of three ops: plan the candidates, score each, train the best.

``plan_candidates`` emits one item per candidate (``DynamicOut``); ``score_candidate`` runs once
per item (``.map``), each its own step: Dagster's multiprocess executor runs them side by side,
and the KFP exporter turns the fan-out into a ``dsl.ParallelFor``, one pod per candidate.
``train_best`` gets every score (``.collect()``), ranks them, refits the best on the whole
training window, tests it on the held-out window, logs it to MLflow and registers it.
"""

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd
from dagster import (
    DynamicOut,
    DynamicOutput,
    Failure,
    OpExecutionContext,
    Output,
    graph_asset,
    op,
)
from mlflow import MlflowClient

from stock_assets.core import selection
from stock_assets.core.backtest import BacktestError, next_returns
from stock_assets.core.errors import TrainingError
from stock_assets.core.features import FEATURE_COLUMNS, TARGET_COLUMN
from stock_assets.core.history import history_problem
from stock_assets.core.signal_metrics import evaluate_signal
from stock_assets.core.splits import time_split
from stock_assets.core.training import TrainingResult, train_and_evaluate
from stock_assets.core.values import METRIC_DIGITS, CandidatePlan, CandidateScore, TrainedModel
from stock_assets.defs.config import ModelConfig
from stock_assets.defs.constants import GROUP_NAME
from stock_assets.defs.lineage import stored_input
from stock_assets.defs.metadata import backtest_metadata, comparison_metadata, model_metadata
from stock_assets.defs.resources import MlflowTracking
from stock_assets.mlflow_ops import registry, run_logging
from stock_assets.mlflow_ops.backtest_logging import log_backtest
from stock_assets.mlflow_ops.experiment import run_url
from stock_assets.mlflow_ops.lineage import log_training_data


def _pod(cpu: str, memory: str, limit: str) -> dict[str, Any]:
    """The ``dagster-k8s/config`` tag: the KFP exporter gives the op's pod these resources."""
    resources = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": limit}}
    return {"dagster-k8s/config": {"container_config": {"resources": resources}}}


@op(
    out=DynamicOut(dict),
    description="One item per candidate to score (the one named type if model_type is not auto).",
    tags={"kfp/cache": "false"},  # cheap: KFP reruns it rather than cache (the model's version)
)
def plan_candidates(  # noqa: ANN201 - a generator op
    context: OpExecutionContext, config: ModelConfig, features: pd.DataFrame
):
    """The run's candidates, each with the settings every step shares, as JSON items.

    The split and the folds are checked here, once, so a config the data cannot satisfy
    (too few dates for ``cv_folds``, say) fails one step instead of every candidate's.
    """
    try:
        if config.model_type == "auto":
            labelled = features.loc[features[TARGET_COLUMN].notna(), "Date"].nunique()
            problem = history_problem(labelled, config.test_size, config.cv_folds, config.embargo)
            if problem:
                raise TrainingError(problem)
            train = time_split(features, config.test_size).train
            selection.checked_folds(train, config.cv_folds, config.embargo)
        plans = selection.plan_candidates(
            config.model_type,
            config.candidates,
            config.hyperparameter_overrides(),
            config.test_size,
            config.cv_folds,
            config.selection_metric,
            config.random_state,
            embargo=config.embargo,
            cost_bps=config.cost_bps,
            long_short=config.long_short,
        )
    except TrainingError as error:
        raise Failure(description=str(error), allow_retries=False) from error
    context.log.info(f"{len(plans)} candidate(s): {'; '.join(p.label for p in plans)}")
    for plan in plans:
        yield DynamicOutput(_as_item(plan), mapping_key=plan.mapping_key)


@op(
    description="Walk-forward scores of one candidate on the training dates (its own step/pod).",
    tags=_pod(cpu="2", memory="1Gi", limit="4Gi"),
    code_version="1",  # a pure function of the features and the item: KFP may cache it
)
def score_candidate(
    context: OpExecutionContext, candidate: dict, features: pd.DataFrame
) -> CandidateScore:
    """Fit and score one candidate on each walk-forward fold; the test window is not touched."""
    plan = CandidatePlan(**candidate)
    if not plan.compare:
        return CandidateScore(plan=plan, folds=(), fit_seconds=0.0)
    started = time.perf_counter()
    try:
        split = time_split(features, plan.test_size)
        folds = selection.score_candidate(
            split.train,
            selection.candidate_of(plan),
            plan.cv_folds,
            plan.random_state,
            embargo=plan.embargo,
        )
    except TrainingError as error:
        raise Failure(description=f"candidate {plan.label!r}: {error}") from error
    seconds = time.perf_counter() - started
    mean = sum(fold[plan.selection_metric] for fold in folds) / len(folds)
    context.log.info(
        f"{plan.label}: walk-forward {plan.selection_metric} {mean:.4f} "
        f"({plan.cv_folds} folds, {seconds:.1f} s)"
    )
    return CandidateScore(plan=plan, folds=tuple(folds), fit_seconds=round(seconds, 3))


@op(
    description="Rank the scores, refit the best, test it, log it to MLflow and register it.",
    # kfp/metrics: the KFP exporter also logs the value's `metrics` to a KFP Metrics output
    # kfp/cache false: it logs and registers (side effects) though `model` has a code version
    tags={
        **_pod(cpu="1", memory="1Gi", limit="4Gi"),
        "kfp/metrics": "metrics",
        "kfp/cache": "false",
    },
)
def train_best(
    context: OpExecutionContext,
    features: pd.DataFrame,
    scores: list[CandidateScore],
    mlflow: MlflowTracking,
) -> Output[TrainedModel]:
    """Choose, train, evaluate against the majority-class baseline and by a backtest with
    costs against buy-and-hold, log and register."""
    try:
        chosen, comparison = selection.rank_scores(scores)
        settings = scores[0].plan
        split = time_split(features, settings.test_size)  # once: the windows travel in the value
        result = train_and_evaluate(
            split, chosen.model_type, chosen.hyperparameters, settings.random_state
        )
        n_trials = settings.n_candidates if settings.compare else 1
        backtest, signal = evaluate_signal(
            split.test,
            result.y_score,
            next_returns(features).loc[split.test.index].to_numpy(),
            settings.cost_bps,
            settings.long_short,
            n_trials,
        )
    except (TrainingError, BacktestError) as error:
        raise Failure(description=str(error)) from error
    result.metrics.update(signal)  # test metrics too: logged, registered and judged alike

    client, run_id = mlflow.client, mlflow.run_id
    with mlflow.reporting_errors():
        chart = None
        if comparison is not None:
            chart = run_logging.log_comparison(
                client, run_id, comparison, settings.cv_folds, settings.selection_metric
            )
        logged = run_logging.log_training(
            client, run_id, result, split.train[FEATURE_COLUMNS].head(5)
        )
        lineage = log_training_data(
            client, run_id, features, split, stored_input(context, "features")
        )
        backtest_figures = log_backtest(client, run_id, backtest, n_trials)
        trained = dataclasses.replace(
            register_model(client, run_id, result, logged, lineage),
            cost_bps=settings.cost_bps,
            long_short=settings.long_short,
            n_trials=n_trials,
        )
        url = run_url(client, run_id)
    window, m = trained.test_window, trained.metrics
    context.log.info(
        f"{chosen.label}: test accuracy {m['accuracy']:.4f} (always-majority baseline on the "
        f"same test window {window}: {m['baseline_accuracy']:.4f}); "
        f"backtest after {settings.cost_bps:g} bps: Sharpe {m['sharpe']:.2f} (buy-and-hold "
        f"{m['benchmark_sharpe']:.2f}), IC {m['ic_mean']:.4f}, deflated Sharpe "
        f"{m['deflated_sharpe']:.3f} over {n_trials} trial(s); version {trained.registered_version}"
    )
    metadata = model_metadata(trained, result, logged.figures, url)
    return Output(
        trained,
        metadata={
            **lineage,
            **metadata,
            **backtest_metadata(trained, backtest_figures),
            **comparison_metadata(comparison, chart, settings.selection_metric, settings.cv_folds),
        },
    )


@graph_asset(
    group_name=GROUP_NAME,
    kinds={"scikit-learn", "mlflow"},
    code_version="1",
    description=(
        "The classifier. Each candidate is scored by walk-forward validation on the training "
        "dates in its own step (KFP: its own pod); the best is refit and tested on the latest "
        "`test_size` of the dates, logged to MLflow and registered as a new version. Its ops "
        "are under Compute details on this page. Config: "
        "`ops.model.ops.plan_candidates.config`."
    ),
)
def model(features: pd.DataFrame) -> TrainedModel:
    """plan_candidates → score_candidate per candidate → train_best."""
    scores = plan_candidates(features).map(lambda candidate: score_candidate(candidate, features))
    return train_best(features, scores.collect())


def register_model(
    client: MlflowClient,
    run_id: str,
    result: TrainingResult,
    logged: run_logging.LoggedModel,
    lineage: Mapping[str, str],
) -> TrainedModel:
    """Register the served model as a new version, tagged with its data ``lineage``, and
    name the version on the run."""
    metrics = {name: round(float(value), METRIC_DIGITS) for name, value in result.metrics.items()}
    version = registry.register_version(
        client,
        logged.serving_model_uri,
        run_id,
        {"accuracy": metrics["accuracy"], "model_type": result.model_type, **lineage},
    )
    client.set_tag(run_id, "registered_version", version)
    return TrainedModel(
        model_type=result.model_type,
        hyperparameters=result.hyperparameters,
        feature_columns=tuple(result.feature_columns),
        metrics=metrics,
        train_window=result.train_window,
        test_window=result.test_window,
        model_uri=logged.model_uri,
        serving_model_uri=logged.serving_model_uri,
        registered_version=version,
        mlflow_run_id=run_id,
    )


def _as_item(plan: CandidatePlan) -> dict[str, Any]:
    """A plan as the JSON item the fan-out carries (a KFP ParallelFor item too)."""
    return {name: getattr(plan, name) for name in CandidatePlan.__dataclass_fields__}
