"""Line charts drawn with Pillow (already a dependency), so a plot needs no matplotlib.

One figure holds a grid of panels (e.g. one per metric), each a set of lines sharing x values
(e.g. k = 10, 20, 30), and a legend. Colours follow the series order, the same in every panel. A
series identical to an earlier one (a hybrid whose tuned weights reduce it to one leg) is drawn
dashed on top, so both stay visible, and its legend entry names the series it equals.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from mmsearch.errors import ConfigError

PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#ad494a",
    "#637939",
    "#8c6d31",
    "#7b4173",
    "#3182bd",
)
BACKGROUND = "white"
INK = "#222222"
GRID = "#e3e3e3"


@dataclass(frozen=True)
class Panel:
    """One chart: a title, shared x values, and named y series (NaN points are skipped)."""

    title: str
    xs: Sequence[float]
    series: Mapping[str, Sequence[float]]


Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1, or built without FreeType
        return ImageFont.load_default()


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n that is >= value (1 for value <= 0)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10.0**exponent
        if candidate >= value * (1 - 1e-12):
            return candidate
    return 10.0 ** (exponent + 1)


def _text_width(draw: ImageDraw.ImageDraw, text: str, font: Font) -> float:
    return draw.textlength(text, font=font)


def _draw_panel(
    draw: ImageDraw.ImageDraw,
    panel: Panel,
    box: tuple[int, int, int, int],
    colours: Mapping[str, str],
    fonts: tuple[Font, Font],
    duplicates: Mapping[str, str],
) -> None:
    small, bold = fonts
    left, top, right, bottom = box
    plot_l, plot_t, plot_r, plot_b = left + 58, top + 30, right - 16, bottom - 36
    draw.text(((left + right) / 2, top + 6), panel.title, fill=INK, font=bold, anchor="mt")
    values = [v for ys in panel.series.values() for v in ys if v is not None and math.isfinite(v)]
    y_max = nice_ceiling(max(values) * 1.05 if values else 1.0)
    xs = [float(x) for x in panel.xs]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    span = (x_hi - x_lo) or 1.0

    def px(x: float) -> float:
        return plot_l + 12 + (x - x_lo) / span * (plot_r - plot_l - 24)

    def py(y: float) -> float:
        return plot_b - y / y_max * (plot_b - plot_t)

    for i in range(6):
        y = y_max * i / 5
        draw.line([(plot_l, py(y)), (plot_r, py(y))], fill=GRID, width=1)
        label = f"{y:.3g}"
        draw.text((plot_l - 6, py(y)), label, fill=INK, font=small, anchor="rm")
    for x in xs:
        draw.line([(px(x), plot_b), (px(x), plot_b + 4)], fill=INK, width=1)
        draw.text((px(x), plot_b + 7), f"{x:g}", fill=INK, font=small, anchor="mt")
    draw.text(((plot_l + plot_r) / 2, bottom - 4), "k", fill=INK, font=small, anchor="mb")
    draw.rectangle([plot_l, plot_t, plot_r, plot_b], outline=INK, width=1)
    for name, ys in panel.series.items():
        colour = colours[name]
        points = [(px(x), py(y)) for x, y in zip(xs, ys, strict=False) if y is not None and math.isfinite(y)]
        # A series equal to an earlier one is dashed, so the line it covers shows through the gaps.
        dashed = name in duplicates
        for a, b in itertools.pairwise(points):
            if dashed:
                _dashed_line(draw, a, b, colour)
            else:
                draw.line([a, b], fill=colour, width=3)
        radius = 2.5 if dashed else 4.5
        for x, y in points:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)


def _dashed_line(
    draw: ImageDraw.ImageDraw,
    a: tuple[float, float],
    b: tuple[float, float],
    colour: str,
    dash: float = 9.0,
    gap: float = 7.0,
) -> None:
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    if length == 0:
        return
    ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
    start = 0.0
    while start < length:
        end = min(start + dash, length)
        draw.line([(a[0] + ux * start, a[1] + uy * start), (a[0] + ux * end, a[1] + uy * end)], fill=colour, width=3)
        start = end + gap


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and ((math.isnan(x) and math.isnan(y)) or x == y))
        for x, y in zip(a, b, strict=True)
    )


def duplicate_series(panels: Sequence[Panel]) -> dict[str, str]:
    """Series equal, in every panel, to an earlier series: name -> the earlier one's name."""
    names = list(dict.fromkeys(name for p in panels for name in p.series))
    out: dict[str, str] = {}
    for i, name in enumerate(names):
        for earlier in names[:i]:
            if earlier not in out and all(
                (name in p.series) == (earlier in p.series)
                and (name not in p.series or _same(p.series[name], p.series[earlier]))
                for p in panels
            ):
                out[name] = earlier
                break
    return out


def _draw_legend(
    draw: ImageDraw.ImageDraw,
    at: tuple[int, int],
    labels: Mapping[str, str],
    colours: Mapping[str, str],
    font: Font,
    duplicates: Mapping[str, str],
) -> None:
    """One line per series from `at` down: its stroke (dashed for a duplicate), a dot, its label."""
    x, top = at
    for i, name in enumerate(labels):
        y = top + 24 * i
        if name in duplicates:
            _dashed_line(draw, (x, y), (x + 24, y), colours[name], dash=6.0, gap=4.0)
        else:
            draw.line([(x, y), (x + 24, y)], fill=colours[name], width=3)
        draw.ellipse([x + 8, y - 4, x + 16, y + 4], fill=colours[name])
        draw.text((x + 32, y), labels[name], fill=INK, font=font, anchor="lm")


def line_chart(
    panels: Sequence[Panel],
    path: str | Path,
    *,
    title: str = "",
    columns: int = 2,
    panel_size: tuple[int, int] = (440, 320),
) -> Path:
    """Draw `panels` in a grid with one legend and write a PNG.

    Args:
        panels: the charts; series names across panels share colours (first appearance order).
        path: the PNG to write (its folder is created).
        title: a line above the grid.
        columns: panels per row.
        panel_size: (width, height) of one panel in pixels.

    Returns:
        The path written.

    Raises:
        ConfigError: no panel, more series than colours, or `columns` below 1.
    """
    if not panels:
        raise ConfigError("a chart needs at least one panel")
    if columns < 1:
        raise ConfigError(f"columns {columns!r} must be at least 1")
    names = list(dict.fromkeys(name for p in panels for name in p.series))
    if len(names) > len(PALETTE):
        raise ConfigError(f"{len(names)} series but only {len(PALETTE)} colours; plot fewer strategies")
    colours = {name: PALETTE[i] for i, name in enumerate(names)}
    duplicates = duplicate_series(panels)
    labels = {n: f"{n} (= {duplicates[n]})" if n in duplicates else n for n in names}
    small, bold = _font(13), _font(15)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    legend_w = 40 + int(max((_text_width(probe, labels[n], small) for n in names), default=0))
    width_p, height_p = panel_size
    rows = math.ceil(len(panels) / columns)
    title_h = 36 if title else 8
    width = min(columns, len(panels)) * width_p + legend_w + 16
    height = max(title_h + rows * height_p + 8, title_h + 24 * len(names) + 16)
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((width / 2, 10), title, fill=INK, font=bold, anchor="mt")
    for i, panel in enumerate(panels):
        r, c = divmod(i, columns)
        box = (c * width_p, title_h + r * height_p, (c + 1) * width_p, title_h + (r + 1) * height_p)
        _draw_panel(draw, panel, box, colours, (small, bold), duplicates)
    legend_x = min(columns, len(panels)) * width_p + 8
    _draw_legend(draw, (legend_x, title_h + 30), labels, colours, small, duplicates)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


__all__ = ["PALETTE", "Panel", "duplicate_series", "line_chart", "nice_ceiling"]
