"""Choosing among candidate models without touching the final test window.

Candidates are short strings a person can read and edit in the Dagster launchpad or the KFP UI,
``"random_forest: n_estimators=50, max_depth=5"``. Each is scored by walk-forward validation
(scikit-learn's ``TimeSeriesSplit`` over the distinct dates of the *training* window): fit on
the earlier dates, score on the next block, several times. The final test window is never seen
here; it judges only the chosen model, later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from stock_assets.core.errors import TrainingError
from stock_assets.core.estimators import (
    DEFAULT_RANDOM_STATE,
    MODEL_TYPES,
    build_pipeline,
    resolve_hyperparameters,
)
from stock_assets.core.evaluation import check_both_classes, evaluate, majority_class
from stock_assets.core.features import FEATURE_COLUMNS, TARGET_COLUMN
from stock_assets.core.values import CandidatePlan, CandidateScore

#: The default set: its cost grows at most linearly with the rows and each fit is bounded
#: (histogram boosting stops early; each forest tree draws at most 20,000 rows), so a nightly
#: run over 500 tickers x 10 years ends in minutes on one machine (README, "Scale").
DEFAULT_CANDIDATES = [
    "hist_gradient_boosting: max_iter=200, learning_rate=0.1, max_leaf_nodes=31",
    "hist_gradient_boosting: max_iter=200, learning_rate=0.05, max_leaf_nodes=15, "
    "l2_regularization=1.0",
    "logistic: C=0.1, max_iter=1000",
    "logistic: C=1.0, max_iter=1000",
    "random_forest: n_estimators=50, max_depth=8, max_samples=20000",
]
#: The reference pipeline's ``compare_models`` grid: its cost grows with the rows times the
#: trees (200 trees of depth 15, two exact gradient boostings), hours at 500 tickers.
REFERENCE_CANDIDATES = [
    "random_forest: n_estimators=50, max_depth=5",
    "random_forest: n_estimators=100, max_depth=10",
    "random_forest: n_estimators=200, max_depth=15",
    "gradient_boosting: n_estimators=100, learning_rate=0.1",
    "gradient_boosting: n_estimators=100, learning_rate=0.05",
    "logistic: C=0.1, max_iter=1000",
    "logistic: C=1.0, max_iter=1000",
]
#: Names that stand for a whole set in the ``candidates`` list.
CANDIDATE_PRESETS: dict[str, list[str]] = {
    "default": DEFAULT_CANDIDATES,
    "reference": REFERENCE_CANDIDATES,
}
SELECTION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
#: Dates a row's label looks ahead: the Target compares the next date's close with today's.
LABEL_HORIZON = 1


@dataclass(frozen=True)
class Candidate:
    """One model configuration to compare."""

    model_type: str
    hyperparameters: dict[str, Any]

    @property
    def label(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.hyperparameters.items())
        return f"{self.model_type}: {params}" if params else self.model_type


@dataclass(frozen=True)
class Comparison:
    """The walk-forward scores of every candidate, ranked, and the best candidate."""

    table: pd.DataFrame  # one row per candidate: rank, candidate, model_type, <metric>_mean/_std
    best: Candidate


def check_selection_metric(metric: str) -> str:
    """``metric`` if candidates can be ranked by it."""
    if metric not in SELECTION_METRICS:
        raise TrainingError(
            f"selection_metric={metric!r}; choose one of {', '.join(SELECTION_METRICS)}"
        )
    return metric


def check_cv_folds(folds: int) -> int:
    """``folds`` if walk-forward validation can use it (at least 2 folds)."""
    if folds < 2:
        raise TrainingError(f"cv_folds={folds} must be at least 2")
    return folds


def check_embargo(embargo: int) -> int:
    """``embargo`` if it is at least the label horizon: the Target is the next date's move."""
    if isinstance(embargo, bool) or not isinstance(embargo, int) or embargo < LABEL_HORIZON:
        raise TrainingError(
            f"embargo={embargo!r} must be a whole number of dates >= {LABEL_HORIZON} (the "
            "label horizon: a row's Target is the next date's close)"
        )
    return embargo


def parse_candidate(spec: str) -> Candidate:
    """``"logistic: C=0.1, max_iter=1000"`` → Candidate; unset hyperparameters keep defaults."""
    model_type, colon, rest = spec.partition(":")
    model_type = model_type.strip()
    if not colon and model_type not in MODEL_TYPES:
        raise TrainingError(
            f"candidate {spec!r} is neither a preset ({', '.join(CANDIDATE_PRESETS)}) nor a "
            f"model type ({', '.join(MODEL_TYPES)}); write e.g. "
            "'random_forest: n_estimators=50, max_depth=5'"
        )
    overrides: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        name, equals, raw = item.partition("=")
        if not equals or not name.strip() or not raw.strip():
            raise TrainingError(
                f"candidate {spec!r}: {item!r} is not name=value; expected e.g. "
                "'random_forest: n_estimators=50, max_depth=5'"
            )
        overrides[name.strip()] = _number(raw.strip(), spec)
    try:
        resolved = resolve_hyperparameters(model_type, overrides)
    except TrainingError as error:
        raise TrainingError(f"candidate {spec!r}: {error}") from error
    return Candidate(model_type, resolved)


def expand_presets(specs: Sequence[str]) -> list[str]:
    """``specs`` with each preset name (``default``, ``reference``) replaced by its set.

    A configuration two presets share is kept once, so ``["default", "reference"]`` works.
    """
    expanded: list[str] = []
    for spec in specs:
        preset = CANDIDATE_PRESETS.get(spec.strip())
        if preset is None:
            expanded.append(spec)
        else:
            expanded.extend(item for item in preset if item not in expanded)
    return expanded


def parse_candidates(specs: Sequence[str]) -> list[Candidate]:
    """Parse every spec, presets expanded; an empty list or a duplicate is an error."""
    if not specs:
        raise TrainingError(
            f"candidates is empty; list a preset ({', '.join(CANDIDATE_PRESETS)}) or at least "
            f"one of {', '.join(MODEL_TYPES)}"
        )
    parsed = [parse_candidate(spec) for spec in expand_presets(specs)]
    labels = [c.label for c in parsed]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise TrainingError(f"candidates has duplicates: {duplicates}")
    return parsed


def walk_forward_folds(
    train_rows: pd.DataFrame, n_splits: int, embargo: int = LABEL_HORIZON
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``TimeSeriesSplit`` over distinct dates: (fit rows, validation rows) index arrays.

    ``embargo`` dates separate each fit block from its validation block (``gap``), at least the
    label horizon: a row's Target is the next date's move, so the last fit date's label would
    otherwise be a validation date's price (purged); a longer embargo also keeps the validation
    rows' look-back features (up to 50 dates) from sharing the fit block's last prices.
    """
    from sklearn.model_selection import TimeSeriesSplit

    check_embargo(embargo)
    dates = np.sort(train_rows["Date"].unique())
    needed = n_splits + 1 + embargo
    if len(dates) < needed:
        raise TrainingError(
            f"walk-forward validation with cv_folds={n_splits} and embargo={embargo} needs at "
            f"least {needed} training dates, got {len(dates)}; lower cv_folds or embargo or "
            "provide more history"
        )
    row_dates = train_rows["Date"].to_numpy()
    folds = []
    for fit_idx, val_idx in TimeSeriesSplit(n_splits=n_splits, gap=embargo).split(dates):
        fit_rows = np.flatnonzero(np.isin(row_dates, dates[fit_idx]))
        val_rows = np.flatnonzero(np.isin(row_dates, dates[val_idx]))
        folds.append((fit_rows, val_rows))
    return folds


def checked_folds(
    train_rows: pd.DataFrame, cv_folds: int, embargo: int = LABEL_HORIZON
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The walk-forward folds, each fit block checked to hold both classes."""
    y = train_rows[TARGET_COLUMN].to_numpy().astype(int)
    folds = walk_forward_folds(train_rows, cv_folds, embargo)
    for fit_idx, _ in folds:
        check_both_classes(y[fit_idx], "training target of a walk-forward fold")
    return folds


def _contiguous(rows: np.ndarray) -> np.ndarray | slice:
    """``rows`` as a slice when they are consecutive (indexing by it copies nothing)."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def score_candidate(
    train_rows: pd.DataFrame,
    candidate: Candidate,
    cv_folds: int = 3,
    random_state: int = DEFAULT_RANDOM_STATE,
    feature_columns: Sequence[str] = FEATURE_COLUMNS,
    n_jobs: int = 2,
    embargo: int = LABEL_HORIZON,
) -> list[dict[str, float]]:
    """One candidate's metrics on each walk-forward fold of ``train_rows``, earliest first."""
    columns = list(feature_columns)
    X = train_rows[columns].to_numpy(dtype="float64")
    y = train_rows[TARGET_COLUMN].to_numpy().astype(int)
    # rows sorted by date make each block contiguous: slices are views, not copies of X
    blocks = checked_folds(train_rows, cv_folds, embargo)
    folds = [(_contiguous(f), _contiguous(v)) for f, v in blocks]

    def score(fit_idx: np.ndarray | slice, val_idx: np.ndarray | slice) -> dict[str, float]:
        pipeline = build_pipeline(
            candidate.model_type, candidate.hyperparameters, random_state, n_rows=len(y[fit_idx])
        )
        pipeline.fit(pd.DataFrame(X[fit_idx], columns=columns), y[fit_idx])
        X_val = pd.DataFrame(X[val_idx], columns=columns)
        proba = pipeline.predict_proba(X_val)[:, list(pipeline.classes_).index(1)]
        baseline = majority_class(y[fit_idx])
        return evaluate(y[val_idx], pipeline.predict(X_val), proba, baseline_class=baseline)

    # scikit-learn's tree and linear fits release the GIL: threads use both cores, and each fit
    # has its own random_state, so the scores do not depend on the scheduling.
    return list(Parallel(n_jobs=n_jobs, prefer="threads")(delayed(score)(*f) for f in folds))


def rank_candidates(
    candidates: Sequence[Candidate],
    fold_scores: Sequence[Sequence[Mapping[str, float]]],
    selection_metric: str = "accuracy",
) -> Comparison:
    """Rank candidates by their mean fold ``selection_metric``: one row each, best first.

    ``fold_scores[i]`` are the folds of ``candidates[i]``. The row with ``rank == 1`` is the
    best (ties: the one listed first wins).
    """
    check_selection_metric(selection_metric)
    rows = []
    for order, (candidate, folds) in enumerate(zip(candidates, fold_scores, strict=True)):
        folds_frame = pd.DataFrame(list(folds))
        row: dict[str, Any] = {
            "candidate": candidate.label,
            "model_type": candidate.model_type,
            "order": order,
        }
        for metric in [*SELECTION_METRICS, "baseline_accuracy"]:
            if metric in folds_frame:
                row[f"{metric}_mean"] = float(folds_frame[metric].mean())
                row[f"{metric}_std"] = float(folds_frame[metric].std(ddof=0))
        rows.append(row)
    table = pd.DataFrame(rows)
    key = f"{selection_metric}_mean"
    if key not in table:
        raise TrainingError(f"no candidate produced {selection_metric!r} on the validation folds")
    ranked = table.sort_values([key, "order"], ascending=[False, True], kind="stable")
    table["rank"] = 0
    table.loc[ranked.index, "rank"] = np.arange(1, len(table) + 1)
    best = candidates[int(ranked["order"].iloc[0])]
    table = table.drop(columns="order").sort_values("rank", kind="stable").reset_index(drop=True)
    return Comparison(table=table, best=best)


def compare_candidates(
    train_rows: pd.DataFrame,
    candidates: Sequence[Candidate],
    cv_folds: int = 3,
    selection_metric: str = "accuracy",
    random_state: int = DEFAULT_RANDOM_STATE,
    feature_columns: Sequence[str] = FEATURE_COLUMNS,
    n_jobs: int = 2,
    embargo: int = LABEL_HORIZON,
) -> Comparison:
    """Every candidate scored (:func:`score_candidate`) then ranked (:func:`rank_candidates`).

    The ``model`` asset runs the same two steps as separate units of work, one per candidate.
    """
    check_selection_metric(selection_metric)
    fold_scores = [
        score_candidate(train_rows, c, cv_folds, random_state, feature_columns, n_jobs, embargo)
        for c in candidates
    ]
    return rank_candidates(candidates, fold_scores, selection_metric)


def plan_candidates(
    model_type: str,
    candidates: Sequence[str],
    overrides: Mapping[str, Any] | None = None,
    test_size: float = 0.2,
    cv_folds: int = 3,
    selection_metric: str = "accuracy",
    random_state: int = DEFAULT_RANDOM_STATE,
    embargo: int = LABEL_HORIZON,
    cost_bps: float = 5.0,
    long_short: bool = False,
) -> list[CandidatePlan]:
    """What the ``model`` asset fans out: every candidate with ``model_type="auto"``, else the
    one named type with ``overrides`` on its defaults (trained without a comparison)."""
    check_selection_metric(selection_metric)
    check_cv_folds(cv_folds)
    check_embargo(embargo)
    compare = model_type == "auto"
    chosen = (
        parse_candidates(candidates)
        if compare
        else [Candidate(model_type, resolve_hyperparameters(model_type, overrides))]
    )
    return [
        CandidatePlan(
            order=order,
            n_candidates=len(chosen),
            label=candidate.label,
            model_type=candidate.model_type,
            hyperparameters=dict(candidate.hyperparameters),
            compare=compare,
            test_size=test_size,
            cv_folds=cv_folds,
            selection_metric=selection_metric,
            random_state=random_state,
            embargo=embargo,
            cost_bps=cost_bps,
            long_short=long_short,
        )
        for order, candidate in enumerate(chosen)
    ]


def candidate_of(plan: CandidatePlan) -> Candidate:
    """The candidate a plan describes."""
    return Candidate(plan.model_type, dict(plan.hyperparameters))


def rank_scores(scores: Sequence[CandidateScore]) -> tuple[Candidate, Comparison | None]:
    """The candidate to train from the fan-out's collected scores, and the comparison (if any).

    The scores must be one run's complete set: the same settings, every order exactly once.
    """
    if not scores:
        raise TrainingError("no candidate scores to choose from")
    ordered = sorted(scores, key=lambda score: score.plan.order)
    first = ordered[0].plan
    expected = list(range(first.n_candidates))
    if [s.plan.order for s in ordered] != expected:
        raise TrainingError(
            f"expected the scores of candidates {expected}, got "
            f"{[s.plan.order for s in ordered]}; every candidate must be scored once"
        )
    shared: tuple[str, ...] = ("compare", "test_size", "cv_folds", "selection_metric")
    shared += ("random_state", "embargo", "cost_bps", "long_short")
    for score in ordered:
        if any(getattr(score.plan, f) != getattr(first, f) for f in shared):
            raise TrainingError(f"candidate {score.plan.label!r} was scored with other settings")
    if not first.compare:
        return candidate_of(first), None
    candidates = [candidate_of(s.plan) for s in ordered]
    comparison = rank_candidates(candidates, [s.folds for s in ordered], first.selection_metric)
    return comparison.best, comparison


def _number(raw: str, spec: str) -> int | float:
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            raise TrainingError(f"candidate {spec!r}: {raw!r} is not a number") from None
