"""report.html's figures: matplotlib, drawn off-screen (Agg) into PNG bytes.

PNG rather than SVG: a scatter of thousands of points per proxy stays a small image, and
the page embeds it as a data: URI, so the file opens with no network. Figures are built on
``matplotlib.figure.Figure`` directly, never through pyplot, so no global figure state or
interactive backend is touched from the reducer (which may run inside a Ray driver).
"""
from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

DPI = 96
NAVY, ORANGE, GREY = "#1f4e79", "#d9480f", "#9aa5b1"


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (no timestamp or software tag: the same data, the same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, bbox_inches="tight")
    return buf.getvalue()


def scatter_grid(panels: Sequence[tuple[str, np.ndarray, np.ndarray, float, int]]) -> bytes:
    """One small scatter per proxy of (proxy rank, accuracy rank); panels are
    (name, x, y, rho, n_cells)."""
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (name, x, y, rho, n) in zip(axes, panels):
        ax.scatter(x, y, s=6, alpha=0.6, color=NAVY, linewidths=0, rasterized=True)
        ax.plot([1, n], [1, n], color=GREY, linewidth=0.8, linestyle="--")
        ax.set_title(f"{name}  ρ = {rho:+.3f}" if np.isfinite(rho) else f"{name}  ρ = –", fontsize=10)
        ax.set_xlabel("proxy rank (1 = best score)", fontsize=8)
        ax.set_ylabel("accuracy rank (1 = best)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return png(fig)


def heatmap(names: Sequence[str], matrix: np.ndarray) -> bytes:
    """Proxy-by-proxy correlations, -1 (blue) to +1 (red), values written in the cells."""
    size = max(4.0, 0.55 * len(names) + 2.0)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(value) > 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="Spearman ρ")
    fig.tight_layout()
    return png(fig)


def frontier(names: Sequence[str], seconds: np.ndarray, rho: np.ndarray, low: np.ndarray, high: np.ndarray,
             on_front: np.ndarray, interval_label: str) -> bytes:
    """|rho| against median seconds per cell (log scale), error bars, the front joined up."""
    fig = Figure(figsize=(8.0, 5.0))
    ax = fig.subplots()
    err = np.vstack([np.clip(rho - low, 0, None), np.clip(high - rho, 0, None)])
    err = np.where(np.isfinite(err), err, 0.0)
    for mask, color, label in ((~on_front, GREY, "dominated"), (on_front, ORANGE, "Pareto front")):
        if mask.any():
            ax.errorbar(seconds[mask], rho[mask], yerr=err[:, mask], fmt="o", color=color, ecolor=color,
                        capsize=3, label=label)
    front = np.flatnonzero(on_front)
    front = front[np.argsort(seconds[front])]
    ax.step(seconds[front], rho[front], where="post", color=ORANGE, linewidth=1, alpha=0.7)
    for name, x, y in zip(names, seconds, rho):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if np.all(seconds[np.isfinite(seconds)] > 0):
        ax.set_xscale("log")
    ax.set_xlabel("median seconds per cell (ok cells)")
    ax.set_ylabel(f"|Spearman ρ| ({interval_label})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return png(fig)


def topk_curves(percents: np.ndarray, curves: dict[str, np.ndarray]) -> bytes:
    """Precision at top K% against K, one line per proxy, random choice dashed."""
    fig = Figure(figsize=(8.0, 5.0))
    ax = fig.subplots()
    for name, curve in curves.items():
        ax.plot(percents, curve, linewidth=1.4, label=name)
    ax.plot(percents, percents / 100.0, color="black", linestyle="--", linewidth=1, label="random (K%)")
    ax.set_xlabel("K (% of cells)")
    ax.set_ylabel("precision at top K%")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return png(fig)


def search_curves(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], ylabel: str) -> bytes:
    """Best accuracy found against truth queries, one line per search variant (the mean
    over runs) with the band between the runs' 25th and 75th percentiles."""
    fig = Figure(figsize=(8.0, 5.0))
    ax = fig.subplots()
    for name, (mean, low, high) in curves.items():
        x = np.arange(1, len(mean) + 1)
        line = ax.plot(x, mean, linewidth=1.4, label=name)[0]
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel("truth queries (cells 'trained')")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return png(fig)
