"""Candidate parsing and walk-forward selection, as plain functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stock_assets.core.data import generate_gbm
from stock_assets.core.errors import TrainingError
from stock_assets.core.estimators import build_pipeline
from stock_assets.core.features import compute_features
from stock_assets.core.selection import (
    DEFAULT_CANDIDATES,
    REFERENCE_CANDIDATES,
    candidate_of,
    compare_candidates,
    parse_candidate,
    parse_candidates,
    plan_candidates,
    rank_scores,
    score_candidate,
    walk_forward_folds,
)
from stock_assets.core.splits import time_split
from stock_assets.core.values import CandidateScore


@pytest.fixture(scope="module")
def train_rows() -> pd.DataFrame:
    train, _ = time_split(compute_features(generate_gbm(days=300, tickers=["A", "B"])), 0.2)
    return train


def test_reference_grid_parses_with_defaults_filled_in() -> None:
    parsed = parse_candidates(REFERENCE_CANDIDATES)
    assert [c.model_type for c in parsed] == ["random_forest"] * 3 + ["gradient_boosting"] * 2 + [
        "logistic"
    ] * 2
    assert parsed[3].hyperparameters == {"n_estimators": 100, "max_depth": 5, "learning_rate": 0.1}
    assert parse_candidate("logistic").hyperparameters == {"C": 1.0, "max_iter": 1000}
    assert parse_candidate(parsed[0].label) == parsed[0]  # labels round-trip


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("svm: C=1", "random_forest, gradient_boosting, logistic, hist_gradient_boosting"),
        ("fast", "neither a preset (default, reference) nor a model type"),
        ("logistic: n_estimators=5", "n_estimators"),
        ("random_forest: max_depth", "name=value"),
        ("random_forest: max_depth=deep", "not a number"),
    ],
)
def test_bad_candidate_names_the_problem(spec: str, fragment: str) -> None:
    with pytest.raises(TrainingError, match="candidate") as error:
        parse_candidate(spec)
    assert fragment in str(error.value)


def test_empty_or_duplicate_candidates_are_errors() -> None:
    with pytest.raises(TrainingError, match="empty"):
        parse_candidates([])
    with pytest.raises(TrainingError, match="duplicates"):
        parse_candidates(["logistic", "logistic: C=1.0"])


def test_presets_name_the_default_and_the_reference_sets() -> None:
    assert parse_candidates(["reference"]) == parse_candidates(REFERENCE_CANDIDATES)
    assert parse_candidates([" default "]) == parse_candidates(DEFAULT_CANDIDATES)
    # the two logistic regressions both sets hold are compared once
    assert len(parse_candidates(["default", "reference"])) == 10
    with pytest.raises(TrainingError, match="duplicates"):
        parse_candidates(["default", "logistic: C=0.1, max_iter=1000"])


def test_the_default_set_bounds_each_fit() -> None:
    """Every default candidate's cost stops growing with the rows or grows linearly."""
    for candidate in parse_candidates(DEFAULT_CANDIDATES):
        classifier = build_pipeline(
            candidate.model_type, candidate.hyperparameters, n_rows=10**7
        ).named_steps["classifier"]
        name = type(classifier).__name__
        assert name in {
            "HistGradientBoostingClassifier",
            "LogisticRegression",
            "RandomForestClassifier",
        }
        if name == "HistGradientBoostingClassifier":
            assert classifier.early_stopping is True and classifier.max_iter <= 200
        if name == "RandomForestClassifier":
            assert classifier.max_samples == 20000 and classifier.n_estimators <= 50
    # a forest's whole-number max_samples is capped at the rows it is fitted on
    small = build_pipeline("random_forest", {"max_samples": 20000}, n_rows=300)
    assert small.named_steps["classifier"].max_samples == 300


def test_folds_move_forward_by_whole_dates(train_rows: pd.DataFrame) -> None:
    folds = walk_forward_folds(train_rows, 3)
    assert len(folds) == 3
    dates = train_rows["Date"].to_numpy()
    distinct = np.sort(np.unique(dates))
    for fit_idx, val_idx in folds:
        assert dates[fit_idx].max() < dates[val_idx].min()
        # one date between them: the last fit row's Target (next date's move) is not validated on
        gap = distinct[(distinct > dates[fit_idx].max()) & (distinct < dates[val_idx].min())]
        assert len(gap) == 1
        # both tickers of a date land on the same side
        assert not set(dates[fit_idx]) & set(dates[val_idx])
    sizes = [len(fit) for fit, _ in folds]
    assert sizes == sorted(sizes)


def test_ranking_is_by_the_metric_and_reproducible(train_rows: pd.DataFrame) -> None:
    candidates = parse_candidates(["logistic: C=0.1", "random_forest: n_estimators=20"])
    comparison = compare_candidates(train_rows, candidates, cv_folds=3, selection_metric="f1")
    table = comparison.table
    assert list(table["rank"]) == [1, 2]
    assert table["f1_mean"].iloc[0] >= table["f1_mean"].iloc[1]
    assert comparison.best.label == table["candidate"].iloc[0]
    assert comparison.best in candidates
    again = compare_candidates(train_rows, candidates, cv_folds=3, selection_metric="f1", n_jobs=1)
    pd.testing.assert_frame_equal(table, again.table)
    assert np.all((table["accuracy_mean"] >= 0) & (table["accuracy_mean"] <= 1))


def _choose(
    train_rows: pd.DataFrame,
    model_type: str,
    specs: list[str],
    overrides: dict | None = None,
    cv_folds: int = 3,
):
    """The model asset's path as plain calls: plan, score each plan, rank the scores."""
    scores = [
        CandidateScore(
            plan,
            tuple(score_candidate(train_rows, candidate_of(plan), plan.cv_folds))
            if plan.compare
            else (),
            0.0,
        )
        for plan in plan_candidates(model_type, specs, overrides, cv_folds=cv_folds)
    ]
    return rank_scores(scores)


def test_a_comparison_only_for_auto(train_rows: pd.DataFrame) -> None:
    chosen, comparison = _choose(
        train_rows, "gradient_boosting", DEFAULT_CANDIDATES, {"n_estimators": 7}
    )
    assert comparison is None
    assert chosen.hyperparameters == {"n_estimators": 7, "max_depth": 5, "learning_rate": 0.1}
    specs = ["logistic: C=0.1, max_iter=1000", "logistic: C=1.0, max_iter=1000"]
    chosen, comparison = _choose(train_rows, "auto", specs, cv_folds=2)
    assert comparison is not None and chosen == comparison.best
    assert chosen.label in specs


def test_too_few_dates_for_the_folds(train_rows: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match="cv_folds=500"):
        compare_candidates(train_rows, parse_candidates(["logistic"]), cv_folds=500)


def test_a_single_class_fold_is_named(train_rows: pd.DataFrame) -> None:
    rows = train_rows.copy()
    first_dates = rows["Date"] <= rows["Date"].sort_values().iloc[len(rows) // 3]
    rows.loc[first_dates, "Target"] = 1  # the first fold's fit rows are all "up"
    with pytest.raises(TrainingError, match="walk-forward fold has a single class"):
        compare_candidates(rows, parse_candidates(["logistic"]), cv_folds=3)


def test_fan_out_pieces_equal_the_one_call_comparison(train_rows: pd.DataFrame) -> None:
    """plan -> score each -> rank_scores chooses what compare_candidates chooses, equally scored."""
    specs = ["logistic: C=0.1", "hist_gradient_boosting: max_iter=20", "random_forest: max_depth=3"]
    plans = plan_candidates("auto", specs, cv_folds=3, selection_metric="f1")
    assert [p.mapping_key for p in plans] == [
        "c0_logistic",
        "c1_hist_gradient_boosting",
        "c2_random_forest",
    ]
    scores = [
        CandidateScore(plan, tuple(score_candidate(train_rows, parse_candidate(plan.label))), 0.0)
        for plan in reversed(plans)  # collected in any order
    ]
    chosen, comparison = rank_scores(scores)
    whole = compare_candidates(train_rows, parse_candidates(specs), 3, "f1")
    assert comparison is not None and chosen == whole.best
    pd.testing.assert_frame_equal(comparison.table, whole.table)


def test_rank_scores_refuses_an_incomplete_or_mixed_set(train_rows: pd.DataFrame) -> None:
    plans = plan_candidates("auto", ["logistic: C=0.1", "logistic: C=1.0"], cv_folds=2)
    folds = tuple(score_candidate(train_rows, parse_candidate(plans[0].label), cv_folds=2))
    with pytest.raises(TrainingError, match=r"expected the scores of candidates \[0, 1\]"):
        rank_scores([CandidateScore(plans[0], folds, 0.0)])
    other = plan_candidates("auto", ["logistic: C=0.1", "logistic: C=1.0"], cv_folds=3)[1]
    with pytest.raises(TrainingError, match="scored with other settings"):
        rank_scores([CandidateScore(plans[0], folds, 0.0), CandidateScore(other, folds, 0.0)])


def test_a_named_type_is_one_plan_without_comparison() -> None:
    (plan,) = plan_candidates("random_forest", ["default"], {"n_estimators": 7})
    assert not plan.compare and plan.hyperparameters == {"n_estimators": 7, "max_depth": 10}
    chosen, comparison = rank_scores([CandidateScore(plan, (), 0.0)])
    assert comparison is None and chosen.hyperparameters == plan.hyperparameters


@pytest.mark.parametrize("embargo", [1, 5])
def test_the_embargo_is_the_dates_purged_between_fit_and_validation(
    train_rows: pd.DataFrame, embargo: int
) -> None:
    dates = train_rows["Date"].to_numpy()
    distinct = np.sort(np.unique(dates))
    for fit_idx, val_idx in walk_forward_folds(train_rows, 3, embargo):
        gap = distinct[(distinct > dates[fit_idx].max()) & (distinct < dates[val_idx].min())]
        assert len(gap) == embargo


def test_an_embargo_shorter_than_the_label_is_refused(train_rows: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match=r"^embargo=0 must be a whole number of dates >= 1"):
        walk_forward_folds(train_rows, 3, 0)
    n_dates = train_rows["Date"].nunique()
    with pytest.raises(TrainingError, match=f"needs at least {n_dates + 1} training dates"):
        walk_forward_folds(train_rows, 3, n_dates - 3)
    plans = plan_candidates("auto", ["logistic"], embargo=4, cost_bps=2.0, long_short=True)
    assert (plans[0].embargo, plans[0].cost_bps, plans[0].long_short) == (4, 2.0, True)
