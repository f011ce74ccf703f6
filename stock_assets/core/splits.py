"""The chronological train/test split of the features table, and the rows of a date window.

Pure pandas/numpy: the split is computed once per run and its windows travel with the model, so
the test rows can be found again later (deployment, lineage, serving checks) from the windows
alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from stock_assets.core.errors import TrainingError
from stock_assets.core.features import TARGET_COLUMN
from stock_assets.core.values import DateWindow

__all__ = [
    "DATE_COLUMN",
    "TICKER_COLUMN",
    "TimeSplit",
    "check_test_size",
    "labelled_rows_in",
    "require_columns",
    "time_split",
]

DATE_COLUMN = "Date"
TICKER_COLUMN = "Ticker"


def check_test_size(test_size: float) -> float:
    """``test_size`` if it is a share strictly between 0 and 1."""
    if not 0 < test_size < 1:
        raise TrainingError(f"test_size={test_size} must lie strictly between 0 and 1")
    return test_size


def require_columns(features: pd.DataFrame, columns: Sequence[str]) -> None:
    """Raise TrainingError naming every column of ``columns`` that ``features`` lacks."""
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise TrainingError(f"features table is missing column(s): {', '.join(missing)}")


class TimeSplit(NamedTuple):
    """The labelled rows split by date: ``train`` strictly before ``test``."""

    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def train_window(self) -> DateWindow:
        return DateWindow.of(self.train[DATE_COLUMN])

    @property
    def test_window(self) -> DateWindow:
        return DateWindow.of(self.test[DATE_COLUMN])


def time_split(features: pd.DataFrame, test_size: float = 0.2) -> TimeSplit:
    """Chronological train/test split on the labelled rows (Target not NA), never shuffled.

    The test set is every row on the last ``test_size`` fraction of the distinct dates (all
    tickers together); the cut is ``int(n_dates * (1 - test_size))``, which for a single ticker
    equals the reference pipeline's ``split_idx = int(len(X) * (1 - test_size))``. Rows come
    back sorted by date then ticker. Computed once per run; the windows travel with the model.
    """
    check_test_size(test_size)
    require_columns(features, [DATE_COLUMN, TARGET_COLUMN])
    # the labelled rows, by date then ticker (stable), gathered in one copy of the table
    rows = np.flatnonzero(features[TARGET_COLUMN].notna().to_numpy())
    sort_keys = [features[DATE_COLUMN].to_numpy()[rows]]
    if TICKER_COLUMN in features.columns:
        tickers = features[TICKER_COLUMN].to_numpy()[rows]
        sort_keys.insert(0, pd.factorize(tickers, sort=True)[0])  # lexsort: last key first
    labelled = features.take(rows[np.lexsort(sort_keys)])

    dates = np.sort(labelled[DATE_COLUMN].unique())
    n_dates = len(dates)
    cut = int(n_dates * (1 - test_size))
    if cut == 0 or cut == n_dates:
        empty = "training" if cut == 0 else "test"
        raise TrainingError(
            f"time split leaves the {empty} set empty: {n_dates} distinct labelled date(s) "
            f"with test_size={test_size} gives {cut} train and {n_dates - cut} test date(s); "
            "provide more history or change test_size"
        )
    # sorted by date: the two windows are slices of one table, not two more copies of it
    first_test_row = int(np.searchsorted(labelled[DATE_COLUMN].to_numpy(), dates[cut]))
    return TimeSplit(labelled.iloc[:first_test_row], labelled.iloc[first_test_row:])


def labelled_rows_in(features: pd.DataFrame, window: DateWindow) -> pd.DataFrame:
    """The labelled rows dated within ``window``, e.g. a trained model's test rows."""
    labelled = features.loc[features[TARGET_COLUMN].notna()]
    return labelled.loc[window.contains(labelled[DATE_COLUMN])]
