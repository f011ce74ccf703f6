"""Config errors, caught by the Config classes themselves: no graph run needed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stock_assets.defs.config import (
    DeployDecisionConfig,
    ModelConfig,
    StockDataConfig,
    optional,
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
        (ModelConfig, {"max_depth": -3}, ["max_depth", ">= 0"]),
        (ModelConfig, {"n_estimators": 50}, ["n_estimators apply only when model_type"]),
        (DeployDecisionConfig, {"accuracy_threshold": 2.0}, ["accuracy_threshold=2.0", "[0, 1]"]),
    ],
)
def test_a_bad_value_names_the_field(config_class: type, fields: dict, fragments: list) -> None:
    with pytest.raises(ValidationError) as error:
        config_class(**fields)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_defaults_are_valid_and_unset_means_none() -> None:
    data, model = StockDataConfig(), ModelConfig()
    assert optional(data, "csv_path") is None and optional(data, "end_date") is None
    assert model.hyperparameter_overrides() == {}
    assert StockDataConfig(end_date="2026-11-27").end_date == "2026-11-27"
    assert DeployDecisionConfig(accuracy_threshold=0.0).accuracy_threshold == 0.0


def test_overrides_are_the_set_fields_this_model_type_takes() -> None:
    config = ModelConfig(model_type="logistic", C=0.5, max_depth=4)
    assert config.hyperparameter_overrides() == {"C": 0.5}  # max_depth is not logistic's
