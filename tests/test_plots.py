"""The candidate comparison chart is readable: the plot takes most of the figure, no text is
clipped or drawn over another."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from PIL import Image

from stock_assets.core import plots
from stock_assets.core.selection import DEFAULT_CANDIDATES, REFERENCE_CANDIDATES

LONG = "random_forest: " + ", ".join(f"parameter_{i}={i * 1000}" for i in range(12))
CASES = {
    "default": DEFAULT_CANDIDATES,
    "reference": REFERENCE_CANDIDATES,
    "one": DEFAULT_CANDIDATES[:1],
    "a very long label": [LONG, "logistic: C=0.1"],
}
CHART = {
    "metric": "accuracy",
    "baseline": 0.51,
    "baseline_label": "majority-class baseline, mean of the 5 folds",
    "title": "Candidates: walk-forward accuracy on the training dates",
    "xlabel": "accuracy, mean of 5 walk-forward validation folds",
}


def _scores(labels: list[str]) -> pd.Series:
    rng = np.random.default_rng(len(labels))
    return pd.Series(rng.uniform(0.45, 0.6, len(labels)), index=labels)


def _texts(fig: Figure) -> list[tuple[str, Bbox]]:
    """Every text the drawn figure shows, with its extent in pixels (tick labels outside the
    axis limits exist but are not drawn)."""
    renderer = fig.canvas.get_renderer()
    hidden = set()
    for ax in fig.axes:
        for axis, (low, high) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not min(low, high) <= tick.get_loc() <= max(low, high):
                    hidden |= {id(tick.label1), id(tick.label2)}
    found = fig.findobj(
        lambda a: isinstance(a, Text) and a.get_visible() and a.get_text() and id(a) not in hidden
    )
    return [(t.get_text(), t.get_window_extent(renderer)) for t in found]


@pytest.mark.parametrize("case", CASES)
def test_the_comparison_chart_is_mostly_plot_and_nothing_is_clipped(case: str) -> None:
    fig = plots.scores_bar_figure(_scores(CASES[case]), **CHART)
    try:
        fig.canvas.draw()
        (ax,) = fig.axes
        figure = fig.bbox
        plot = ax.get_window_extent()
        share = plot.width * plot.height / (figure.width * figure.height)
        assert share >= 0.5, f"the plot area is {share:.0%} of the figure"
        assert plot.width >= 0.9 * figure.width, "labels take the bars' width"

        texts = _texts(fig)
        shown = {text for text, _ in texts}
        assert {CHART["title"], CHART["xlabel"]} <= shown
        assert any(CHART["baseline_label"] in text for text in shown)
        for text, box in texts:
            assert figure.x0 - 1 <= box.x0 and box.x1 <= figure.x1 + 1, f"{text!r} clipped"
            assert figure.y0 - 1 <= box.y0 and box.y1 <= figure.y1 + 1, f"{text!r} clipped"
        for (a, box_a), (b, box_b) in itertools.combinations(texts, 2):
            overlap = Bbox.intersection(box_a, box_b)
            assert overlap is None or overlap.width * overlap.height < 1, f"{a!r} on {b!r}"
        # Every candidate is named in full on the chart (wrapped lines joined back).
        joined = " ".join(" ".join(text.split()) for text in shown)
        for label in CASES[case]:
            assert " ".join(label.split()) in joined
    finally:
        plt.close(fig)


def test_the_png_is_written_with_its_words_in_one_line(tmp_path) -> None:
    path = plots.scores_bar_png(_scores(CASES["a very long label"]), tmp_path / "c.png", **CHART)
    image = Image.open(path)
    assert image.width == plots.FIGURE_WIDTH * plots.DPI
    assert image.text["Title"] == CHART["title"]
    assert f"{CHART['baseline_label']} = 0.510" in image.text["Description"]
    assert plt.get_fignums() == []
