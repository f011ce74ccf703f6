"""Run configuration of the assets, with the seed's defaults.

Each field becomes a Dagster launchpad field and, through the KFP exporter, a pipeline parameter
of the same name, type and default.
"""

from __future__ import annotations

import datetime as dt

from dagster import Config
from pydantic import Field, field_validator

from stock_assets.core.data import MIN_ROWS_PER_TICKER
from stock_assets.core.training import MODEL_TYPES


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
    """The classifier and its time-ordered evaluation; unset hyperparameters keep the seed's."""

    model_type: str = Field(
        default="random_forest", description=f"One of {', '.join(MODEL_TYPES)}."
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
    random_state: int = Field(default=42, description="Random state of the classifier.")

    @field_validator("model_type")
    @classmethod
    def _known_model(cls, model_type: str) -> str:
        if model_type not in MODEL_TYPES:
            raise ValueError(
                f"model_type={model_type!r} is not supported; "
                f"choose one of {', '.join(MODEL_TYPES)}"
            )
        return model_type

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

    def hyperparameter_overrides(self) -> dict[str, float | int]:
        """The hyperparameters set explicitly (non-zero) for this model type."""
        names = {
            "random_forest": ("n_estimators", "max_depth"),
            "gradient_boosting": ("n_estimators", "max_depth", "learning_rate"),
            "logistic": ("C", "max_iter"),
        }[self.model_type]
        return {name: getattr(self, name) for name in names if getattr(self, name)}


class DeployDecisionConfig(Config):
    """The deploy gate."""

    accuracy_threshold: float = Field(
        default=0.55, description="Minimum test accuracy to deploy, in [0, 1]."
    )

    @field_validator("accuracy_threshold")
    @classmethod
    def _unit_interval(cls, threshold: float) -> float:
        if not 0 <= threshold <= 1:
            raise ValueError(f"accuracy_threshold={threshold} must lie in [0, 1]")
        return threshold
