"""The report's figures, drawn with matplotlib's Agg backend into PNG files.

Each function takes plain data (lists and arrays, already read from the results layout by
`reports.report`) and a path, writes one PNG and returns the path. A figure that cannot be drawn raises
`FigureSkipped` with the reason, which the report prints in the figure's place.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from islesbench.atomic import atomic_path
from islesbench.reports.stats import is_finite
from islesbench.storage import history

# matplotlib imported inside functions only, so that `islesbench --help` and start-up stay fast.

DPI = 110
REFERENCE_COLOUR = "#00e000"  # green: the reference (OT) outline
PREDICTION_COLOUR = "#ff2020"  # red: the predicted outline


class FigureSkipped(Exception):
    """A figure could not be drawn; the message says why, in a form fit for the report."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:

    plt = _pyplot()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def dice_box_strip(groups: list, path) -> Path:
    """Box plot with the individual cases overlaid, one row per (label, dice values), best on top."""
    groups = [(label, [v for v in values if is_finite(v)]) for label, values in groups]
    groups = [(label, values) for label, values in groups if values]
    if not groups:
        raise FigureSkipped("no configuration has a finite Dice value")
    groups.sort(key=lambda g: np.mean(g[1]))  # matplotlib draws the first row at the bottom
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 0.9 + 0.48 * len(groups)))
    positions = np.arange(1, len(groups) + 1)
    ax.boxplot(
        [values for _, values in groups],
        positions=positions,
        orientation="horizontal",
        widths=0.6,
        showfliers=False,  # every case is drawn as a point already
        medianprops={"color": "black", "linewidth": 1.5},
        boxprops={"color": "#555555"},
        whiskerprops={"color": "#555555"},
        capprops={"color": "#555555"},
    )
    rng = np.random.default_rng(0)  # fixed jitter: the same report twice gives the same figure
    for pos, (_, values) in zip(positions, groups):
        jitter = rng.uniform(-0.18, 0.18, size=len(values))
        ax.scatter(values, pos + jitter, s=14, alpha=0.65, color="#1f77b4", edgecolors="none", zorder=3)
        ax.scatter([np.mean(values)], [pos], marker="D", s=36, color="#d62728", zorder=4)
    ax.set_yticks(positions, [f"{label}  (n={len(values)})" for label, values in groups])
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("Dice per case")
    ax.set_title("Dice per configuration (box: quartiles; dots: cases; red diamond: mean)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def read_history(path) -> dict:
    """A history.csv (islesbench.storage.history) as {column: list of floats} (non-numeric entries are NaN)."""
    try:
        return history.read_columns(path)
    except history.UnreadableHistory as exc:
        raise FigureSkipped(f"unreadable history {path} ({exc.cause})") from None


def learning_curves(curves: list, path) -> Path:
    """Per configuration (a row): loss and Dice per epoch, one colour per fold, validation dashed.

    `curves` is a list of (label, {fold: history.csv path}).
    """
    loaded = []
    for label, histories in curves:
        per_fold = {}
        for fold, hist_path in sorted(histories.items()):
            h = read_history(hist_path)
            if h.get("loss"):
                per_fold[fold] = h
        if per_fold:
            loaded.append((label, per_fold))
    if not loaded:
        raise FigureSkipped("no run has a history.csv with a loss column (the threshold baseline trains nothing)")
    plt = _pyplot()
    fig, axes = plt.subplots(len(loaded), 2, figsize=(10.0, 2.4 * len(loaded) + 0.6), squeeze=False)
    from matplotlib.ticker import MaxNLocator

    colours = plt.get_cmap("tab10")
    for row, (label, per_fold) in enumerate(loaded):
        ax_loss, ax_dice = axes[row]
        last_epoch = 1
        for fold, h in per_fold.items():
            colour = colours(fold % 10)
            epochs = _epochs(h)
            # Markers keep a one-epoch run visible (a line needs two points).
            ax_loss.plot(epochs, h["loss"], color=colour, marker="o", markersize=3, label=f"fold {fold}")
            if h.get("val_loss"):
                ax_loss.plot(epochs, h["val_loss"], color=colour, linestyle="--", marker="s", markersize=3)
            for validation, style, marker in ((False, "-", "o"), (True, "--", "s")):
                col = history.dice_column(h, validation)
                if col:
                    ax_dice.plot(epochs, h[col], color=colour, linestyle=style, marker=marker, markersize=3)
            last_epoch = max(last_epoch, max(epochs))
        ax_loss.set_ylabel(label, fontsize=9, fontweight="bold")
        ax_loss.set_title("loss (solid: train, dashed: validation)", fontsize=9)
        ax_dice.set_title("Dice (solid: train, dashed: validation)", fontsize=9)
        ax_dice.set_ylim(-0.02, 1.02)
        for ax in (ax_loss, ax_dice):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
            ax.set_xlim(0.5, last_epoch + 0.5)
        ax_loss.legend(fontsize=7, loc="upper right", ncol=2)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return _save(fig, path)


def _epochs(h: dict) -> list:
    n = len(h["loss"])
    if h.get("epoch") and all(is_finite(e) for e in h["epoch"]):
        return [int(e) + 1 for e in h["epoch"]]  # CSVLogger counts from 0; people count from 1
    return list(range(1, n + 1))


def dice_vs_volume(series: list, path) -> Path:
    """Dice against reference lesion volume (mL, log axis); `series` is [(label, volumes, dices)].

    Cases with an empty reference (volume 0) cannot sit on a log axis; they are counted in the title.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    markers = "osD^v<>ph*"
    colours = plt.get_cmap("tab10")
    drawn, empty = 0, 0
    for i, (label, volumes, dices) in enumerate(series):
        v = np.asarray(volumes, dtype=float)
        d = np.asarray(dices, dtype=float)
        keep = np.isfinite(v) & np.isfinite(d) & (v > 0)
        empty = max(empty, int(np.sum(np.isfinite(v) & (v <= 0))))
        if not keep.any():
            continue
        ax.scatter(v[keep], d[keep], s=22, alpha=0.75, marker=markers[i % len(markers)],
                   color=colours(i % 10), label=label, edgecolors="none")
        drawn += int(keep.sum())
    if not drawn:
        plt.close(fig)
        raise FigureSkipped("no case with a non-empty reference lesion and a finite Dice")
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 2, 5, 10 rather than 2×10⁰
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if _leading_digit(v) in (2, 5) else ""))
    ax.tick_params(axis="x", which="minor", labelsize=8)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("reference lesion volume (mL, log scale)")
    ax.set_ylabel("Dice")
    title = "Dice against reference lesion volume"
    if empty:
        title += f" ({empty} case(s) with an empty reference not shown)"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, path)


def data_efficiency(series: list, path) -> Path:
    """Dice against training patients: `series` is [(label, [(patients, mean, low, high, fraction), ...])],
    one line per initialisation, 95 % intervals as bars, each point labelled with its fraction."""
    series = [(label, [p for p in points if is_finite(p[0]) and is_finite(p[1])]) for label, points in series]
    series = [(label, sorted(points)) for label, points in series if points]
    if not series:
        raise FigureSkipped("no configuration has a finite Dice at any training fraction")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    spread = max(p[0] for _, points in series for p in points) * 0.012  # side-by-side bars stay readable
    for i, (label, points) in enumerate(series):
        shift = (i - (len(series) - 1) / 2) * spread
        x = np.array([p[0] for p in points]) + shift
        mean = np.array([p[1] for p in points])
        err = np.array([[m - p[2] for m, p in zip(mean, points)], [p[3] - m for m, p in zip(mean, points)]])
        ax.errorbar(x, mean, yerr=np.clip(err, 0, None), marker="o", capsize=4, linewidth=1.6, label=label)
        if i == 0:
            for xi, p in zip(x, points):
                ax.annotate(f"{p[4]:g}", (xi, 0.02), ha="center", fontsize=8, color="#555555")
    ax.set_xlabel("training patients per fold (mean over folds; grey: fraction of the fold's patients)")
    ax.set_ylabel("Dice, mean over validation patients")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")  # the fractions are labelled along the bottom
    ax.set_title("Data efficiency (bars: 95 % patient-level bootstrap interval)", fontsize=10)
    return _save(fig, path)


def _leading_digit(v: float) -> int:
    return int(round(v / 10 ** math.floor(math.log10(v)))) if v > 0 else 0


def largest_lesion_slice(reference: np.ndarray, prediction: np.ndarray | None = None) -> int:
    """The axial slice (last axis) with the largest reference area; else largest predicted; else middle."""
    for mask in (reference, prediction):
        if mask is not None and np.any(mask):
            return int(np.argmax(np.asarray(mask, bool).sum(axis=(0, 1))))
    return reference.shape[2] // 2


def example_slices(examples: list, path, title: str = "") -> Path:
    """CBF and Tmax slices with reference (green) and predicted (red) outlines, one row per example.

    Each example is a dict: role ("best"/"median"/"worst"), case, dice, cbf, tmax, reference, prediction
    (3D arrays of one shape) and spacing (x, y, z in mm).
    """
    if not examples:
        raise FigureSkipped("no example case to draw")
    plt = _pyplot()
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(len(examples), 2, figsize=(8.4, 3.6 * len(examples) + 0.8), squeeze=False,
                             layout="constrained")
    for row, ex in enumerate(examples):
        ref = np.asarray(ex["reference"], bool)
        pred = np.asarray(ex["prediction"], bool)
        z = largest_lesion_slice(ref, pred)
        sx, sy = (float(s) for s in ex["spacing"][:2])
        for col, (key, name, unit) in enumerate((("cbf", "CBF", "mL/100 g/min"), ("tmax", "Tmax", "s"))):
            ax = axes[row][col]
            img = np.asarray(ex[key], float)[:, :, z].T  # x across, y up
            lo, hi = _window(np.asarray(ex[key], float))
            shown = ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower", aspect=sy / sx,
                              interpolation="nearest")
            # The reference is drawn wider and first, so it still shows where the outlines coincide.
            for mask, colour, width in ((ref, REFERENCE_COLOUR, 2.4), (pred, PREDICTION_COLOUR, 1.2)):
                sl = mask[:, :, z].T
                if sl.any() and not sl.all():
                    ax.contour(sl.astype(float), levels=[0.5], colors=[colour], linewidths=width)
            ax.set_xticks([])
            ax.set_yticks([])
            cbar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
            cbar.ax.tick_params(labelsize=7)
            cbar.set_label(f"{name} ({unit})", fontsize=8)
            empty = "" if ref.any() else " (empty reference)"
            ax.set_title(f"{ex['role']}: {ex['case']}{empty}, Dice {ex['dice']:.3f}, {name}, "
                         f"slice {z + 1}/{ref.shape[2]}", fontsize=9)
    handles = [Line2D([], [], color=REFERENCE_COLOUR, lw=2, label="reference"),
               Line2D([], [], color=PREDICTION_COLOUR, lw=2, label="prediction")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _window(volume: np.ndarray) -> tuple[float, float]:
    """Display range: 1st–99th percentile of the non-zero (in-brain) voxels, so outliers do not wash out."""
    v = volume[np.isfinite(volume) & (volume != 0)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1)

