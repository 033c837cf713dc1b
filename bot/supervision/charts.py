"""Charts of the supervisor console, drawn on the server as SVG strings: no script, no
external resource, the same output for the same input (the page can be cached, compared,
printed).

Each chart is an `<svg role="img">` named by its `aria-label` and `<title>`, with a `<desc>`
listing every value, and a `<title>` on every bar and point (a pointer over a bar shows its
figure): supervisors compare numbers, not bar heights. Numbers people read are in French
("12,5 %", "1 250 ms"). Every text is XML-escaped.

The `<svg>` carries no `xmlns`: it is meant to be inlined in an HTML page, whose parser
gives it the SVG namespace (and the page then holds no URL at all). A standalone .svg file
would need `xmlns="http://www.w3.org/2000/svg"` added.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

__all__ = ["PALETTE", "bar_chart", "fr_number", "grouped_bar_chart", "line_chart"]

# Okabe-Ito: told apart by colour-blind readers too, and in grey when printed.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
_TEXT = "#1a1a1a"
_GRID = "#d0d0d0"
_FONT = 'font-family="sans-serif"'
_CHAR_W = 7.0                         # a generous average width of a 12 px sans-serif character
_MIN_BAR = 1.0                        # a measured zero still shows, unlike a missing value
NBSP, NNBSP = "\u00a0", "\u202f"      # before a unit; between groups of thousands
MISSING = "n.d."                      # "non disponible": a value that cannot be computed
# Characters XML 1.0 forbids even escaped: dropped, so a stray byte in a label cannot
# make the whole page unreadable.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def fr_number(value: float | None, unit: str = "", *, decimals: int = 1) -> str:
    """A number as a French reader writes it: "12,5 %", "1 250 ms", "3" (at most `decimals`
    decimals, half rounded up, trailing zeros dropped, narrow no-break spaces between
    thousands, a no-break space before the unit); MISSING for None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    quantum = Decimal(1).scaleb(-decimals)
    rounded = Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)      # no "-0"
    sign = "-" if rounded < 0 else ""
    whole, _, fraction = f"{abs(rounded):f}".partition(".")
    fraction = fraction.rstrip("0")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    text = sign + NNBSP.join(groups) + ("," + fraction if fraction else "")
    return f"{text}{NBSP}{unit}" if unit else text


def _esc(text: object) -> str:
    """Escaped for XML text and double-quoted attributes alike."""
    clean = _INVALID_XML.sub("", str(text))
    return (clean.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def _c(x: float) -> str:
    """A coordinate, short and always written the same way."""
    return f"{x:.1f}"


def _nice_scale(top: float, *, integers: bool) -> tuple[float, list[float]]:
    """An axis maximum at or above `top` and its ticks: 4 to 6 round steps (1, 2, 5 x 10^n)."""
    if top <= 0:
        top = 1.0
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw - 1e-12)
    if integers:
        step = max(step, 1.0)
    maximum = round(math.ceil(top / step - 1e-9) * step, 10)
    count = round(maximum / step)
    return maximum, [round(i * step, 10) for i in range(count + 1)]


def _all_integers(values: Sequence[float | None]) -> bool:
    return all(v is None or float(v).is_integer() for v in values)


def _open(title: str, width: int, height: int, desc: str) -> list[str]:
    return [
        (f'<svg class="chart" role="img" aria-label="{_esc(title)}" viewBox="0 0 {width} {height}" '
         f'width="{width}" height="{height}" {_FONT} font-size="12">'),
        f"<title>{_esc(title)}</title>",
        f"<desc>{_esc(desc)}</desc>",
        f'<text x="8" y="20" font-size="14" font-weight="bold" fill="{_TEXT}">{_esc(title)}</text>',
    ]


def _empty(title: str, width: int, height: int) -> str:
    parts = _open(title, width, height, "Aucune donnée")
    parts.append(f'<text x="{_c(width / 2)}" y="{_c(height / 2)}" text-anchor="middle" '
                 f'fill="{_TEXT}">Aucune donnée</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _text_width(text: str) -> float:
    return _CHAR_W * len(text)


def _legend(names: Sequence[str], width: int) -> tuple[list[str], float]:
    """The series' colours and names under the title, on as many rows as they need; and
    where the plot can begin below them."""
    parts = ['<g class="legend">']
    x, y = 8.0, 40.0
    for i, name in enumerate(names):
        item = 24 + _text_width(name)
        if x > 8 and x + item > width - 8:
            x, y = 8.0, y + 16
        parts.append(f'<rect x="{_c(x)}" y="{_c(y - 9)}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{_c(x + 14)}" y="{_c(y)}" fill="{_TEXT}">{_esc(name)}</text>')
        x += item
    parts.append("</g>")
    return parts, y + 14


def _left_margin(ticks: list[float], unit: str) -> float:
    """Room for the longest tick label ("2 000 ms") left of the plot."""
    return 12 + max(_text_width(fr_number(t, unit, decimals=2)) for t in ticks)


def _bar_size(value: float, maximum: float, span: float) -> float:
    return max(span * max(value, 0) / maximum, _MIN_BAR)


def _y_axis(ticks: list[float], maximum: float, unit: str, left: float, right: float, top: float,
            bottom: float) -> list[str]:
    parts = ['<g class="axis">']
    for tick in ticks:
        y = bottom - (bottom - top) * tick / maximum
        parts.append(f'<line x1="{_c(left)}" y1="{_c(y)}" x2="{_c(right)}" y2="{_c(y)}" stroke="{_GRID}"/>')
        parts.append(f'<text x="{_c(left - 4)}" y="{_c(y + 4)}" text-anchor="end" fill="{_TEXT}">'
                     f"{_esc(fr_number(tick, unit, decimals=2))}</text>")
    parts.append("</g>")
    return parts


def _x_labels(labels: Sequence[str], xs: Sequence[float], y: float, *, max_labels: int) -> list[str]:
    """The category labels under the plot: every one when they fit, else every k-th (the
    figures' table lists them all), turned when they would overlap."""
    step = max(1, math.ceil(len(labels) / max_labels))
    turned = len(labels) > 12
    parts = ['<g class="labels">']
    for i in range(0, len(labels), step):
        if turned:
            parts.append(f'<text x="{_c(xs[i])}" y="{_c(y)}" text-anchor="end" fill="{_TEXT}" '
                         f'transform="rotate(-45 {_c(xs[i])} {_c(y)})">{_esc(labels[i])}</text>')
        else:
            parts.append(f'<text x="{_c(xs[i])}" y="{_c(y)}" text-anchor="middle" fill="{_TEXT}">'
                         f"{_esc(labels[i])}</text>")
    parts.append("</g>")
    return parts


def _check(labels: Sequence[str], values: Sequence[float | None], name: str = "values") -> None:
    if len(labels) != len(values):
        raise ValueError(f"chart: {len(labels)} labels for {len(values)} {name}")


def bar_chart(title: str, labels: list[str], values: list[float], *, unit: str = "", width: int = 640,
              height: int | None = None, horizontal: bool = False) -> str:
    """One bar per value. Vertical bars (hours, days), or `horizontal` ones for long category
    names (reasons, offices), whose height then follows the number of bars when `height` is
    None. Each bar holds a `<title>` "label : value", and its value is written beside it."""
    _check(labels, values)
    if not labels:
        return _empty(title, width, height or 120)
    desc = " ; ".join(f"{label} : {fr_number(v, unit)}" for label, v in zip(labels, values, strict=True))
    maximum, ticks = _nice_scale(max(values, default=0), integers=_all_integers(values))
    if horizontal:
        return _horizontal_bars(title, labels, values, unit, width, height, desc, maximum)
    height = height or 300
    left, right, top = _left_margin(ticks, unit), width - 16.0, 40.0
    bottom = height - (64.0 if len(labels) > 12 else 36.0)
    band = (right - left) / len(labels)
    parts = _open(title, width, height, desc) + _y_axis(ticks, maximum, unit, left, right, top, bottom)
    parts.append('<g class="bars">')
    centres = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = _bar_size(value, maximum, bottom - top)
        x = left + band * i + band * 0.15
        centres.append(left + band * (i + 0.5))
        parts.append(f'<rect x="{_c(x)}" y="{_c(bottom - h)}" width="{_c(band * 0.7)}" height="{_c(h)}" '
                     f'fill="{PALETTE[0]}"><title>{_esc(label)} : {_esc(fr_number(value, unit))}</title></rect>')
        if len(labels) <= 16:       # beyond, the written values would overlap: the titles remain
            parts.append(f'<text x="{_c(centres[-1])}" y="{_c(bottom - h - 4)}" text-anchor="middle" '
                         f'font-size="11" fill="{_TEXT}">{_esc(fr_number(value, unit))}</text>')
    parts.append("</g>")
    parts += _x_labels(labels, centres, bottom + (14 if len(labels) > 12 else 16),
                       max_labels=max(1, int((right - left) // 22)))
    parts.append("</svg>")
    return "\n".join(parts)


def _horizontal_bars(title: str, labels: list[str], values: list[float], unit: str, width: int,
                     height: int | None, desc: str, maximum: float) -> str:
    row = 22.0
    top = 36.0
    height = height or int(top + row * len(labels) + 12)
    row = (height - top - 12) / len(labels)
    left = min(width * 0.45, 14 + max(_text_width(label) for label in labels))
    fit = max(4, int((left - 14) // _CHAR_W))
    right = width - 70.0          # room for the written value
    parts = _open(title, width, height, desc)
    parts.append('<g class="bars">')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + row * i
        w = _bar_size(value, maximum, right - left)
        shown = label if len(label) <= fit else label[:fit - 1] + "…"
        parts.append(f'<text x="{_c(left - 6)}" y="{_c(y + row * 0.65)}" text-anchor="end" fill="{_TEXT}">'
                     f"{_esc(shown)}</text>")
        parts.append(f'<rect x="{_c(left)}" y="{_c(y + row * 0.15)}" width="{_c(w)}" height="{_c(row * 0.7)}" '
                     f'fill="{PALETTE[0]}"><title>{_esc(label)} : {_esc(fr_number(value, unit))}</title></rect>')
        parts.append(f'<text x="{_c(left + w + 4)}" y="{_c(y + row * 0.65)}" fill="{_TEXT}">'
                     f"{_esc(fr_number(value, unit))}</text>")
    parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _series_frame(title: str, labels: list[str], series: dict[str, list[float | None]], unit: str, width: int,
                  height: int) -> tuple[list[str], float, float, float, float, float]:
    """The opening of a chart of several series (checked against the labels): the SVG head
    with its text description, legend and y axis; and the scale and plot area
    (maximum, left, right, top, bottom) the bars or lines are drawn in."""
    for name, values in series.items():
        _check(labels, values, f"values of {name!r}")
    names = list(series)
    desc = " ; ".join(f"{label} : " + ", ".join(f"{name} {fr_number(series[name][i], unit)}" for name in names)
                      for i, label in enumerate(labels))
    every = [v for values in series.values() for v in values]
    maximum, ticks = _nice_scale(max((v for v in every if v is not None), default=0),
                                 integers=_all_integers(every))
    legend, top = _legend(names, width)
    left, right = _left_margin(ticks, unit), width - 16.0
    bottom = height - (64.0 if len(labels) > 12 else 36.0)
    parts = _open(title, width, height, desc) + legend + _y_axis(ticks, maximum, unit, left, right, top, bottom)
    return parts, maximum, left, right, top, bottom


def grouped_bar_chart(title: str, labels: list[str], series: dict[str, list[float | None]], *,
                      unit: str = "", width: int = 640, height: int = 300) -> str:
    """Bars side by side, one group per label and one colour per series (a legend names
    them); a missing value (None) draws no bar and reads "n.d."."""
    if not labels or not series:
        return _empty(title, width, height)
    names = list(series)
    parts, maximum, left, right, top, bottom = _series_frame(title, labels, series, unit, width, height)
    band = (right - left) / len(labels)
    bar = band * 0.8 / len(names)
    parts.append('<g class="bars">')
    for s, name in enumerate(names):
        for i, (label, value) in enumerate(zip(labels, series[name], strict=True)):
            if value is None:
                continue
            h = _bar_size(value, maximum, bottom - top)
            x = left + band * i + band * 0.1 + bar * s
            parts.append(f'<rect x="{_c(x)}" y="{_c(bottom - h)}" width="{_c(bar)}" height="{_c(h)}" '
                         f'fill="{PALETTE[s % len(PALETTE)]}"><title>{_esc(label)}, {_esc(name)} : '
                         f"{_esc(fr_number(value, unit))}</title></rect>")
    parts.append("</g>")
    centres = [left + band * (i + 0.5) for i in range(len(labels))]
    parts += _x_labels(labels, centres, bottom + (14 if len(labels) > 12 else 16),
                       max_labels=max(1, int((right - left) // 22)))
    parts.append("</svg>")
    return "\n".join(parts)


def line_chart(title: str, labels: list[str], series: dict[str, list[float | None]], unit: str = "", *,
               width: int = 640, height: int = 300) -> str:
    """One line per series over the labels (days); a missing value (None) breaks the line
    and reads "n.d.". Each point holds a `<title>` "label, series : value"."""
    if not labels or not series:
        return _empty(title, width, height)
    names = list(series)
    parts, maximum, left, right, top, bottom = _series_frame(title, labels, series, unit, width, height)
    step = (right - left) / len(labels)
    xs = [left + step * (i + 0.5) for i in range(len(labels))]
    for s, name in enumerate(names):
        colour = PALETTE[s % len(PALETTE)]
        parts.append(f'<g class="series" fill="{colour}" stroke="{colour}">')
        run: list[str] = []
        points: list[str] = []
        for i, value in enumerate([*series[name], None]):
            if value is None:
                if len(run) > 1:
                    parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke-width="2"/>')
                run = []
                continue
            y = bottom - (bottom - top) * max(value, 0) / maximum
            run.append(f"{_c(xs[i])},{_c(y)}")
            points.append(f'<circle cx="{_c(xs[i])}" cy="{_c(y)}" r="3"><title>{_esc(labels[i])}, {_esc(name)} : '
                          f"{_esc(fr_number(value, unit))}</title></circle>")
        parts += points
        parts.append("</g>")
    parts += _x_labels(labels, xs, bottom + (14 if len(labels) > 12 else 16),
                       max_labels=max(1, int((right - left) // 48)))
    parts.append("</svg>")
    return "\n".join(parts)
