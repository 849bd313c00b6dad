"""The report's figures, drawn with Matplotlib (Agg, no display, no global pyplot state) and
returned as PNG data URIs, so the page is one self-contained file.

Every function takes plain numbers (already read from results files) and returns a string
``data:image/png;base64,...``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Curve = Mapping[str, Sequence[float]]


def _figure(width: float = 6.4, height: float = 3.6, layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def to_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def certified_accuracy_curves(curves: Mapping[str, Curve]) -> str:
    """Certified accuracy versus l2 radius, one line per model (``{"radius", "certified_accuracy"}``)."""
    many = len(curves) > 8
    fig = _figure(9.6 if many else 6.4, 3.6 + 0.1 * max(0, len(curves) - 20))
    ax = fig.add_subplot()
    for label, c in curves.items():
        ax.plot(c["radius"], c["certified_accuracy"], label=label, drawstyle="steps-post")
    ax.set(xlabel="l2 radius ([0,1] pixel units)", ylabel="certified accuracy", ylim=(0, 1))
    ax.grid(alpha=0.3)
    if many:
        fig.legend(loc="outside right upper", fontsize=6, ncol=1 + len(curves) // 30)
    else:
        ax.legend(fontsize=8)
    return to_data_uri(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points (cost, value) no other point beats: lower or equal cost with higher value;
    sorted by cost."""
    front: list[tuple[float, float]] = []
    for cost, value in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or value > front[-1][1]:
            front.append((cost, value))
    return front


def acr_vs_bitops(points: Sequence[tuple[str, float, float]],
                  episodes: Sequence[tuple[float, float]] = ()) -> str:
    """ACR of each evaluated model (label, BitOPs %, ACR) with their Pareto front; search
    episodes (held-out, IRS) as faint points."""
    fig = _figure(9.0, 3.8)
    ax = fig.add_subplot()
    if episodes:
        e = np.asarray(episodes)
        ax.scatter(e[:, 0], e[:, 1], s=10, color="0.7", label="search episodes (held-out, IRS)")
    markers = "osD^v<>ph*"
    for k, (label, b, a) in enumerate(points):
        ax.scatter([b], [a], s=45, zorder=3, marker=markers[k % len(markers)], label=label,
                   alpha=0.85)
    front = pareto_front([(b, a) for _, b, a in points])
    if len(front) > 1:
        f = np.asarray(front)
        ax.plot(f[:, 0], f[:, 1], "k--", lw=1, label="Pareto front (test)")
    ax.set_xscale("log")
    ax.set(xlabel="BitOPs (% of FP32, log scale)", ylabel="ACR (l2)")
    ax.grid(alpha=0.3, which="both")
    fig.legend(loc="outside right upper", fontsize=7)
    return to_data_uri(fig)


def policy_bits(policy: Mapping[str, Mapping[str, int]]) -> str:
    """Per-layer weight and activation bits of a policy (``{layer: {"w", "a"}}``); FP (32) is
    drawn as a hatched bar at the top of the scale."""
    names = list(policy)
    w = np.array([policy[n]["w"] for n in names], float)
    a = np.array([policy[n]["a"] for n in names], float)
    x = np.arange(len(names))
    fig = _figure(max(6.4, 0.28 * len(names) + 2), 3.4)
    ax = fig.add_subplot()
    for offset, bits, label in ((-0.2, w, "weights"), (0.2, a, "activations")):
        shown = np.where(bits > 8, 9, bits)
        bars = ax.bar(x + offset, shown, 0.4, label=label)
        for bar, b in zip(bars, bits, strict=True):
            if b > 8:
                bar.set_hatch("//")
    ax.set_xticks(x, names, rotation=90, fontsize=7)
    ax.set_yticks(range(0, 10), [*map(str, range(0, 9)), "FP"])
    ax.set(ylabel="bits")
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def rewards(series: Mapping[str, Sequence[float]], warmup: int = 0) -> str:
    """Reward per episode for each search; the warm-up (random exploration) shaded."""
    fig = _figure(6.4, 3.0)
    ax = fig.add_subplot()
    for label, r in series.items():
        ax.plot(range(len(r)), r, marker="o", ms=3, label=label)
        ax.plot(range(len(r)), np.maximum.accumulate(np.asarray(r, float)), lw=0.8, ls=":")
    if warmup:
        ax.axvspan(-0.5, warmup - 0.5, color="0.9", label="warm-up")
    ax.set(xlabel="episode", ylabel="reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_data_uri(fig)


def heatmap(values: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str,
            fmt: str = "{:.3f}", reverse: bool = False,
            scale: tuple[float, float] = (0.0, 1.0)) -> str:
    """A labelled heat map with a colour bar on the fixed ``scale`` (the metric's range, not
    the plot's own, so 0.983 and 0.984 look alike); values beyond it take the end colours.
    NaN cells (not run) are left blank. ``reverse`` for lower-is-better."""
    fig = _figure(2.0 + 0.9 * len(cols), 0.9 + 0.45 * len(rows))
    ax = fig.add_subplot()
    v = np.ma.masked_invalid(np.asarray(values, float))
    im = ax.imshow(v, cmap="viridis_r" if reverse else "viridis", aspect="auto",
                   vmin=scale[0], vmax=scale[1])
    fig.colorbar(im, ax=ax, fraction=0.08, pad=0.03).ax.tick_params(labelsize=7)
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            if not np.ma.is_masked(v[i, j]):
                r, g, b, _ = im.cmap(im.norm(float(v[i, j])))
                dark = 0.299 * r + 0.587 * g + 0.114 * b > 0.55      # bright cell: dark text
                ax.text(j, i, fmt.format(float(v[i, j])), ha="center", va="center", fontsize=8,
                        color="black" if dark else "white")
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title(title, fontsize=9)
    return to_data_uri(fig)


def image_grid(images: Sequence[tuple[str, np.ndarray]], columns: int = 8) -> str:
    """Small labelled images (uint8, HWC with C = 1 or 3, or HW), ``columns`` per row."""
    rows = max(1, -(-len(images) // columns))
    fig = _figure(1.15 * columns, 1.3 * rows, layout=None)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.1, hspace=0.45)
    for k, (label, img) in enumerate(images):
        ax = fig.add_subplot(rows, columns, k + 1)
        arr = np.asarray(img)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        ax.set_title(label, fontsize=6)
        ax.axis("off")
    return to_data_uri(fig)


def amplification(curves: Mapping[str, Mapping[str, float]],
                  styles: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """Per-layer error amplification ||a(x_adv) - a(x)|| / ||a(x)||, one line per model;
    ``styles[label]`` are Matplotlib line properties (e.g. color, linestyle)."""
    fig = _figure()
    ax = fig.add_subplot()
    for label, per_layer in curves.items():
        ax.plot(range(len(per_layer)), list(per_layer.values()), marker=".", label=label,
                **(styles or {}).get(label, {}))
    ax.set(xlabel="layer (input to output)", ylabel="relative activation error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return to_data_uri(fig)


def dq_styles(rows: Sequence[Mapping]) -> dict[str, dict[str, str]]:
    """Line styles for DQ experiment rows (label ``"<model> a<bits>"``): one colour per
    activation bit-width, vanilla solid, DQ dashed, FP models black / grey."""
    bits = sorted({r["a_bits"] for r in rows if r["a_bits"] < 32})
    out = {}
    for r in rows:
        label = f"{r['model']} a{r['a_bits']}"
        if r["a_bits"] >= 32:
            out[label] = {"color": "black" if r["model"] == "FP32" else "0.55", "linestyle": "-"}
        else:
            out[label] = {"color": f"C{bits.index(r['a_bits'])}",
                          "linestyle": "--" if r["model"] == "dq" else "-"}
    return out
