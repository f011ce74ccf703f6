"""The deploy rule: the measured test accuracy against a threshold, then against production.

Pure: the production model's score comes in as a :class:`Champion`, computed by the caller.
The figures judged are the record's, not the stored value's: :func:`as_recorded` checks a
stored :class:`TrainedModel` against what MLflow logged for its registered version
(:class:`ModelRecord`) and refuses, naming the field, a value that disagrees.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from stock_assets.core.lineage import frame_digest
from stock_assets.core.splits import DATE_COLUMN, TICKER_COLUMN
from stock_assets.core.values import METRIC_DIGITS, Champion, Decision, TrainedModel

#: The metrics the deploy rule reads: the record must have logged both.
JUDGED_METRICS = ("accuracy", "baseline_accuracy")
#: The metrics a gate can judge by: the test accuracy, or the backtest's figures after costs.
GATE_METRICS = ("accuracy", "sharpe", "excess_return", "deflated_sharpe")
#: Each backtest metric's threshold when none is set (accuracy's is ``accuracy_threshold``):
#: an annual Sharpe of 0.5, any excess return over buy-and-hold, a 95 % deflated Sharpe.
DEFAULT_GATE_THRESHOLDS = {"sharpe": 0.5, "excess_return": 0.0, "deflated_sharpe": 0.95}


class RecordMismatch(ValueError):
    """A stored value that disagrees with the MLflow record (edited, damaged or stale)."""


@dataclass(frozen=True)
class ModelRecord:
    """What MLflow recorded for one registered version: its run's metrics and parameters."""

    version: str
    run_id: str  # the run the registry version was created from
    metrics: Mapping[str, float]  # the run's logged metrics, as logged (not rounded)
    params: Mapping[str, str]
    feature_columns: Sequence[str] | None = None  # the logged model's signature, if known
    test_digest: str | None = None  # content digest of the test rows (run tag test_digest)


def as_recorded(
    model: TrainedModel, record: ModelRecord, where: str, judged: Sequence[str] = JUDGED_METRICS
) -> TrainedModel:
    """``model`` with the record's metrics, if every field the rule reads agrees with it.

    ``where`` names the stored value (its file) in the one-line :class:`RecordMismatch`;
    ``judged`` are the metrics the record must have (the gate's among them).
    """

    def refuse(field: str, stored: object, recorded: object) -> RecordMismatch:
        return RecordMismatch(
            f"{where}: field {field!r} is {stored!r} but MLflow recorded {recorded!r} for "
            f"version {record.version} (run {record.run_id}); the stored value was edited "
            "or damaged, so nothing is deployed from it (materialise model again)"
        )

    if model.mlflow_run_id != record.run_id:
        raise refuse("mlflow_run_id", model.mlflow_run_id, record.run_id)
    for name in judged:
        if name not in record.metrics:
            raise RecordMismatch(
                f"{where}: MLflow run {record.run_id} of version {record.version} logged no "
                f"metric {name!r}; the deploy decision needs it"
            )
    metrics = {}
    for name, stored in {**dict.fromkeys(judged), **model.metrics}.items():
        recorded = record.metrics.get(name)
        if recorded is None:
            raise refuse(f"metrics.{name}", stored, None)
        metrics[name] = round(float(recorded), METRIC_DIGITS)
        if stored is None or float(stored) != metrics[name]:
            raise refuse(f"metrics.{name}", stored, metrics[name])
    for field, stored in (
        ("model_type", model.model_type),
        ("test_window", str(model.test_window)),
        ("train_window", str(model.train_window)),
        ("backtest_cost_bps", str(float(model.cost_bps))),
        ("backtest_long_short", str(bool(model.long_short))),
        ("n_trials", str(int(model.n_trials))),
    ):
        if field in record.params and record.params[field] != stored:
            raise refuse(field, stored, record.params[field])
    if record.feature_columns is not None and tuple(model.feature_columns) != tuple(
        record.feature_columns
    ):
        raise refuse("feature_columns", list(model.feature_columns), list(record.feature_columns))
    return dataclasses.replace(model, metrics=metrics)


def check_test_rows(test_rows: pd.DataFrame, record: ModelRecord, where: str) -> None:
    """Refuse test rows that are not the ones the record's model was tested on.

    The rows are put in the training split's order (date, then ticker) and digested as the
    ``model`` run digested its test window; production is scored on them, so rows that differ
    (an edited or newer ``features`` table) would make the comparison meaningless.
    """
    if record.test_digest is None:
        return
    keys = [test_rows[DATE_COLUMN].to_numpy()]
    if TICKER_COLUMN in test_rows.columns:
        keys.insert(0, pd.factorize(test_rows[TICKER_COLUMN].to_numpy(), sort=True)[0])
    digest = frame_digest(test_rows.take(np.lexsort(keys)))
    if digest != record.test_digest:
        raise RecordMismatch(
            f"{where}: its {len(test_rows)} labelled rows in the model's test window have digest "
            f"{digest}, but version {record.version} was tested on rows with digest "
            f"{record.test_digest} (MLflow run {record.run_id}); production is scored on "
            "these rows, so nothing is decided on other ones (materialise features* again)"
        )


def check_accuracy_threshold(threshold: float) -> float:
    """``threshold`` if it is a share of correct predictions, in [0, 1]."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"accuracy_threshold={threshold} must lie in [0, 1]")
    return threshold


def check_gate_metric(metric: str) -> str:
    """``metric`` if the deploy gate can judge by it (:data:`GATE_METRICS`)."""
    if metric not in GATE_METRICS:
        raise ValueError(f"gate_metric={metric!r}; choose one of {', '.join(GATE_METRICS)}")
    return metric


def check_gate_threshold(metric: str, threshold: float | None) -> float | None:
    """``threshold`` if it suits ``metric``: a share for accuracy and deflated_sharpe."""
    if threshold is None:
        return None
    if not math.isfinite(threshold):
        raise ValueError(f"gate_threshold={threshold} must be a finite number")
    if metric in ("accuracy", "deflated_sharpe") and not 0 <= threshold <= 1:
        raise ValueError(
            f"gate_threshold={threshold} for gate_metric={metric!r} must lie in [0, 1]"
        )
    return threshold


def gate_threshold(metric: str, accuracy_threshold: float, threshold: float | None) -> float:
    """The threshold the gate applies: the one set, else accuracy_threshold or the default."""
    if threshold is not None:
        return threshold
    return accuracy_threshold if metric == "accuracy" else DEFAULT_GATE_THRESHOLDS[metric]


def decide(
    model: TrainedModel,
    accuracy_threshold: float,
    champion: Champion,
    challenge_production: bool = True,
    gate_metric: str = "accuracy",
    threshold: float | None = None,
) -> Decision:
    """Deploy when the gate metric meets its threshold and, if asked, beats production.

    The gate metric is the test accuracy (default, against ``accuracy_threshold``) or a figure
    of the backtest on the same test window (``threshold``, else its default). Production is
    beaten only by a strictly higher value of the same metric on the same window, both at the
    precision metrics are stored with (:data:`METRIC_DIGITS`). With no production model, or one
    that could not be scored, only the threshold decides.
    """
    check_gate_metric(gate_metric)
    if gate_metric not in model.metrics:
        raise RecordMismatch(
            f"model version {model.registered_version} has no metric {gate_metric!r} (trained "
            f"before backtests were recorded); materialise model again to gate on it"
        )
    accuracy = float(model.metrics["accuracy"])
    value = float(model.metrics[gate_metric])
    bar = gate_threshold(gate_metric, accuracy_threshold, threshold)
    passes_threshold = value >= bar
    reasons = [
        f"test {gate_metric} {value:.4f} {'meets' if passes_threshold else 'is below'} "
        f"the threshold {bar:.4f}"
    ]
    theirs = champion.accuracy if gate_metric == "accuracy" else champion.gate_value
    named = "" if gate_metric == "accuracy" else f"{gate_metric} "
    beats_champion = True
    if challenge_production and theirs is not None:
        beats_champion = value > round(theirs, METRIC_DIGITS)
        reasons.append(
            f"{'beats' if beats_champion else 'does not beat'} production version "
            f"{champion.version} ({named}{theirs:.4f}) on the same test window"
        )
    elif not challenge_production:
        reasons.append("champion/challenger is off")
    elif champion.note:
        reasons.append(champion.note)
    return Decision(
        deploy=passes_threshold and beats_champion,
        passes_threshold=passes_threshold,
        accuracy=accuracy,
        baseline_accuracy=float(model.metrics["baseline_accuracy"]),
        accuracy_threshold=accuracy_threshold,
        champion_version=champion.version,
        champion_accuracy=champion.accuracy,
        reason="; ".join(reasons),
        model_type=model.model_type,
        model_uri=model.model_uri,
        registered_version=model.registered_version,
        gate_metric=gate_metric,
        gate_value=value,
        gate_threshold=bar,
        champion_gate_value=theirs,
    )
