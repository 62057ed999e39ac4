"""Plots of the web console, drawn server-side as self-contained SVG (no script, no external resource).

:func:`plot` draws one series of ``(x, y)`` points as a line or as dots, with axes, a few tick labels, an
optional shaded band (e.g. the 5 ms reply window of a slot) and a note when there is nothing to draw yet.
Every text is XML-escaped, so a value from a meter cannot inject markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 520, 220
_M_LEFT, _M_RIGHT, _M_TOP, _M_BOTTOM = 78, 14, 26, 36


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    first = math.ceil(lo / step) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def _fmt(v: float, step: float) -> str:
    """A tick label with as many decimals as the tick step needs (12345.675, 12345.680 ... not 12345.7 twice)."""
    if v == 0:
        return "0"
    if abs(v) >= 1e9 or step < 1e-9:
        return f"{v:.4g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(step * 10 ** decimals, 6) % 1:
        decimals += 1  # steps of 2.5 x 10^n
    return f"{v:.{decimals}f}"


def _step(ticks: list[float]) -> float:
    return ticks[1] - ticks[0] if len(ticks) > 1 else abs(ticks[0]) or 1.0


def plot(points: Sequence[tuple[float, float]], *, title: str, x_label: str, y_label: str,
         style: str = "line", band: tuple[float, float] | None = None, band_label: str = "",
         y_range: tuple[float, float] | None = None, x_range: tuple[float, float] | None = None,
         empty_text: str = "no data yet", width: int = WIDTH, height: int = HEIGHT) -> str:
    """An SVG document plotting ``points`` (see the module docstring); ``style`` is ``"line"`` or ``"dots"``."""
    if style not in ("line", "dots"):
        raise ValueError(f"style must be 'line' or 'dots', got {style!r}")
    pts = [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    pw, ph = width - _M_LEFT - _M_RIGHT, height - _M_TOP - _M_BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img">',
           f"<title>{escape(title)}</title>",
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
           f'<text x="{_M_LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts] + ([band[0], band[1]] if band else [])
    x0, x1 = x_range if x_range else ((min(xs), max(xs)) if xs else (0.0, 1.0))
    y0, y1 = y_range if y_range else ((min(ys), max(ys)) if ys else (0.0, 1.0))
    if x1 <= x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 <= y0:
        pad = abs(y0) * 0.01 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    elif y_range is None:
        pad = (y1 - y0) * 0.08
        y0, y1 = y0 - pad, y1 + pad

    def sx(x: float) -> float:
        return _M_LEFT + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return _M_TOP + ph - (y - y0) / (y1 - y0) * ph

    if band:
        top, bottom = sy(min(max(band[1], y0), y1)), sy(min(max(band[0], y0), y1))
        out.append(f'<rect x="{_M_LEFT}" y="{top:.1f}" width="{pw}" height="{max(bottom - top, 0):.1f}" '
                   f'fill="#d8f0d8" class="band"/>')
        if band_label:
            out.append(f'<text x="{width - _M_RIGHT - 4}" y="{top + 12:.1f}" text-anchor="end" fill="#2a7a2a">'
                       f"{escape(band_label)}</text>")
    out.append(f'<rect x="{_M_LEFT}" y="{_M_TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    yt = _ticks(y0, y1)
    for t in yt:
        y = sy(t)
        out.append(f'<line x1="{_M_LEFT - 4}" y1="{y:.1f}" x2="{_M_LEFT + pw}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{_M_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t, _step(yt))}</text>')
    xt = _ticks(x0, x1, 6)
    for t in xt:
        x = sx(t)
        out.append(f'<text x="{x:.1f}" y="{_M_TOP + ph + 14}" text-anchor="middle">{_fmt(t, _step(xt))}</text>')
    out.append(f'<text x="{_M_LEFT + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text x="12" y="{_M_TOP + ph / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 12 {_M_TOP + ph / 2:.1f})">{escape(y_label)}</text>')
    if not pts:
        out.append(f'<text x="{_M_LEFT + pw / 2:.1f}" y="{_M_TOP + ph / 2:.1f}" text-anchor="middle" '
                   f'fill="#999" class="empty">{escape(empty_text)}</text>')
    elif style == "line":
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="#1f5fa8" stroke-width="1.5" class="series"/>')
        if len(pts) <= 100:  # single points stay visible
            out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2" fill="#1f5fa8"/>' for x, y in pts]
    else:
        for x, y in pts:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="#1f5fa8" class="series"/>')
    out.append("</svg>")
    return "\n".join(out)
