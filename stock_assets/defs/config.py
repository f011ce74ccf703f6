"""Run configuration of the assets, with the seed's defaults.

Each field becomes a Dagster launchpad field and, through the KFP exporter, a pipeline parameter
of the same name, type and default.
"""

from __future__ import annotations

import datetime as dt

from dagster import Config
from pydantic import Field, field_validator, model_validator

from stock_assets.core.data import MIN_ROWS_PER_TICKER
from stock_assets.core.selection import DEFAULT_CANDIDATES, SELECTION_METRICS, parse_candidates
from stock_assets.core.training import DEFAULT_HYPERPARAMETERS, MODEL_TYPES, TrainingError

HYPERPARAMETER_FIELDS = ("n_estimators", "max_depth", "learning_rate", "C", "max_iter")


class StockDataConfig(Config):
    """Where the daily bars come from: the seed's synthetic GBM, or a CSV of your own."""

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
        description="As-of date YYYY-MM-DD ending the window; empty: the seed's window from 2023.",
    )

    @field_validator("days")
    @classmethod
    def _enough_days(cls, days: int) -> int:
        if days < MIN_ROWS_PER_TICKER:
            raise ValueError(
                f"days={days} is too small: the 50-day SMA needs at least "
                f"{MIN_ROWS_PER_TICKER} business days per ticker"
            )
        return days

    @field_validator("tickers")
    @classmethod
    def _valid_tickers(cls, tickers: list[str]) -> list[str]:
        if not tickers or any(not t.strip() for t in tickers):
            raise ValueError("tickers must be a non-empty list of non-blank symbols")
        if len(set(tickers)) != len(tickers):
            raise ValueError(f"tickers has duplicates: {tickers}")
        return tickers

    @field_validator("end_date")
    @classmethod
    def _iso_date(cls, end_date: str) -> str:
        if end_date:
            try:
                dt.date.fromisoformat(end_date)
            except ValueError as error:
                raise ValueError(f"end_date={end_date!r} is not a YYYY-MM-DD date") from error
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
        default=0, description="Trees (random_forest, gradient_boosting); 0: seed's 100."
    )
    max_depth: int = Field(
        default=0, description="Tree depth; 0: seed's (10 random_forest, 5 gradient_boosting)."
    )
    learning_rate: float = Field(
        default=0.0, description="gradient_boosting learning rate; 0: seed's 0.1."
    )
    C: float = Field(default=0.0, description="logistic inverse regularisation; 0: seed's 1.0.")
    max_iter: int = Field(default=0, description="logistic iterations; 0: seed's 1000.")
    random_state: int = Field(default=42, description="Random state of the classifiers.")

    @field_validator("model_type")
    @classmethod
    def _known_model(cls, model_type: str) -> str:
        if model_type != "auto" and model_type not in MODEL_TYPES:
            raise ValueError(
                f"model_type={model_type!r} is not supported; "
                f"choose 'auto' or one of {', '.join(MODEL_TYPES)}"
            )
        return model_type

    @field_validator("candidates")
    @classmethod
    def _parseable_candidates(cls, candidates: list[str]) -> list[str]:
        try:
            parse_candidates(candidates)
        except TrainingError as error:
            raise ValueError(str(error)) from error
        return candidates

    @field_validator("selection_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in SELECTION_METRICS:
            raise ValueError(
                f"selection_metric={metric!r}; choose one of {', '.join(SELECTION_METRICS)}"
            )
        return metric

    @field_validator("cv_folds")
    @classmethod
    def _enough_folds(cls, folds: int) -> int:
        if folds < 2:
            raise ValueError(f"cv_folds={folds} must be at least 2")
        return folds

    @field_validator("test_size")
    @classmethod
    def _open_unit_interval(cls, test_size: float) -> float:
        if not 0 < test_size < 1:
            raise ValueError(f"test_size={test_size} must lie strictly between 0 and 1")
        return test_size

    @field_validator("n_estimators", "max_depth", "max_iter", "learning_rate", "C")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError(f"must be >= 0 (0 keeps the seed's default), got {value}")
        return value

    @model_validator(mode="after")
    def _overrides_need_a_type(self) -> ModelConfig:
        if self.model_type == "auto":
            set_fields = [name for name in HYPERPARAMETER_FIELDS if getattr(self, name)]
            if set_fields:
                raise ValueError(
                    f"{', '.join(set_fields)} apply only when model_type names one type; with "
                    "model_type='auto' the candidates list sets the hyperparameters"
                )
        return self

    def hyperparameter_overrides(self) -> dict[str, float | int]:
        """The hyperparameters set explicitly (non-zero) that this model type accepts."""
        accepted = DEFAULT_HYPERPARAMETERS.get(self.model_type, {})
        return {name: getattr(self, name) for name in accepted if getattr(self, name)}


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
        if not 0 <= threshold <= 1:
            raise ValueError(f"accuracy_threshold={threshold} must lie in [0, 1]")
        return threshold
