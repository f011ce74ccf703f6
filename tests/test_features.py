"""Technical features and target (stock_assets.core.features) against the reference pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stock_assets.core.data import OHLCV_COLUMNS, DataValidationError, generate_gbm
from stock_assets.core.features import (
    FEATURE_COLUMNS,
    TARGET_COLUMN,
    compute_features,
)
from tests.support.reference import reference_feature_engineering

# --------------------------------------------------------------------------------------
# The reference pipeline's feature_engineering (Composant 2) on one ticker, minus the CSV I/O.
# (generate_gbm() equals the reference pipeline's generate_data value for value: see test_data.py.)
# --------------------------------------------------------------------------------------


def expected_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The reference pipeline per ticker, in our column order, last row's Target as <NA>."""
    parts = []
    for _, group in bars.sort_values(["Ticker", "Date"]).groupby("Ticker", sort=True):
        expected = reference_feature_engineering(group.reset_index(drop=True))
        expected = expected[[*OHLCV_COLUMNS, *FEATURE_COLUMNS, TARGET_COLUMN]]
        expected = expected.astype({TARGET_COLUMN: "Int8"})
        if len(expected) and expected.index[-1] == len(group) - 1:  # the ticker's last bar
            expected.loc[expected.index[-1], TARGET_COLUMN] = pd.NA
        parts.append(expected)
    return pd.concat(parts, ignore_index=True)


def one(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    return frame[frame["Ticker"] == ticker].reset_index(drop=True)


@pytest.fixture(scope="module")
def reference_bars() -> pd.DataFrame:
    return generate_gbm()


# --------------------------------------------------------------------------------------
# Equality with the reference pipeline
# --------------------------------------------------------------------------------------


def test_equals_reference_feature_engineering_on_reference_data(
    reference_bars: pd.DataFrame,
) -> None:
    actual = compute_features(reference_bars)
    expected = reference_feature_engineering(reference_bars).reset_index(drop=True)

    assert len(actual) == len(expected) == 500 - 49
    for column in [*OHLCV_COLUMNS, *FEATURE_COLUMNS]:
        # Same pandas kernels on the same values: equal to the last bit.
        pd.testing.assert_series_equal(actual[column], expected[column], check_exact=True)
    # Target: the reference labels the last row 0 although tomorrow is unknown; here it is <NA>.
    assert actual[TARGET_COLUMN].iloc[:-1].astype(int).tolist() == expected["Target"][:-1].tolist()
    assert actual[TARGET_COLUMN].iloc[-1] is pd.NA
    assert expected["Target"].iloc[-1] == 0


def test_equals_reference_pipeline_through_csv_files(
    reference_bars: pd.DataFrame, tmp_path: Path
) -> None:
    # The KFP components hand data over as CSV: generate_data -> CSV -> feature_engineering.
    reference_bars.to_csv(tmp_path / "data.csv", index=False)
    expected = reference_feature_engineering(
        pd.read_csv(tmp_path / "data.csv", parse_dates=["Date"])
    )
    expected.to_csv(tmp_path / "features.csv", index=False)
    expected = pd.read_csv(tmp_path / "features.csv", parse_dates=["Date"])

    actual = compute_features(reference_bars)
    for column in FEATURE_COLUMNS:
        np.testing.assert_allclose(actual[column], expected[column], rtol=1e-9, atol=0)
    assert (actual[TARGET_COLUMN].iloc[:-1].to_numpy() == expected["Target"][:-1].to_numpy()).all()


def test_output_layout(reference_bars: pd.DataFrame) -> None:
    actual = compute_features(reference_bars)
    assert list(actual.columns) == [*OHLCV_COLUMNS, *FEATURE_COLUMNS, TARGET_COLUMN]
    assert len(FEATURE_COLUMNS) == 22
    assert all(actual[c].dtype == np.float64 for c in FEATURE_COLUMNS)
    assert actual[TARGET_COLUMN].dtype == "Int8"
    assert actual[OHLCV_COLUMNS].dtypes.equals(reference_bars.dtypes)
    assert isinstance(actual.index, pd.RangeIndex) and actual.index.start == 0
    assert not actual[FEATURE_COLUMNS].isna().any().any()
    # Each ticker's first kept row is its 50th bar (SMA_50's warm-up).
    assert actual["Date"].iloc[0] == reference_bars["Date"].iloc[49]


def test_input_is_not_modified(reference_bars: pd.DataFrame) -> None:
    before = reference_bars.copy()
    compute_features(reference_bars)
    pd.testing.assert_frame_equal(reference_bars, before)


# --------------------------------------------------------------------------------------
# Several tickers
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_bars() -> pd.DataFrame:
    """Three tickers of different lengths, price levels and dates, rows shuffled."""
    bars = generate_gbm(days=200, tickers=["AAA", "BBB", "CCC"])
    bbb = bars["Ticker"] == "BBB"
    bars.loc[bbb, ["Open", "High", "Low", "Close"]] *= 1000.0  # far from AAA's level
    bars = bars.drop(bars.index[bbb][:70])  # BBB: 130 bars starting later
    ccc = generate_gbm(days=80, tickers=["CCC"], end_date="2022-06-30")  # other dates
    bars = pd.concat([bars[bars["Ticker"] != "CCC"], ccc], ignore_index=True)
    return bars.sample(frac=1.0, random_state=1).reset_index(drop=True)


def test_several_tickers_equal_reference_per_ticker(mixed_bars: pd.DataFrame) -> None:
    actual = compute_features(mixed_bars)
    expected = expected_features(mixed_bars)
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)
    assert actual.groupby("Ticker").size().to_dict() == {
        "AAA": 200 - 49,
        "BBB": 130 - 49,
        "CCC": 80 - 49,
    }


def test_no_leakage_between_tickers(mixed_bars: pd.DataFrame) -> None:
    together = compute_features(mixed_bars)
    for ticker in ["AAA", "BBB", "CCC"]:
        alone = compute_features(mixed_bars[mixed_bars["Ticker"] == ticker])
        pd.testing.assert_frame_equal(one(together, ticker), alone, check_exact=True)


def test_row_order_of_the_input_does_not_matter(mixed_bars: pd.DataFrame) -> None:
    ordered = mixed_bars.sort_values(["Ticker", "Date"], ignore_index=True)
    pd.testing.assert_frame_equal(compute_features(mixed_bars), compute_features(ordered))


def test_target_is_na_only_on_each_tickers_last_row(mixed_bars: pd.DataFrame) -> None:
    actual = compute_features(mixed_bars)
    last = actual.groupby("Ticker").tail(1).index
    assert actual.loc[last, TARGET_COLUMN].isna().all()
    assert actual[TARGET_COLUMN].drop(index=last).notna().all()
    nxt = actual.groupby("Ticker")["Close"].shift(-1)
    known = actual[TARGET_COLUMN].notna()
    assert (actual.loc[known, TARGET_COLUMN] == (nxt > actual["Close"])[known]).all()


# --------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------


def test_flat_prices_drop_the_same_rows_as_the_reference() -> None:
    # A flat stretch makes std20 = 0 (BB_Position 0/0 = NaN) and gains/losses 0 (RSI 0/0).
    bars = generate_gbm(days=150, tickers=["AAA", "FLAT"])
    flat = bars["Ticker"] == "FLAT"
    stretch = flat & bars.index.isin(bars.index[flat][60:90])
    bars.loc[stretch, ["Open", "High", "Low", "Close"]] = 50.0
    bars.loc[bars.index[flat][:55], ["Open", "High", "Low", "Close"]] = 80.0  # flat from bar 0
    actual = compute_features(bars)
    expected = expected_features(bars)
    assert len(one(actual, "FLAT")) < 150 - 49  # rows were dropped mid-series
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)


def test_short_tickers_produce_no_rows() -> None:
    bars = generate_gbm(days=60, tickers=["AAA", "BBB"])
    bars = bars.drop(bars.index[bars["Ticker"] == "BBB"][:20])  # BBB: 40 bars
    actual = compute_features(bars)
    assert actual["Ticker"].unique().tolist() == ["AAA"]
    assert compute_features(bars.iloc[:0]).columns.tolist() == actual.columns.tolist()


@pytest.mark.parametrize(
    ("change", "substrings"),
    [
        (lambda df: df.drop(columns="Volume"), ["'Volume'", "missing"]),
        (lambda df: df.assign(Close=np.where(df.index == 5, np.nan, df["Close"])), ["'Close'"]),
        (lambda df: pd.concat([df, df.iloc[[7]]]), ["duplicate", "'SYNTH'", "2023-01-11"]),
        (lambda df: df.assign(Date=df["Date"].astype(str)), ["'Date'", "datetime64"]),
    ],
    ids=["missing_column", "nan_close", "duplicate_date", "string_dates"],
)
def test_bad_input_raises(reference_bars: pd.DataFrame, change, substrings: list[str]) -> None:
    with pytest.raises(DataValidationError) as info:
        compute_features(change(reference_bars))
    for text in substrings:
        assert text in str(info.value)


@pytest.mark.slow
def test_core_modules_import_neither_dagster_nor_kfp() -> None:
    modules = ", ".join(
        f"stock_assets.core.{m}"
        for m in ("data", "features", "training", "selection", "decision", "values", "plots")
    )
    code = (
        f"import sys, {modules}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'kfp', 'mlflow'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_exporter_and_the_project_import_nothing_of_each_other() -> None:
    import ast

    root = Path(__file__).resolve().parents[1]

    def imported(package: str) -> set[str]:
        names = set()
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {f"{path.name}: {a.name}" for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names.add(f"{path.name}: {node.module}")
        return names

    assert not [n for n in imported("exporters") if ": stock_assets" in n]
    assert not [n for n in imported("stock_assets") if ": exporters" in n]
