"""Geometry of the dashboard's inline SVG charts: sparklines, history and backoff.

Only numbers and coordinates are computed here; the templates draw the
``<svg>`` (no CDN, no JavaScript). Keeping the arithmetic out of templates
makes it testable and keeps the templates readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def sparkline(samples: Sequence[dict[str, Any]], width: int = 120, height: int = 24) -> dict:
    """A small trend of visible messages, with the last value and the peak."""
    visible = [s["visible"] for s in samples]
    return {
        "width": width,
        "height": height,
        "points": points(visible, width, height),
        "peak": max(visible) if visible else None,
        "count": len(visible),
    }


def history_chart(
    samples: Sequence[dict[str, Any]], width: int = 640, height: int = 200
) -> dict[str, Any]:
    """A larger chart: visible, in flight and delayed on one scale, with axis labels."""
    pad = 4
    series = {key: [s[key] for s in samples] for key in ("visible", "in_flight", "delayed")}
    everything = [v for values in series.values() for v in values]
    top = max(everything) if everything else 0
    lines = {key: points(values, width, height, pad, top=top) for key, values in series.items()}
    return {
        "width": width,
        "height": height,
        "lines": lines,
        "top": top,
        "first": samples[0]["t"] if samples else None,
        "last": samples[-1]["t"] if samples else None,
        "count": len(samples),
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
