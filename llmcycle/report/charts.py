"""Charts for reports (matplotlib, Agg backend, PNG files): metric bars and histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(values: Mapping[str, Mapping[str, float]], path: str | Path, title: str, ylabel: str = "") -> Path:
    """Grouped bars: one group per metric, one bar per model (``values[model][metric]``)."""
    plt = _plt()
    models = list(values)
    metrics = list(next(iter(values.values()))) if values else []
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(metrics) * max(len(models), 1) ** 0.5 + 2), 3.6), dpi=110)
    for i, model in enumerate(models):
        xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(metrics))]
        bars = ax.bar(xs, [values[model].get(m, 0.0) for m in metrics], width, label=model)
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=1)
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="best")
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def histogram(series: Mapping[str, Sequence[float]], path: str | Path, title: str, xlabel: str,
              bins: int = 20) -> Path:
    """Overlaid histograms, one per model."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.4), dpi=110)
    for name, vals in series.items():
        if len(vals):
            ax.hist(list(vals), bins=bins, alpha=0.55, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Write atomically (temporary file, then rename), close the figure."""
    import os

    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.tight_layout()
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], path: str | Path, title: str,
               xlabel: str = "step", ylabel: str = "") -> Path:
    """One line per series of ``(x, y)`` points (loss curves: training and validation loss by step)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.4), dpi=110)
    for name, points in series.items():
        if len(points):
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if len(points) < 30 else None, markersize=3, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)
