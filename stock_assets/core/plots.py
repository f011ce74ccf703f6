"""Evaluation charts written as PNG files (headless: the Agg backend, no display needed).

Each function draws one figure, saves it, closes it (no figure accumulates in pyplot's state)
and returns the path it wrote. Parent directories are created as needed.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.artist import Artist  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

__all__ = [
    "confusion_matrix_png",
    "feature_importance_png",
    "roc_curve_png",
    "scores_bar_figure",
    "scores_bar_png",
]

DPI = 100
FIGURE_WIDTH = 8.0  # inches, the comparison chart's
# Characters per line that fit the comparison chart's width at its font sizes.
LABEL_CHARS = 100
LEGEND_CHARS = 60
TITLE_CHARS = 80
PathLike = str | os.PathLike[str]


def _one_line(text: str) -> str:
    """``text`` with its line breaks (and a wrapped line's indent) as single spaces."""
    return re.sub(r"\s*\n\s*", " ", text)


def _save(fig: Figure, path: PathLike) -> Path:
    """Save ``fig`` as PNG at ``path`` and close it, even if saving fails.

    The PNG's text chunks repeat what the chart says in words: ``Title`` (the axes' titles) and
    ``Description`` (the axis labels and legend entries), for readers that cannot see it.
    """
    out = Path(path)
    axes = [ax for ax in fig.axes if ax.get_title()]  # not the colour bar
    words = []
    for ax in axes:
        labels = {"x": ax.get_xlabel(), "y": ax.get_ylabel()}
        words += [f"{axis}: {label}" for axis, label in labels.items() if label]
        legend = ax.get_legend()
        if legend is not None:
            words += [text.get_text() for text in legend.get_texts()]
    for legend in fig.legends:
        words += [text.get_text() for text in legend.get_texts()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fig.get_layout_engine() is None:
            fig.tight_layout()
        fig.savefig(
            out,
            format="png",
            dpi=DPI,
            metadata={
                "Title": _one_line("; ".join(ax.get_title() for ax in axes)),
                "Description": _one_line("; ".join(words)),
            },
        )
    finally:
        plt.close(fig)
    return out


def confusion_matrix_png(
    matrix: Sequence[Sequence[int]] | np.ndarray,
    path: PathLike,
    labels: Sequence[str] = ("down", "up"),
    title: str = "Confusion matrix (test set)",
) -> Path:
    """Heatmap of a square confusion matrix (rows = actual, columns = predicted), annotated."""
    cm = np.asarray(matrix)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(labels):
        raise ValueError(f"expected a {len(labels)}x{len(labels)} matrix, got shape {cm.shape}")
    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels=list(labels))
    ax.set_yticks(ticks, labels=list(labels))
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    total = cm.sum()
    threshold = cm.max() / 2 if cm.size and cm.max() > 0 else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            share = f"\n({cm[i, j] / total:.0%})" if total else ""
            ax.text(
                j,
                i,
                f"{cm[i, j]}{share}",
                ha="center",
                va="center",
                fontsize=12,
                color="white" if cm[i, j] > threshold else "black",
            )
    ax.set_title(title)
    return _save(fig, path)


def roc_curve_png(
    y_true: Any,
    y_score: Any,
    path: PathLike,
    title: str = "ROC curve (test set)",
) -> Path:
    """ROC curve with the AUC in the legend and the chance diagonal.

    If ``y_true`` has a single class the curve is undefined; the figure then says so instead
    of failing, so a pipeline step can always produce its artifact.
    """
    y_true = np.asarray(y_true).astype(int)
    y_score = np.asarray(y_score, dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance (AUC = 0.50)")
    if len(np.unique(y_true)) == 2:
        from sklearn.metrics import roc_auc_score, roc_curve

        fpr, tpr, _ = roc_curve(y_true, y_score)
        auc = roc_auc_score(y_true, y_score)
        ax.plot(fpr, tpr, color="tab:blue", linewidth=2, label=f"model (AUC = {auc:.3f})")
    else:
        ax.text(
            0.5,
            0.6,
            "ROC undefined:\nthe test set has a single class",
            ha="center",
            va="center",
            fontsize=11,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def feature_importance_png(
    importances: pd.Series,
    path: PathLike,
    title: str = "Feature importance",
    top_n: int | None = None,
) -> Path:
    """Horizontal bar chart of importances indexed by feature name, largest on top."""
    series = pd.Series(importances, dtype=float).sort_values(ascending=False, kind="stable")
    if top_n is not None:
        series = series.head(top_n)
    series = series.iloc[::-1]  # barh draws the first bar at the bottom
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.3 * len(series) + 1.2)))
    ax.barh([str(i) for i in series.index], series.to_numpy(), color="tab:blue")
    ax.set_xlabel(series.name if isinstance(series.name, str) else "importance")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _wrap(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters (continuations indented)."""
    return "\n".join(textwrap.wrap(text, width, subsequent_indent="  ")) or text


def scores_bar_figure(
    scores: pd.Series,
    metric: str = "accuracy",
    baseline: float | None = None,
    title: str | None = None,
    baseline_label: str = "baseline",
    xlabel: str | None = None,
) -> Figure:
    """The comparison chart as a figure: one row per candidate, its full label above its bar.

    Labels of any length take a line of their own inside the plot (wrapped to its width), so
    the bars keep the figure's width; the legend sits under the plot. Laid out by matplotlib's
    constrained layout, so the title, axis label and legend stay inside the figure.
    """
    values = pd.Series(scores.to_numpy(dtype=float), index=[str(x) for x in scores.index])
    labels = [_wrap(f"{rank}. {label}", LABEL_CHARS) for rank, label in enumerate(values.index, 1)]
    lines = max((label.count("\n") + 1 for label in labels), default=1)
    # Inches of one candidate's row: its bar, a gap, its label's lines, a gap to the next bar.
    bar, gap, line, spacing = 0.34, 0.04, 0.16, 0.1
    row = bar + gap + line * lines + spacing
    fig, ax = plt.subplots(
        figsize=(FIGURE_WIDTH, max(2.5, row * len(values) + 1.5)), layout="constrained"
    )
    top = np.nanmax(values.to_numpy()) if values.notna().any() else np.nan
    best = [v == top for v in values.to_numpy()]  # ties too
    colors = ["tab:orange" if b else "tab:blue" for b in best]
    positions = -np.arange(len(values), dtype=float)  # one unit per row, first on top
    bars = ax.barh(positions, values.fillna(0.0).to_numpy(), height=bar / row, color=colors)
    for y, label in zip(positions, labels, strict=True):
        ax.text(
            0.005,
            y + (bar / 2 + gap) / row,
            label,
            va="bottom",
            ha="left",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
        )
    last = positions[-1] if len(values) else 0.0
    ax.set_ylim(last - (bar / 2 + spacing) / row, (bar / 2 + gap + line * lines + gap) / row)
    texts = ["n/a" if np.isnan(v) else f"{v:.3f}" for v in values.to_numpy()]
    ax.bar_label(
        bars,
        labels=texts,
        padding=3,
        fontsize=9,
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
    )
    ax.set_yticks([])
    upper = np.nanmax([1.0, *values.to_numpy(), baseline if baseline is not None else np.nan])
    ax.set_xlim(0, float(upper) * 1.12)  # room for the value labels
    handles: list[Artist] = [Patch(color="tab:orange", label="best")]
    if not all(best):
        handles.append(Patch(color="tab:blue", label="other candidates"))
    if baseline is not None:
        marker = ax.axvline(baseline, color="red", linestyle="--", zorder=0.5)
        marker.set_label(_wrap(f"{baseline_label} = {baseline:.3f}", LEGEND_CHARS))
        handles.append(marker)
    fig.legend(
        handles=handles, loc="outside lower center", ncols=len(handles), frameon=False, fontsize=9
    )
    ax.set_xlabel(_wrap(xlabel or metric, TITLE_CHARS))
    ax.set_title(_wrap(title or f"Candidate models: {metric}", TITLE_CHARS))
    ax.grid(axis="x", alpha=0.3)
    return fig


def scores_bar_png(
    scores: pd.Series,
    path: PathLike,
    metric: str = "accuracy",
    baseline: float | None = None,
    title: str | None = None,
    baseline_label: str = "baseline",
    xlabel: str | None = None,
) -> Path:
    """Compare candidate models: one horizontal bar per candidate, the best one(s) highlighted.

    ``scores`` is indexed by candidate label, its values are ``metric``. Candidates keep their
    given order, first on top, each numbered and labelled above its bar. ``baseline`` draws a
    vertical line, named ``baseline_label`` in the legend; ``xlabel`` defaults to ``metric``.
    """
    figure = scores_bar_figure(scores, metric, baseline, title, baseline_label, xlabel)
    return _save(figure, path)
