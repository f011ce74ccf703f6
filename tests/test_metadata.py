"""What the Dagster UI shows of a table: counts, tickers and a preview of its last rows."""

from __future__ import annotations

from stock_assets.core.data import generate_gbm
from stock_assets.defs.metadata import frame_metadata


def test_frame_metadata_previews_the_last_rows_of_the_chosen_columns() -> None:
    bars = generate_gbm(days=80, tickers=["BBB", "AAA", "CCC"])
    metadata = frame_metadata(bars, ["Date", "Ticker", "Close"])
    assert metadata["dagster/row_count"] == 240
    assert (metadata["tickers"], metadata["n_tickers"]) == ("AAA, BBB, CCC", 3)
    lines = metadata["preview"].value.splitlines()
    assert lines[0].split("|")[1:-1] == [" Date       ", " Ticker   ", "   Close "]
    last = bars.iloc[-1]
    assert lines[-1].startswith(f"| {last['Date']:%Y-%m-%d} | {last['Ticker']}")
    assert len(lines) == 2 + 5  # header, rule, five rows
