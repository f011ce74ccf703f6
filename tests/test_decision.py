"""The deploy rule, decide(), as a plain function: threshold first, then champion/challenger."""

from __future__ import annotations

import datetime as dt

import pytest

from stock_assets.core.decision import (
    ModelRecord,
    RecordMismatch,
    as_recorded,
    check_gate_threshold,
    decide,
)
from stock_assets.core.values import Champion, DateWindow, TrainedModel

WINDOW = DateWindow(dt.date(2024, 1, 1), dt.date(2024, 3, 29))


def trained(accuracy: float) -> TrainedModel:
    return TrainedModel(
        model_type="logistic",
        hyperparameters={"C": 1.0, "max_iter": 1000},
        feature_columns=("SMA_5",),
        metrics={"accuracy": accuracy, "baseline_accuracy": 0.51},
        train_window=WINDOW,
        test_window=WINDOW,
        model_uri="models:/m-1",
        serving_model_uri="models:/m-2",
        registered_version="7",
        mlflow_run_id="run",
    )


@pytest.mark.parametrize(
    ("accuracy", "threshold", "deploy", "fragment"),
    [
        (0.60, 0.55, True, "test accuracy 0.6000 meets the threshold 0.5500"),
        (0.55, 0.55, True, "test accuracy 0.5500 meets"),  # the threshold itself passes
        (0.54, 0.55, False, "test accuracy 0.5400 is below the threshold 0.5500"),
    ],
)
def test_threshold_alone_decides_without_a_production_model(
    accuracy: float, threshold: float, deploy: bool, fragment: str
) -> None:
    first = Champion(note="no production model yet: nothing to beat")
    decision = decide(trained(accuracy), threshold, first)
    assert decision.deploy is deploy and decision.passes_threshold is deploy
    assert decision.reason.startswith(fragment)
    assert decision.reason.endswith("; no production model yet: nothing to beat")
    assert decision.champion_accuracy is None and decision.champion_version is None


@pytest.mark.parametrize(
    ("champion_accuracy", "deploy", "words"),
    [(0.58, True, "beats"), (0.60, False, "does not beat"), (0.70, False, "does not beat")],
)
def test_challenger_must_strictly_beat_production(
    champion_accuracy: float, deploy: bool, words: str
) -> None:
    decision = decide(trained(0.60), 0.5, Champion("3", champion_accuracy))
    assert decision.deploy is deploy
    assert decision.passes_threshold is True  # still staged: it passed the threshold
    assert decision.reason.endswith(
        f"; {words} production version 3 ({champion_accuracy:.4f}) on the same test window"
    )
    assert (decision.champion_version, decision.champion_accuracy) == ("3", champion_accuracy)


def test_an_equal_model_does_not_beat_production_by_rounding() -> None:
    """The model's stored accuracy keeps 6 digits; production's score, computed on the spot,
    is compared at the same precision (0.505556 against 91/180 = 0.50555...: equal)."""
    decision = decide(trained(round(91 / 180, 6)), 0.0, Champion("1", 91 / 180))
    assert decision.deploy is False and "does not beat production version 1" in decision.reason


def test_challenge_off_ignores_a_better_production_model() -> None:
    decision = decide(trained(0.60), 0.5, Champion("3", 0.9), challenge_production=False)
    assert decision.deploy is True
    assert decision.reason.endswith("; champion/challenger is off")
    assert decision.champion_accuracy == 0.9  # still recorded


def test_an_unscored_production_model_leaves_the_threshold_to_decide() -> None:
    note = "production version 3 could not be scored (no such file)"
    decision = decide(trained(0.40), 0.5, Champion("3", note=note))
    assert decision.deploy is False
    assert decision.reason == f"test accuracy 0.4000 is below the threshold 0.5000; {note}"


def test_the_decision_carries_what_promotion_needs() -> None:
    decision = decide(trained(0.6), 0.5, Champion())
    assert (decision.registered_version, decision.model_uri, decision.model_type) == (
        "7",
        "models:/m-1",
        "logistic",
    )
    assert (decision.accuracy, decision.baseline_accuracy, decision.accuracy_threshold) == (
        0.6,
        0.51,
        0.5,
    )


# as_recorded: the figures judged are the MLflow record's; a stored value that disagrees is refused

RECORD = ModelRecord(
    version="7",
    run_id="run",
    metrics={"accuracy": 0.4812345678, "baseline_accuracy": 0.51, "champion_accuracy": 0.7},
    params={"model_type": "logistic", "test_window": str(WINDOW), "train_window": str(WINDOW)},
    feature_columns=["SMA_5"],
)


def test_the_record_agrees_with_an_honest_value_and_its_figures_are_judged() -> None:
    honest = trained(round(0.4812345678, 6))
    checked = as_recorded(honest, RECORD, "stored model value /d/runs/r/model")
    assert checked.metrics == {"accuracy": 0.481235, "baseline_accuracy": 0.51}
    assert decide(checked, 0.45, Champion()).deploy is True


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"metrics": {"accuracy": 0.99, "baseline_accuracy": 0.51}}, "metrics.accuracy"),
        ({"metrics": {"accuracy": 0.481235}}, "metrics.baseline_accuracy"),
        ({"metrics": {"accuracy": 0.481235, "baseline_accuracy": 0.51, "f1": 1.0}}, "metrics.f1"),
        ({"mlflow_run_id": "other"}, "mlflow_run_id"),
        ({"model_type": "random_forest"}, "model_type"),
        ({"test_window": DateWindow(dt.date(2024, 1, 1), dt.date(2024, 1, 2))}, "test_window"),
        ({"feature_columns": ("RSI",)}, "feature_columns"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_stored_value_that_disagrees_with_the_record_is_refused(edit: dict, field: str) -> None:
    import dataclasses

    edited = dataclasses.replace(trained(0.481235), **edit)
    with pytest.raises(RecordMismatch) as raised:
        as_recorded(edited, RECORD, "stored model value /d/runs/r/model")
    message = str(raised.value)
    assert message.startswith(f"stored model value /d/runs/r/model: field '{field}' is ")
    assert "\n" not in message and "version 7 (run run)" in message


def test_a_record_without_the_judged_metric_is_refused() -> None:
    record = ModelRecord("7", "run", {"baseline_accuracy": 0.51}, {})
    with pytest.raises(RecordMismatch, match="logged no metric 'accuracy'"):
        as_recorded(trained(0.6), record, "stored model value x")


# the gate metric: the backtest's figures, judged like accuracy, production on the same metric


def signalled(sharpe: float, dsr: float) -> TrainedModel:
    import dataclasses

    model = trained(0.52)
    metrics = {**model.metrics, "sharpe": sharpe, "excess_return": 0.02, "deflated_sharpe": dsr}
    return dataclasses.replace(model, metrics=metrics)


@pytest.mark.parametrize(
    ("metric", "threshold", "deploy", "fragment"),
    [
        ("deflated_sharpe", None, True, "test deflated_sharpe 0.9700 meets the threshold 0.9500"),
        ("deflated_sharpe", 0.99, False, "test deflated_sharpe 0.9700 is below the threshold"),
        ("sharpe", None, True, "test sharpe 1.2000 meets the threshold 0.5000"),
        ("excess_return", 0.05, False, "test excess_return 0.0200 is below the threshold 0.05"),
    ],
)
def test_the_gate_metric_decides_with_its_threshold(
    metric: str, threshold: float | None, deploy: bool, fragment: str
) -> None:
    """Accuracy 0.52 is below the 0.55 accuracy threshold: only the gate metric counts."""
    decision = decide(signalled(1.2, 0.97), 0.55, Champion(), True, metric, threshold)
    assert decision.deploy is deploy and decision.reason.startswith(fragment)
    expected = signalled(1.2, 0.97).metrics[metric]
    assert (decision.gate_metric, decision.gate_value) == (metric, expected)
    assert decision.accuracy == 0.52  # still recorded


def test_production_is_compared_on_the_gate_metric_not_accuracy() -> None:
    """Production's accuracy is higher, its Sharpe lower: the Sharpe gate deploys."""
    champion = Champion("3", accuracy=0.70, gate_value=0.8)
    decision = decide(signalled(1.2, 0.97), 0.5, champion, True, "sharpe", 0.5)
    assert decision.deploy is True and decision.champion_gate_value == 0.8
    assert decision.reason.endswith(
        "beats production version 3 (sharpe 0.8000) on the same test window"
    )
    worse = decide(signalled(0.7, 0.97), 0.5, champion, True, "sharpe", 0.5)
    assert worse.deploy is False and "does not beat production version 3 (sharpe" in worse.reason


def test_a_model_without_the_gate_metric_is_refused_in_one_line() -> None:
    with pytest.raises(RecordMismatch, match="has no metric 'sharpe'"):
        decide(trained(0.6), 0.5, Champion(), True, "sharpe")
    with pytest.raises(ValueError, match=r"gate_threshold=1.5 for gate_metric='deflated_sharpe'"):
        check_gate_threshold("deflated_sharpe", 1.5)


def test_the_record_must_hold_the_gate_metric_and_the_backtest_settings() -> None:
    import dataclasses

    model = signalled(1.2, 0.97)
    with pytest.raises(RecordMismatch, match="logged no metric 'sharpe'"):
        as_recorded(model, RECORD, "stored model value x", ("accuracy", "sharpe"))
    record = dataclasses.replace(
        RECORD,
        metrics={**model.metrics},
        params={**RECORD.params, "backtest_cost_bps": "5.0", "n_trials": "5"},
    )
    assert as_recorded(dataclasses.replace(model, n_trials=5), record, "x").n_trials == 5
    with pytest.raises(RecordMismatch, match="field 'n_trials' is '1' but MLflow recorded '5'"):
        as_recorded(model, record, "x")
    with pytest.raises(RecordMismatch, match="field 'backtest_cost_bps' is '0.0'"):
        as_recorded(dataclasses.replace(model, cost_bps=0.0, n_trials=5), record, "x")
