"""Bad input fails the run with a clear message, writes nothing, and leaves production alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from stock_assets.core.data import generate_gbm
from stock_assets.core.history import TRAINING_ROWS_PER_TICKER
from tests.conftest import failure_text, mlflow_run_for, production_version, run_graph


@pytest.fixture(scope="module")
def production(mlflow_store: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A first deployment, so 'unchanged' means something."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STOCK_ASSETS_DATA_DIR", str(tmp_path_factory.mktemp("first")))
        result = run_graph({"deploy_decision": {"accuracy_threshold": 0.0}})
    assert result.success, failure_text(result)
    version = production_version()
    assert version is not None
    return version


def _bars(days: int = 200) -> pd.DataFrame:
    return generate_gbm(days=days, seed=3).drop(columns="Ticker")


def _with(change: Callable[[pd.DataFrame], pd.DataFrame], days: int = 200) -> pd.DataFrame:
    return change(_bars(days))


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        df = df.astype({column: object})
        df.loc[row, column] = value
        return df

    return change


def _rising(df: pd.DataFrame) -> pd.DataFrame:
    close = 100 + pd.Series(range(len(df)), dtype=float)
    return df.assign(Open=close - 0.5, Close=close, High=close + 1, Low=close - 1)


def _high_below_low(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[120, ["High", "Low"]] = df.loc[120, ["Low", "High"]].to_numpy()
    return df


# (case id, frame to write or None for no file, failing asset, expected message fragments)
CASES = [
    ("missing_file", None, "stock_data", ["does-not-exist.csv", "not found"]),
    (
        "missing_columns",
        _with(lambda df: df.drop(columns=["Close", "Volume"])),
        "stock_data",
        ["bars.csv", "Close", "Volume"],
    ),
    (
        "non_numeric",
        _with(_set("Close", 10, "abc")),
        "stock_data",
        ["bars.csv", "'Close'", "non-numeric", "line 12"],
    ),
    ("nan_price", _with(_set("Open", 10, float("nan"))), "stock_data", ["bars.csv", "Open"]),
    ("zero_price", _with(_set("Low", 10, 0.0)), "stock_data", ["bars.csv", "Low", "> 0"]),
    ("negative_price", _with(_set("High", 10, -5.0)), "stock_data", ["bars.csv", "High"]),
    ("high_below_low", _with(_high_below_low), "stock_data", ["bars.csv", "High", "Low"]),
    (
        "duplicate_dates",
        _with(lambda df: pd.concat([df, df.iloc[[5]]])),
        "stock_data",
        ["bars.csv", "duplicate", "date"],
    ),
    ("too_few_rows", _bars(100).head(40), "stock_data", ["bars.csv", "60", "40"]),
    (
        "too_little_history",
        _bars(200).head(TRAINING_ROWS_PER_TICKER - 1),
        "stock_data",
        ["bars.csv", "too little history", f"at least {TRAINING_ROWS_PER_TICKER} rows per ticker"],
    ),
    ("single_class", _with(_rising), "target_has_both_classes", ["Target", "single class", "both"]),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("frame", "failing", "fragments"),
    [pytest.param(frame, failing, fragments, id=name) for name, frame, failing, fragments in CASES],
)
def test_bad_csv_fails_clearly_and_writes_nothing(
    production: str,
    data_dir: Path,
    tmp_path: Path,
    frame: pd.DataFrame | None,
    failing: str,
    fragments: list[str],
) -> None:
    path = tmp_path / ("does-not-exist.csv" if frame is None else "bars.csv")
    if frame is not None:
        frame.to_csv(path, index=False)

    result = run_graph(
        {"stock_data": {"csv_path": str(path)}, "deploy_decision": {"accuracy_threshold": 0.0}}
    )

    assert not result.success
    message = failure_text(result)
    assert failing in {e.step_key for e in result.get_step_failure_events()} | {
        e.asset_check_key.name for e in result.get_asset_check_evaluations() if not e.passed
    }
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    written = {p.stem for p in (data_dir / "assets").glob("*")} if data_dir.exists() else set()
    if failing == "stock_data":
        assert written == set()
    else:  # the blocking check stops the graph before training
        assert "model" not in written and "deployed_model" not in written
    assert mlflow_run_for(result).info.status == "FAILED"
    assert production_version() == production


@pytest.mark.slow
def test_a_config_error_fails_the_run_before_any_step_writes(
    production: str, data_dir: Path
) -> None:
    """Each field's rule is tested at its Config class (test_config.py); this is the seam."""
    result = run_graph({"stock_data": {"days": 10}})
    assert not result.success
    assert "days=10 is too small" in failure_text(result)
    (failure,) = result.get_step_failure_events()
    error = failure.step_failure_data.error
    # Shown first: Dagster's line is "<module>.Failure: <message>", with no wrapping cause.
    assert error.cls_name == "Failure" and error.cause is None
    assert error.message.split("Failure: ", 1)[1].startswith("days=10 is too small")
    assert failure.step_failure_data.user_failure_data.description.startswith("days=10")
    assert not (data_dir / "assets").exists()
    assert production_version() == production


@pytest.mark.slow
def test_a_csv_of_the_stated_minimum_runs_the_whole_graph(
    production: str, data_dir: Path, tmp_path: Path
) -> None:
    """The minimum the README states (``TRAINING_ROWS_PER_TICKER``) is enough for the default
    split and folds: every step succeeds, the model is trained and deployed."""
    path = tmp_path / "bars.csv"
    _bars(300).tail(TRAINING_ROWS_PER_TICKER).to_csv(path, index=False)

    result = run_graph(
        {"stock_data": {"csv_path": str(path)}, "deploy_decision": {"accuracy_threshold": 0.0}}
    )

    assert result.success, failure_text(result)
    assert result.output_for_node("model").registered_version is not None


@pytest.mark.slow
def test_settings_needing_more_history_fail_the_first_model_step_saying_what_to_do(
    production: str, data_dir: Path, tmp_path: Path
) -> None:
    """More folds than the data allows fail ``plan_candidates`` with the rows needed and the
    settings that would fit, not a single-class error from a fold of one date."""
    path = tmp_path / "bars.csv"
    _bars(300).tail(TRAINING_ROWS_PER_TICKER).to_csv(path, index=False)

    result = run_graph({"stock_data": {"csv_path": str(path)}, "model": {"cv_folds": 5}})

    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "model.plan_candidates"
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("too little history for these model settings"), message
    assert "cv_folds=5" in message and "single class" not in message
    assert "rows per ticker" in message and "lower cv_folds to 3" in message
    assert production_version() == production


def test_the_stated_minimum_follows_the_features_and_the_model_defaults() -> None:
    """``core.history`` restates two facts: the warm-up rows ``compute_features`` drops and
    ``ModelConfig``'s defaults; the minimum is recomputed if either changes."""
    from stock_assets.core import history
    from stock_assets.core.features import TARGET_COLUMN, compute_features
    from stock_assets.defs.config import ModelConfig

    days = 200
    table = compute_features(generate_gbm(days=days))
    assert len(table) == days - history.WARM_UP_ROWS
    assert int(table[TARGET_COLUMN].isna().sum()) == history.UNLABELLED_ROWS
    defaults = ModelConfig()
    assert (defaults.test_size, defaults.cv_folds, defaults.embargo) == (
        history.DEFAULT_TEST_SIZE,
        history.DEFAULT_CV_FOLDS,
        history.DEFAULT_EMBARGO,
    )
    assert TRAINING_ROWS_PER_TICKER == history.rows_needed(0.2, 3, 1) == 105
