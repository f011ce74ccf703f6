"""Config errors, caught by the Config classes themselves: no graph run needed."""

from __future__ import annotations

import pytest
from dagster import Failure
from pydantic import ValidationError

from stock_assets.defs.config import (
    HYPERPARAMETER_FIELDS,
    DeployDecisionConfig,
    ModelConfig,
    StockDataConfig,
)


@pytest.mark.parametrize(
    ("config_class", "fields", "fragments"),
    [
        (StockDataConfig, {"days": 10}, ["days=10 is too small", "60", "SMA_50"]),
        (StockDataConfig, {"seed": -1}, ["seed=-1", "[0, 2**32)"]),
        (StockDataConfig, {"tickers": []}, ["tickers", "at least one"]),
        (StockDataConfig, {"tickers": ["A", "A"]}, ["tickers", "duplicate", "'A'"]),
        (StockDataConfig, {"end_date": "27/11/2026"}, ["end_date='27/11/2026'", "YYYY-MM-DD"]),
        (ModelConfig, {"test_size": 1.5}, ["test_size=1.5", "strictly between 0 and 1"]),
        (
            ModelConfig,
            {"model_type": "svm"},
            ["model_type='svm'", "'auto' or one of random_forest, gradient_boosting, logistic"],
        ),
        (ModelConfig, {"candidates": ["svm: C=1"]}, ["candidate 'svm: C=1'", "logistic"]),
        (ModelConfig, {"candidates": []}, ["candidates is empty"]),
        (ModelConfig, {"selection_metric": "mse"}, ["selection_metric='mse'", "roc_auc"]),
        (ModelConfig, {"cv_folds": 1}, ["cv_folds=1 must be at least 2"]),
        (
            ModelConfig,
            {"model_type": "random_forest", "max_depth": -3},
            ["max_depth=-3", "positive"],
        ),
        (ModelConfig, {"model_type": "random_forest", "n_estimators": 0}, ["n_estimators=0"]),
        (ModelConfig, {"model_type": "logistic", "C": 0.0}, ["C=0.0 must be positive"]),
        (ModelConfig, {"n_estimators": 50}, ["n_estimators apply only when model_type"]),
        (DeployDecisionConfig, {"accuracy_threshold": 2.0}, ["accuracy_threshold=2.0", "[0, 1]"]),
    ],
)
def test_a_bad_value_names_the_field(config_class: type, fields: dict, fragments: list) -> None:
    """A Dagster Failure whose message starts with the field (a candidate for `candidates`)."""
    with pytest.raises(Failure) as error:
        config_class(**fields)
    message = error.value.description
    assert message.startswith(fragments[0]), message
    for fragment in fragments:
        assert fragment in message
    assert not error.value.allow_retries  # the same config would fail the same way


def test_a_wrong_type_stays_pydantic_s_own_error() -> None:
    """What the launchpad checks itself (the type) is not turned into a Failure."""
    with pytest.raises(ValidationError, match="days"):
        StockDataConfig(days="many")


def test_defaults_are_valid_and_unset_means_none() -> None:
    data, model = StockDataConfig(), ModelConfig()
    assert data.csv_path is None and data.end_date is None
    assert all(getattr(model, name) is None for name in HYPERPARAMETER_FIELDS)
    assert model.hyperparameter_overrides() == {}
    assert StockDataConfig(end_date="2026-11-27").end_date == "2026-11-27"
    assert DeployDecisionConfig(accuracy_threshold=0.0).accuracy_threshold == 0.0


def test_a_blank_path_or_date_reads_as_unset() -> None:
    """What the KFP UI sends for a cleared text field, and what these fields held before None."""
    data = StockDataConfig(csv_path="", end_date="  ")
    assert data.csv_path is None and data.end_date is None


def test_overrides_are_the_set_fields_this_model_type_takes() -> None:
    config = ModelConfig(model_type="logistic", C=0.5, max_depth=4)
    assert config.hyperparameter_overrides() == {"C": 0.5}  # max_depth is not logistic's
