"""The worker page's chart, drawn on the server as inline SVG (no script, works without
JavaScript): runs per day as stacked bars (completed, failed, other) and the day's success rate
as a line on a 0-100 % scale. Every text in it is escaped."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 180
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 32, 40, 12, 24


def _ticks(top: int) -> list[int]:
    if top <= 4:
        return list(range(top + 1))
    step = max(1, round(top / 4))
    return list(range(0, top + 1, step))


def runs_chart(points: list[dict[str, Any]]) -> Markup:
    """`points`: one per day, oldest first, each {date, total, completed, failed}."""
    days = len(points) or 1
    top = max([int(p["total"]) for p in points] + [1])
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_w / days
    bar = max(2.0, slot * 0.7)
    base = PAD_TOP + plot_h

    def y(count: float) -> float:
        return base - count / top * plot_h

    parts = [(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
              f'aria-label="Runs per day and success rate, last {days} days">')]
    for tick in _ticks(top):
        parts.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" '
                     f'y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                     f'<text class="axis" x="{PAD_LEFT - 6}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end">{tick}</text>')
    for pct in (0, 50, 100):
        ypos = base - pct / 100 * plot_h
        parts.append(f'<text class="axis rate" x="{WIDTH - PAD_RIGHT + 6}" y="{ypos + 4:.1f}">'
                     f'{pct}%</text>')
    line = []
    for i, p in enumerate(points):
        x = PAD_LEFT + i * slot + (slot - bar) / 2
        other = p["total"] - p["completed"] - p["failed"]
        label = escape(f'{p["date"]}: {p["total"]} runs, {p["completed"]} completed, '
                       f'{p["failed"]} failed')
        parts.append(f"<g><title>{label}</title>")
        level = 0
        for kind, count in (
            ("completed", p["completed"]),
            ("failed", p["failed"]),
            ("other", other),
        ):
            if count > 0:
                parts.append(f'<rect class="bar {kind}" x="{x:.1f}" y="{y(level + count):.1f}" '
                             f'width="{bar:.1f}" height="{y(level) - y(level + count):.1f}"/>')
                level += count
        parts.append("</g>")
        finished = p["completed"] + p["failed"]
        if finished:
            rate = p["completed"] / finished
            line.append(f"{x + bar / 2:.1f},{base - rate * plot_h:.1f}")
    if len(line) > 1:
        parts.append(f'<polyline class="rate" points="{" ".join(line)}"/>')
    for x_str in line:
        cx, cy = x_str.split(",")
        parts.append(f'<circle class="rate" cx="{cx}" cy="{cy}" r="2.5"/>')
    for i in (0, days // 2, days - 1):
        if 0 <= i < len(points):
            x = PAD_LEFT + i * slot + slot / 2
            parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                         f'{escape(points[i]["date"][5:])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # numbers, and text passed through escape() above
