"""How much history training needs: the one statement of the minimum rows per ticker.

The ``stock_data`` asset checks its bars against the default model settings (the stated
minimum, ``TRAINING_ROWS_PER_TICKER``) and ``plan_candidates`` the features against the run's
own settings, so that a short history fails the first step, saying what to do, instead of a
walk-forward fold of one date failing with "single class". A ticker's rows are spent as follows:
``WARM_UP_ROWS`` before SMA_50 is defined, one last row whose tomorrow is unknown (no label),
then the labelled dates: the latest ``test_size`` of them are held out for the test, and the
rest is cut by walk-forward validation into ``cv_folds + 1`` blocks with ``embargo`` dates left
out before each validation block. Every fit block must hold ``MIN_FIT_DATES`` dates, so a
single ticker's block has both up and down days (a random walk's ten days are all alike once
in 512).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: Rows at the start of each ticker where a feature is undefined (SMA_50's window).
WARM_UP_ROWS = 49
#: The last row of each ticker has no Target (its tomorrow is unknown).
UNLABELLED_ROWS = 1
#: The fewest dates a walk-forward fit block may hold.
MIN_FIT_DATES = 10
#: The model settings the stated minimum is computed for (``ModelConfig``'s defaults).
DEFAULT_TEST_SIZE = 0.2
DEFAULT_CV_FOLDS = 3
DEFAULT_EMBARGO = 1


def training_dates_needed(cv_folds: int, embargo: int) -> int:
    """Training dates that give every walk-forward fit block ``MIN_FIT_DATES`` dates.

    ``TimeSeriesSplit`` gives each of ``cv_folds`` validation blocks ``n // (cv_folds + 1)``
    dates and the first fit block the rest minus ``embargo``: from ``(cv_folds + 1) *
    (MIN_FIT_DATES + embargo)`` training dates on, that block is never smaller.
    """
    return (cv_folds + 1) * (MIN_FIT_DATES + embargo)


def training_dates(labelled_dates: int, test_size: float) -> int:
    """Training dates of the time split (the same cut as ``training.time_split``)."""
    return int(labelled_dates * (1 - test_size))


def labelled_dates_needed(test_size: float, cv_folds: int, embargo: int) -> int:
    """The fewest labelled dates whose time split and folds work (and every larger count)."""
    needed = training_dates_needed(cv_folds, embargo)
    labelled = needed + 1
    while training_dates(labelled, test_size) < needed:
        labelled += 1
    return labelled


def rows_needed(
    test_size: float = DEFAULT_TEST_SIZE,
    cv_folds: int = DEFAULT_CV_FOLDS,
    embargo: int = DEFAULT_EMBARGO,
) -> int:
    """Rows per ticker the pipeline needs with these model settings."""
    return WARM_UP_ROWS + UNLABELLED_ROWS + labelled_dates_needed(test_size, cv_folds, embargo)


def rows_why(test_size: float, cv_folds: int, embargo: int) -> str:
    """Why ``rows_needed`` rows: the warm-up, the unlabelled row, the split and the folds."""
    labelled = labelled_dates_needed(test_size, cv_folds, embargo)
    return (
        f"{WARM_UP_ROWS} rows of warm-up for SMA_50, the last row (no label), and "
        f"{labelled} labelled dates so that test_size={test_size:g} leaves "
        f"{training_dates_needed(cv_folds, embargo)} training dates for cv_folds={cv_folds} "
        f"walk-forward fits of at least {MIN_FIT_DATES} dates each after embargo={embargo}"
    )


def history_problem(
    labelled_dates: int, test_size: float, cv_folds: int, embargo: int
) -> str | None:
    """Why ``labelled_dates`` are too few for these model settings (what to do), or None."""
    have = training_dates(labelled_dates, test_size)
    need = training_dates_needed(cv_folds, embargo)
    if have >= need:
        return None
    options = [f"provide at least {rows_needed(test_size, cv_folds, embargo)} rows per ticker"]
    folds = (have // (MIN_FIT_DATES + embargo)) - 1  # the most folds these dates allow
    if 2 <= folds < cv_folds:
        options.append(f"lower cv_folds to {folds}")
    smaller = _largest_test_size(labelled_dates, need)
    if smaller is not None:
        options.append(f"lower test_size to {smaller:g}")
    return (
        f"too little history for these model settings: {labelled_dates} labelled date(s) with "
        f"test_size={test_size:g} leave {have} training date(s), and cv_folds={cv_folds} with "
        f"embargo={embargo} need {need} (walk-forward fits of at least {MIN_FIT_DATES} dates); "
        + ", or ".join(options)
    )


def _largest_test_size(labelled_dates: int, needed: int) -> float | None:
    """The largest test_size (in hundredths) leaving ``needed`` training dates, or None."""
    for hundredths in range(99, 0, -1):
        share = hundredths / 100
        cut = training_dates(labelled_dates, share)
        if cut >= needed and cut < labelled_dates:
            return share
    return None


#: The stated minimum: rows per ticker with the default model settings.
TRAINING_ROWS_PER_TICKER = rows_needed()


def labelled_dates(bars: pd.DataFrame) -> int:
    """Distinct dates that will carry features and a label: each ticker's rows after the
    warm-up, but its last (bars sorted by Ticker then Date, as every frame of ``core.data``)."""
    position = bars.groupby("Ticker", sort=False).cumcount()
    size = bars.groupby("Ticker", sort=False)["Date"].transform("size")
    usable = (position >= WARM_UP_ROWS) & (position < size - UNLABELLED_ROWS)
    return int(bars.loc[usable, "Date"].nunique())


def bars_problem(bars: pd.DataFrame) -> str | None:
    """Why ``bars`` hold too little history to train with the default settings, or None."""
    have = labelled_dates(bars)
    need = labelled_dates_needed(DEFAULT_TEST_SIZE, DEFAULT_CV_FOLDS, DEFAULT_EMBARGO)
    if have >= need:
        return None
    return (
        f"too little history to train with the default model settings: {have} labelled "
        f"date(s), {need} needed; provide at least {TRAINING_ROWS_PER_TICKER} rows per ticker ("
        f"{rows_why(DEFAULT_TEST_SIZE, DEFAULT_CV_FOLDS, DEFAULT_EMBARGO)})"
    )
