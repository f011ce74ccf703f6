"""The backtest's two charts as PNG: equity against buy-and-hold, and the drawdown.

Headless (Agg), each figure saved and closed, with its words in the PNG's text chunks
(as ``stock_assets.core.plots`` does). Sized to stay legible in Dagster's metadata panel.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from stock_assets.core.backtest import Backtest  # noqa: E402
from stock_assets.core.signal_metrics import drawdown, sharpe_ratio  # noqa: E402

__all__ = ["drawdown_png", "equity_png"]

FIGSIZE = (8, 4.2)
DPI = 100
PathLike = str | os.PathLike[str]


def _save(fig: Figure, path: PathLike) -> Path:
    """Save ``fig`` as PNG with its title and legend as text chunks, and close it."""
    out = Path(path)
    (ax,) = fig.axes
    legend = ax.get_legend()
    texts = legend.texts if legend is not None else []
    words = [ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in texts)]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        metadata = {"Title": ax.get_title(), "Description": "; ".join(words)}
        fig.savefig(out, format="png", dpi=DPI, metadata=metadata)
    finally:
        plt.close(fig)
    return out


def _strategy_label(backtest: Backtest) -> str:
    kind = "long/short" if backtest.long_short else "long/flat"
    return f"model, {kind}, after {backtest.cost_bps:g} bps costs"


def _dates(ax: Axes) -> None:
    locator = AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.grid(alpha=0.3)


def equity_png(backtest: Backtest, path: PathLike) -> Path:
    """Growth of 1 invested in the strategy (after costs, and before) and in buy-and-hold."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    dates = backtest.dates
    for returns, label, style in (
        (backtest.net, _strategy_label(backtest), {"color": "tab:blue", "linewidth": 2}),
        (backtest.gross, "model before costs", {"color": "tab:blue", "linestyle": ":"}),
        (
            backtest.benchmark,
            f"buy-and-hold, equal weight ({backtest.n_tickers} ticker(s))",
            {"color": "tab:grey", "linewidth": 2},
        ),
    ):
        sharpe = sharpe_ratio(returns)
        ax.plot(dates, np.cumprod(1.0 + returns), label=f"{label} (Sharpe {sharpe:.2f})", **style)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_title("Backtest on the test window: growth of 1")
    ax.set_xlabel("date (position at the close, held to the next close)")
    ax.set_ylabel("value of 1 invested")
    ax.legend(loc="best", fontsize=9)
    _dates(ax)
    return _save(fig, path)


def drawdown_png(backtest: Backtest, path: PathLike) -> Path:
    """How far each curve stands below its running peak, in percent."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    model = drawdown(backtest.net) * 100
    bench = drawdown(backtest.benchmark) * 100
    ax.fill_between(backtest.dates, model, 0, color="tab:blue", alpha=0.35)
    ax.plot(
        backtest.dates,
        model,
        color="tab:blue",
        label=f"{_strategy_label(backtest)} (max {model.min():.1f} %)",
    )
    ax.plot(
        backtest.dates, bench, color="tab:grey", label=f"buy-and-hold (max {bench.min():.1f} %)"
    )
    ax.set_title("Drawdown: fall from the running peak")
    ax.set_xlabel("date")
    ax.set_ylabel("drawdown (%)")
    ax.legend(loc="lower left", fontsize=9)
    _dates(ax)
    return _save(fig, path)
