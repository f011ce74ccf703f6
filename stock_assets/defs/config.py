"""Run configuration of the assets, with the reference pipeline's defaults.

Each field becomes a Dagster launchpad field and, through the KFP exporter, a pipeline parameter
of the same name, type and default (an ``X | None = None`` field is a text parameter whose blank
default means unset, parsed as X by the exporter's runtime). The launchpad checks each value's
type; the rules below run when the step that reads the config starts, before it writes anything.
Every validator applies the core's own rule (one function per fact, in ``stock_assets.core``)
through :func:`config_rule`, so a bad value fails the step with the message the core gives a
direct caller, as the failure's first line, and the assets rely on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from dagster import Config, Failure
from pydantic import Field, ValidationInfo, field_validator, model_validator

from stock_assets.core.backtest import DEFAULT_COST_BPS, check_cost_bps
from stock_assets.core.data import (
    EARLIEST_END_DATE,
    LATEST_END_DATE,
    MAX_DAYS,
    MIN_ROWS_PER_TICKER,
    SYNTHETIC_PROCESSES,
    check_days,
    check_end_date,
    check_process,
    check_seed,
    check_tickers,
)
from stock_assets.core.decision import (
    DEFAULT_GATE_THRESHOLDS,
    GATE_METRICS,
    check_accuracy_threshold,
    check_gate_metric,
    check_gate_threshold,
)
from stock_assets.core.estimators import (
    MODEL_TYPES,
    accepted_hyperparameters,
    check_hyperparameter,
    check_model_type,
)
from stock_assets.core.history import TRAINING_ROWS_PER_TICKER
from stock_assets.core.selection import (
    CANDIDATE_PRESETS,
    DEFAULT_CANDIDATES,
    LABEL_HORIZON,
    SELECTION_METRICS,
    check_cv_folds,
    check_embargo,
    check_selection_metric,
    parse_candidates,
)
from stock_assets.core.splits import check_test_size

HYPERPARAMETER_FIELDS = ("n_estimators", "max_depth", "learning_rate", "C", "max_iter")

#: The op of the graph-backed ``model`` asset that reads :class:`ModelConfig`.
MODEL_CONFIG_OP = "plan_candidates"

T = TypeVar("T")


def config_rule(check: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``check(*args, **kwargs)``, its ValueError raised as a Dagster ``Failure``.

    Pydantic would wrap a ValueError in a ValidationError and Dagster that in a step-execution
    error, burying the message under both. A ``Failure`` passes through pydantic (which converts
    only ValueError and AssertionError) and Dagster re-raises it unwrapped
    (``op_execution_error_boundary`` in dagster/_core/execution/plan/utils.py), so the step
    failure reads ``Failure: <message>``; ``allow_retries=False``: a retry would fail the same way.
    """
    try:
        return check(*args, **kwargs)
    except ValueError as error:
        raise Failure(description=str(error), allow_retries=False) from None


class StockDataConfig(Config):
    """Where the daily bars come from: a synthetic GBM series, or a CSV of your own."""

    days: int = Field(
        default=500,
        description=(
            f"Business days of synthetic data per ticker, up to {MAX_DAYS}: training with the "
            f"default model settings needs {TRAINING_ROWS_PER_TICKER} (SMA_50's warm-up, the "
            f"test window and 3 walk-forward folds), the features alone {MIN_ROWS_PER_TICKER}. "
            "Ignored for a CSV."
        ),
    )
    seed: int = Field(default=42, description="Random seed of the synthetic series.")
    tickers: list[str] = Field(
        default=["SYNTH"],
        description="Synthetic tickers; each gets its own series seeded from (seed, ticker).",
    )
    csv_path: str | None = Field(
        default=None,
        description=(
            "Path of a daily-bar CSV (Date, Open, High, Low, Close, Volume in any letter case; "
            "optional Ticker). Unset: generate synthetic data."
        ),
    )
    end_date: str | None = Field(
        default=None,
        description=(
            f"As-of date YYYY-MM-DD ending the window, from {EARLIEST_END_DATE} to "
            f"{LATEST_END_DATE}; unset: the days from 2023-01-01."
        ),
    )

    process: str = Field(
        default="random_walk",
        description=(
            f"Synthetic process: {' or '.join(SYNTHETIC_PROCESSES)} (the same draws with "
            "autocorrelated returns: a weak, known edge). Ignored for a CSV."
        ),
    )

    @field_validator("csv_path", "end_date", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """An empty string reads as unset (as a blank KFP parameter does) in Dagster too."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("days")
    @classmethod
    def _enough_days(cls, days: int) -> int:
        return config_rule(check_days, days)

    @field_validator("seed")
    @classmethod
    def _valid_seed(cls, seed: int) -> int:
        return config_rule(check_seed, seed)

    @field_validator("tickers")
    @classmethod
    def _valid_tickers(cls, tickers: list[str]) -> list[str]:
        return config_rule(check_tickers, tickers)

    @field_validator("end_date")
    @classmethod
    def _iso_date(cls, end_date: str | None) -> str | None:
        config_rule(check_end_date, end_date)
        return end_date

    @field_validator("process")
    @classmethod
    def _known_process(cls, process: str) -> str:
        return config_rule(check_process, process)


class ModelConfig(Config):
    """Which classifier: the best of the candidates (default) or one named type.

    Candidates are compared by walk-forward validation on the training window only; the last
    ``test_size`` of the dates stays untouched until the chosen model is evaluated on it.
    """

    model_type: str = Field(
        default="auto",
        description=(
            "'auto': compare the candidates and keep the best; or one of "
            f"{', '.join(MODEL_TYPES)} to train only that type (with the overrides below)."
        ),
    )
    candidates: list[str] = Field(
        default=list(DEFAULT_CANDIDATES),
        description=(
            "Candidates compared when model_type='auto', as 'type: name=value, ...', or a "
            f"preset name: {', '.join(CANDIDATE_PRESETS)} (the reference pipeline's seven; "
            "slow on large data). Each is scored in its own step (KFP: its own pod)."
        ),
    )
    selection_metric: str = Field(
        default="accuracy",
        description=f"Walk-forward metric picking the best: {', '.join(SELECTION_METRICS)}.",
    )
    cv_folds: int = Field(
        default=3, description="Walk-forward (TimeSeriesSplit) folds over the training dates, >= 2."
    )
    test_size: float = Field(
        default=0.2, description="Share of the latest dates held out for testing, in (0, 1)."
    )
    n_estimators: int | None = Field(
        default=None, description="Trees (random_forest, gradient_boosting); unset: 100."
    )
    max_depth: int | None = Field(
        default=None,
        description=(
            "Tree depth; unset: 10 (random_forest), 5 (gradient_boosting), "
            "none (hist_gradient_boosting)."
        ),
    )
    learning_rate: float | None = Field(
        default=None, description="(hist_)gradient_boosting learning rate; unset: 0.1."
    )
    C: float | None = Field(
        default=None, description="logistic inverse regularisation; unset: 1.0."
    )
    max_iter: int | None = Field(
        default=None,
        description="logistic iterations (unset: 1000); hist_gradient_boosting rounds (200).",
    )
    random_state: int = Field(default=42, description="Random state of the classifiers.")
    embargo: int = Field(
        default=LABEL_HORIZON,
        description=(
            f"Dates left out between each walk-forward fit block and its validation block, "
            f">= {LABEL_HORIZON} (the label horizon: the Target is the next date's move)."
        ),
    )
    cost_bps: float = Field(
        default=DEFAULT_COST_BPS,
        description="Backtest costs, basis points per unit of turnover (5 = 0.05 % traded).",
    )
    long_short: bool = Field(
        default=False,
        description="Backtest: short when the model says down (default: flat, long only).",
    )

    @field_validator("model_type")
    @classmethod
    def _known_model(cls, model_type: str) -> str:
        return config_rule(check_model_type, model_type, auto=True)

    @field_validator("candidates")
    @classmethod
    def _parseable_candidates(cls, candidates: list[str]) -> list[str]:
        config_rule(parse_candidates, candidates)
        return candidates

    @field_validator("selection_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        return config_rule(check_selection_metric, metric)

    @field_validator("cv_folds")
    @classmethod
    def _enough_folds(cls, folds: int) -> int:
        return config_rule(check_cv_folds, folds)

    @field_validator("test_size")
    @classmethod
    def _open_unit_interval(cls, test_size: float) -> float:
        return config_rule(check_test_size, test_size)

    @field_validator("embargo")
    @classmethod
    def _embargo_covers_the_label(cls, embargo: int) -> int:
        return config_rule(check_embargo, embargo)

    @field_validator("cost_bps")
    @classmethod
    def _cost_in_bps(cls, cost_bps: float) -> float:
        return config_rule(check_cost_bps, cost_bps)

    @field_validator("n_estimators", "max_depth", "max_iter", "learning_rate", "C")
    @classmethod
    def _positive(cls, value: float | None, info: ValidationInfo) -> float | None:
        return config_rule(check_hyperparameter, info.field_name, value)

    @model_validator(mode="after")
    def _overrides_need_a_type(self) -> ModelConfig:
        set_fields = [n for n in HYPERPARAMETER_FIELDS if getattr(self, n) is not None]
        config_rule(_no_overrides_with_auto, self.model_type, set_fields)
        return self

    def hyperparameter_overrides(self) -> dict[str, float | int]:
        """The hyperparameters set explicitly that this model type accepts."""
        if self.model_type not in MODEL_TYPES:
            return {}
        accepted = accepted_hyperparameters(self.model_type)
        values = {name: getattr(self, name) for name in HYPERPARAMETER_FIELDS if name in accepted}
        return {name: value for name, value in values.items() if value is not None}


def _no_overrides_with_auto(model_type: str, set_fields: list[str]) -> None:
    """Hyperparameter fields name one type's values; 'auto' takes them from the candidates."""
    if model_type == "auto" and set_fields:
        raise ValueError(
            f"{', '.join(set_fields)} apply only when model_type names one type; with "
            "model_type='auto' the candidates list sets the hyperparameters"
        )


class DeployDecisionConfig(Config):
    """The deploy gate: the threshold, then champion/challenger against production."""

    accuracy_threshold: float = Field(
        default=0.55, description="Minimum test accuracy to deploy, in [0, 1]."
    )
    challenge_production: bool = Field(
        default=True,
        description="Also require beating the production model on the same test window.",
    )
    gate_metric: str = Field(
        default="accuracy",
        description=(
            f"The metric that decides: {', '.join(GATE_METRICS)} (the backtest's, after "
            "costs, on the test window); production is compared on the same metric."
        ),
    )
    sharpe_threshold: float = Field(
        default=DEFAULT_GATE_THRESHOLDS["sharpe"],
        description="Minimum annualised Sharpe ratio after costs (gate_metric=sharpe).",
    )
    excess_return_threshold: float = Field(
        default=DEFAULT_GATE_THRESHOLDS["excess_return"],
        description="Minimum annual return over buy-and-hold (gate_metric=excess_return).",
    )
    deflated_sharpe_threshold: float = Field(
        default=DEFAULT_GATE_THRESHOLDS["deflated_sharpe"],
        description="Minimum deflated Sharpe ratio, in [0, 1] (gate_metric=deflated_sharpe).",
    )

    @field_validator("accuracy_threshold")
    @classmethod
    def _unit_interval(cls, threshold: float) -> float:
        return config_rule(check_accuracy_threshold, threshold)

    @field_validator("gate_metric")
    @classmethod
    def _known_gate(cls, metric: str) -> str:
        return config_rule(check_gate_metric, metric)

    @field_validator("sharpe_threshold", "excess_return_threshold", "deflated_sharpe_threshold")
    @classmethod
    def _sensible_threshold(cls, threshold: float, info: ValidationInfo) -> float:
        metric = str(info.field_name).removesuffix("_threshold")
        config_rule(check_gate_threshold, metric, threshold)
        return threshold

    def threshold(self) -> float:
        """The threshold of ``gate_metric``."""
        return getattr(self, f"{self.gate_metric}_threshold")


def run_config(config_by_asset: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A Dagster run config from each asset's config, e.g. ``{"model": {"cv_folds": 4}}``.

    The ``model`` asset is a graph of ops; its config belongs to the op that plans the
    candidates: ``ops.model.ops.plan_candidates.config``.
    """
    ops: dict[str, Any] = {}
    for asset, config in config_by_asset.items():
        if asset == "model":
            ops[asset] = {"ops": {MODEL_CONFIG_OP: {"config": dict(config)}}}
        else:
            ops[asset] = {"config": dict(config)}
    return {"ops": ops}
