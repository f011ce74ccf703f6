"""The values that cross asset boundaries, as small frozen dataclasses.

A reader sees what flows from one asset to the next, and a misspelt field fails at once. The
IO manager stores them as JSON with their type name and reads them back only into these
classes (:data:`VALUE_TYPES`); no pickle. The fitted estimator is not part of any value: it
lives in MLflow (skops-serialised) and is loaded from ``TrainedModel.model_uri`` when needed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

#: Decimal digits a stored metric keeps (``TrainedModel.metrics``); scores compared with them
#: are rounded alike, so a model never "beats" its own equal by a rounding difference.
METRIC_DIGITS = 6


@dataclass(frozen=True)
class DateWindow:
    """The first and last date of a set of rows, both included."""

    first: dt.date
    last: dt.date

    @classmethod
    def of(cls, dates: pd.Series) -> DateWindow:
        """The window spanned by ``dates``."""
        return cls(pd.Timestamp(dates.min()).date(), pd.Timestamp(dates.max()).date())

    def contains(self, dates: pd.Series) -> pd.Series:
        """Which of ``dates`` fall within the window."""
        return dates.between(pd.Timestamp(self.first), pd.Timestamp(self.last))

    def __str__(self) -> str:
        return f"{self.first:%Y-%m-%d}..{self.last:%Y-%m-%d}"


@dataclass(frozen=True)
class CandidatePlan:
    """One candidate of the ``model`` asset's fan-out, with the settings every step shares.

    ``compare`` is False when ``model_type`` names one type: then the single plan is trained
    as it is, without walk-forward scores.
    """

    order: int  # position in the candidates list: ties go to the earlier one
    n_candidates: int
    label: str
    model_type: str
    hyperparameters: dict[str, int | float]
    compare: bool
    test_size: float
    cv_folds: int
    selection_metric: str
    random_state: int
    embargo: int = 1  # dates left out between each fold's fit and validation blocks
    cost_bps: float = 5.0  # the backtest's costs, basis points per unit of turnover
    long_short: bool = False  # the backtest shorts when the model says down (else flat)

    @property
    def mapping_key(self) -> str:
        """The Dagster mapping key (and KFP iteration label): ``c<order>_<model type>``."""
        return f"c{self.order}_{self.model_type}"


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's walk-forward validation scores, one dict of metrics per fold."""

    plan: CandidatePlan
    folds: tuple[dict[str, float], ...]  # empty when plan.compare is False
    fit_seconds: float


@dataclass(frozen=True)
class TrainedModel:
    """The ``model`` asset: the chosen classifier, tested on its window, logged and registered."""

    model_type: str
    hyperparameters: dict[str, int | float]
    feature_columns: tuple[str, ...]
    metrics: dict[str, float]  # test-window metrics, baseline_accuracy included
    train_window: DateWindow
    test_window: DateWindow  # the rows deploy_decision scores the production model on
    model_uri: str  # the sklearn-flavour model (skops)
    serving_model_uri: str  # the pyfunc the registry version points at
    registered_version: str
    mlflow_run_id: str
    # the backtest's settings (its figures are in ``metrics``, logged to the same run)
    cost_bps: float = 5.0
    long_short: bool = False
    n_trials: int = 1  # candidates compared: the deflated Sharpe ratio's number of trials


@dataclass(frozen=True)
class Champion:
    """The production model, scored on the challenger's test window."""

    version: str | None = None  # None: no production model yet
    accuracy: float | None = None  # None: not scored (see note)
    note: str = ""
    gate_value: float | None = None  # the gate metric on the same window, when not accuracy


@dataclass(frozen=True)
class Decision:
    """The ``deploy_decision`` asset: deploy or not, with the figures and the reason."""

    deploy: bool
    passes_threshold: bool
    accuracy: float
    baseline_accuracy: float
    accuracy_threshold: float
    champion_version: str | None
    champion_accuracy: float | None
    reason: str
    model_type: str
    model_uri: str
    registered_version: str
    gate_metric: str = "accuracy"  # the metric that decided
    gate_value: float | None = None  # its value for the model
    gate_threshold: float | None = None
    champion_gate_value: float | None = None  # its value for production, same window


@dataclass(frozen=True)
class Promotion:
    """The ``deployed_model`` asset: where the registry's ``production`` alias now points."""

    name: str
    version: str
    alias: str
    previous_production_version: str | None
    changed: bool
    model_uri: str


#: The closed set of classes a stored value may be read back into.
VALUE_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        DateWindow,
        CandidatePlan,
        CandidateScore,
        TrainedModel,
        Champion,
        Decision,
        Promotion,
    )
}
