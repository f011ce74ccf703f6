"""Run configuration of the assets, with the reference pipeline's defaults.

Each field becomes a Dagster launchpad field and, through the KFP exporter, a pipeline parameter
of the same name, type and default. Every validator applies the core's own rule (one function per
fact, in ``stock_assets.core``), so a bad value fails in the launchpad with the message the core
gives a direct caller, and the assets rely on it.
"""

from __future__ import annotations

from typing import Any

from dagster import Config
from pydantic import Field, field_validator, model_validator

from stock_assets.core.data import (
    MIN_ROWS_PER_TICKER,
    check_days,
    check_end_date,
    check_seed,
    check_tickers,
)
from stock_assets.core.decision import check_accuracy_threshold
from stock_assets.core.selection import (
    DEFAULT_CANDIDATES,
    SELECTION_METRICS,
    check_cv_folds,
    check_selection_metric,
    parse_candidates,
)
from stock_assets.core.training import (
    DEFAULT_HYPERPARAMETERS,
    MODEL_TYPES,
    check_model_type,
    check_test_size,
)

HYPERPARAMETER_FIELDS = ("n_estimators", "max_depth", "learning_rate", "C", "max_iter")

# --- Sentinel adapter: the one place that knows 0 and "" mean "unset" ----------------------
# The KFP exporter on this branch turns int, float, str, bool and list fields into pipeline
# parameters, not `X | None` ones. Until it does (tracked in the KFP issue), "unset" is spelt 0
# for the five hyperparameters and "" for csv_path and end_date, and nothing reads those fields
# but through `optional`, which gives None for the sentinel. Then: declare the fields
# `X | None = None`, and delete SENTINELS and `optional`.
SENTINELS: dict[str, Any] = {
    "csv_path": "",
    "end_date": "",
    **{name: 0 for name in HYPERPARAMETER_FIELDS},
}


def optional(config: Config, name: str) -> Any:
    """The value of field ``name``, or None when it holds its "unset" sentinel."""
    value = getattr(config, name)
    return None if value == SENTINELS[name] else value


class StockDataConfig(Config):
    """Where the daily bars come from: a synthetic GBM series, or a CSV of your own."""

    days: int = Field(
        default=500,
        description=(
            f"Business days of synthetic data per ticker (at least {MIN_ROWS_PER_TICKER}: "
            "50 for SMA_50 plus rows to train and test on). Ignored for a CSV."
        ),
    )
    seed: int = Field(default=42, description="Random seed of the synthetic series.")
    tickers: list[str] = Field(
        default=["SYNTH"],
        description="Synthetic tickers; each gets its own series seeded from (seed, ticker).",
    )
    csv_path: str = Field(
        default="",
        description=(
            "Path of a daily-bar CSV (Date, Open, High, Low, Close, Volume in any letter case; "
            "optional Ticker). Empty: generate synthetic data."
        ),
    )
    end_date: str = Field(
        default="",
        description="As-of date YYYY-MM-DD ending the window; empty: the days from 2023-01-01.",
    )

    @field_validator("days")
    @classmethod
    def _enough_days(cls, days: int) -> int:
        return check_days(days)

    @field_validator("seed")
    @classmethod
    def _valid_seed(cls, seed: int) -> int:
        return check_seed(seed)

    @field_validator("tickers")
    @classmethod
    def _valid_tickers(cls, tickers: list[str]) -> list[str]:
        return check_tickers(tickers)

    @field_validator("end_date")
    @classmethod
    def _iso_date(cls, end_date: str) -> str:
        if end_date != SENTINELS["end_date"]:
            check_end_date(end_date)
        return end_date


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
        description="Candidates compared when model_type='auto', as 'type: name=value, ...'.",
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
    n_estimators: int = Field(
        default=0, description="Trees (random_forest, gradient_boosting); 0: default 100."
    )
    max_depth: int = Field(
        default=0, description="Tree depth; 0: default (10 random_forest, 5 gradient_boosting)."
    )
    learning_rate: float = Field(
        default=0.0, description="gradient_boosting learning rate; 0: default 0.1."
    )
    C: float = Field(default=0.0, description="logistic inverse regularisation; 0: default 1.0.")
    max_iter: int = Field(default=0, description="logistic iterations; 0: default 1000.")
    random_state: int = Field(default=42, description="Random state of the classifiers.")

    @field_validator("model_type")
    @classmethod
    def _known_model(cls, model_type: str) -> str:
        return check_model_type(model_type, auto=True)

    @field_validator("candidates")
    @classmethod
    def _parseable_candidates(cls, candidates: list[str]) -> list[str]:
        parse_candidates(candidates)
        return candidates

    @field_validator("selection_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        return check_selection_metric(metric)

    @field_validator("cv_folds")
    @classmethod
    def _enough_folds(cls, folds: int) -> int:
        return check_cv_folds(folds)

    @field_validator("test_size")
    @classmethod
    def _open_unit_interval(cls, test_size: float) -> float:
        return check_test_size(test_size)

    @field_validator("n_estimators", "max_depth", "max_iter", "learning_rate", "C")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError(f"must be >= 0 (0 keeps the default), got {value}")
        return value

    @model_validator(mode="after")
    def _overrides_need_a_type(self) -> ModelConfig:
        if self.model_type == "auto":
            set_fields = [n for n in HYPERPARAMETER_FIELDS if optional(self, n) is not None]
            if set_fields:
                raise ValueError(
                    f"{', '.join(set_fields)} apply only when model_type names one type; with "
                    "model_type='auto' the candidates list sets the hyperparameters"
                )
        return self

    def hyperparameter_overrides(self) -> dict[str, float | int]:
        """The hyperparameters set explicitly that this model type accepts."""
        accepted = DEFAULT_HYPERPARAMETERS.get(self.model_type, {})
        return {n: optional(self, n) for n in accepted if optional(self, n) is not None}


class DeployDecisionConfig(Config):
    """The deploy gate: the threshold, then champion/challenger against production."""

    accuracy_threshold: float = Field(
        default=0.55, description="Minimum test accuracy to deploy, in [0, 1]."
    )
    challenge_production: bool = Field(
        default=True,
        description="Also require beating the production model on the same test window.",
    )

    @field_validator("accuracy_threshold")
    @classmethod
    def _unit_interval(cls, threshold: float) -> float:
        return check_accuracy_threshold(threshold)
