"""Geometry of the dashboard's inline SVG charts: sparklines, history and backoff.

Only numbers and coordinates are computed here; the templates draw the
``<svg>`` (no CDN, no JavaScript, no inline styles), except the sparkline:
:func:`sparkline_svg` writes it, because the dashboard draws one per queue and
per dead-letter queue, and 600 template includes took a third of its rendering
time at 300 queues. Queue history is drawn on
a time axis: the points are the time buckets :func:`sqs_broker.history.history`
grouped in the database, placed by time, with gaps left open and ticks at
round times. Keeping the arithmetic out of templates
makes it testable and keeps the templates readable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

if TYPE_CHECKING:
    from sqs_broker.history import HistoryWindow
    from sqs_broker.schema import BackoffRow


def points(
    values: Sequence[float], width: float, height: float, pad: float = 2, top: float | None = None
) -> str:
    """An SVG ``points`` attribute drawing ``values`` left to right, 0 at the bottom.

    ``top`` is the value drawn at the top edge (default: the largest value),
    so several lines can share one scale.
    """
    if not values:
        return ""
    if len(values) == 1:
        values = [values[0], values[0]]
    top = max(values) if top is None else top
    k = (height - 2 * pad) / (top if top > 0 else 1)
    step = (width - 2 * pad) / (len(values) - 1)
    return " ".join(
        f"{pad + i * step:.1f},{height - pad - v * k:.1f}" for i, v in enumerate(values)
    )


#: Tick spacings a time axis may use, in seconds: the first that gives at most 6 ticks.
MINUTE, HOUR, DAY = 60, 3600, 86400
TICK_STEPS = (
    MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR,
    12 * HOUR, DAY, 2 * DAY, 7 * DAY,
)  # fmt: skip


def time_segments(
    samples: Sequence[dict[str, Any]],
    key: str,
    window: HistoryWindow,
    box: tuple[float, float, float, float],
    top: float,
) -> list[str]:
    """SVG ``points`` of ``key`` on a time axis, one string per run of samples without a gap.

    ``box`` is ``(left, top, right, bottom)`` of the plot area. Each point sits
    at the middle of its time bucket. A gap is a step between two points longer
    than twice the usual one (and than two buckets): the line stops there
    rather than join over missing samples. A lone point draws as a short dash.
    """
    if not samples:
        return []
    left, upper, right, bottom = box
    start = window.start.timestamp()
    span = (window.end - window.start).total_seconds() or 1.0
    k = (bottom - upper) / (top if top > 0 else 1)
    half = window.step / 2
    width = right - left
    # Plain seconds, converted once per sample, and whole lists at a time: the dashboard
    # draws 300 sparklines of 120 points, and per-point datetime arithmetic and string
    # formatting were most of the page's time once the template was lean.
    stamps = [s["t"].timestamp() for s in samples]
    # x: the bucket's middle as a fraction of the window, clamped to [0, 1].
    xs = [
        left + (0.0 if (f := (t - start + half) / span) < 0.0 else 1.0 if f > 1.0 else f) * width
        for t in stamps
    ]
    ys = [bottom - s[key] * k for s in samples]
    steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    usual = sorted(steps)[len(steps) // 2] if steps else window.step
    limit = max(2 * window.step, 2 * usual)
    bounds = [0, *(i + 1 for i, step in enumerate(steps) if step > limit), len(stamps)]
    segments = []
    for first, end in zip(bounds, bounds[1:], strict=False):
        if end - first == 1:
            x, y = xs[first], ys[first]
            flat: list[float] = [max(left, x - 1.5), y, min(right, x + 1.5), y]
        else:
            flat = [0.0] * (2 * (end - first))
            flat[0::2], flat[1::2] = xs[first:end], ys[first:end]
        segments.append(" ".join(["%.1f,%.1f"] * (len(flat) // 2)) % tuple(flat))
    return segments


def time_ticks(
    window: HistoryWindow, left: float, right: float, most: int = 6
) -> list[dict[str, str]]:
    """Ticks of a time axis at round times (local time of day), at most ``most`` of them."""
    span = (window.end - window.start).total_seconds() or 1.0
    spacing = next((s for s in TICK_STEPS if span / s <= most), TICK_STEPS[-1])
    first = -(-window.start.timestamp() // spacing) * spacing
    fmt = "%m-%d" if spacing >= 86400 else "%H:%M"
    ticks = []
    t = first
    while t <= window.end.timestamp():
        when = datetime.fromtimestamp(t, UTC)
        x = left + (t - window.start.timestamp()) / span * (right - left)
        ticks.append({"x": f"{x:.1f}", "label": timezone.localtime(when).strftime(fmt)})
        t += spacing
    return ticks


def _count(samples: Sequence[dict[str, Any]]) -> int:
    return sum(map(int, [s.get("samples", 1) for s in samples]))


#: Seconds between samples (``sqs_sample --interval 60``, the beat task): a bucket's first
#: sample may come this long after the bucket starts.
SAMPLE_PERIOD = 60


def minutes_to_line(samples: Sequence[dict[str, Any]], window: HistoryWindow) -> int | None:
    """Whole minutes until a young history draws a line (its second point); ``None`` once it does.

    A line needs two time buckets holding samples: with one, the second comes
    when the next bucket starts and a sample lands in it.
    """
    if len(samples) >= 2:
        return None
    wait = window.step - window.end.timestamp() % window.step + SAMPLE_PERIOD
    return max(1, math.ceil(wait / 60))


def sparkline(
    samples: Sequence[dict[str, Any]],
    *,
    window: HistoryWindow,
    width: int = 120,
    height: int = 24,
) -> dict[str, Any]:
    """A small trend of visible messages on the window's time axis, with its peak."""
    visible = [s["visible"] for s in samples]
    top = max(visible) if visible else 0
    return {
        "width": width,
        "height": height,
        "segments": time_segments(samples, "visible", window, (2, 2, width - 2, height - 2), top),
        "peak": top if visible else None,
        "count": _count(samples),
        "collecting_minutes": minutes_to_line(samples, window),
    }


def sparkline_svg(spark: dict[str, Any], label: str) -> SafeString:
    """A :func:`sparkline` as an ``<svg>`` element, ``label`` its text for screen readers.

    Every attribute is escaped. The markup is the one the dashboard's CSS and
    tests know: ``svg.sqs-spark`` with one ``polyline`` per run of samples.
    """
    width, height = spark["width"], spark["height"]
    lines = format_html_join("", '<polyline points="{}"/>', ((s,) for s in spark["segments"]))
    return format_html(
        '<svg class="sqs-spark" width="{}" height="{}" viewBox="0 0 {} {}" role="img" '
        'aria-label="{}">{}</svg>',
        width, height, width, height, label, lines,
    )  # fmt: skip


def history_chart(
    samples: Sequence[dict[str, Any]],
    *,
    window: HistoryWindow,
    width: int = 640,
    height: int = 200,
) -> dict[str, Any]:
    """A larger chart: visible, in flight and delayed on one scale and one time axis.

    The window's whole span is drawn whatever the samples cover, so two
    minutes of samples sit at the right end of a six-hour axis, and a gap in
    sampling shows as a gap. The bottom band holds the time ticks.
    """
    pad, band = 4, 14
    box = (pad, pad, width - pad, height - pad - band)
    series = {key: [s[key] for s in samples] for key in ("visible", "in_flight", "delayed")}
    everything = [v for values in series.values() for v in values]
    top = max(everything) if everything else 0
    lines = {key: time_segments(samples, key, window, box, top) for key in series}
    return {
        "width": width,
        "height": height,
        "axis_y": f"{box[3]:.1f}",
        "label_y": f"{height - pad:.1f}",
        "lines": lines,
        "ticks": time_ticks(window, box[0], box[2]),
        "top": top,
        "start": window.start,
        "end": window.end,
        "count": _count(samples),
        "collecting_minutes": minutes_to_line(samples, window),
    }


def backoff_chart(
    rows: Sequence[BackoffRow], width: int = 320, height: int = 120
) -> dict[str, Any]:
    """Bars of the wait before each attempt, and a line of cumulative time."""
    if not rows:
        return {"width": width, "height": height, "bars": [], "line": "", "top": 0}
    pad, label = 4, 14
    top = max(r["cumulative"] for r in rows) or 1
    k = (height - 2 * pad - label) / top
    slot = (width - 2 * pad) / len(rows)
    bars = []
    for i, row in enumerate(rows):
        h = row["delay"] * k
        x = pad + i * slot + slot * 0.15
        bars.append(
            {
                "x": f"{x:.1f}",
                "y": f"{height - pad - label - h:.1f}",
                "w": f"{slot * 0.7:.1f}",
                "h": f"{h:.1f}",
                "label_x": f"{x + slot * 0.35:.1f}",
                "label_y": f"{height - pad:.1f}",
                "attempt": row["attempt"],
                "delay": row["delay"],
                "cumulative": row["cumulative"],
            }
        )
    line = " ".join(
        f"{pad + (i + 0.5) * slot:.1f},{height - pad - label - r['cumulative'] * k:.1f}"
        for i, r in enumerate(rows)
    )
    return {"width": width, "height": height, "bars": bars, "line": line, "top": top}
