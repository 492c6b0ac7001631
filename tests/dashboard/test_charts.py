"""Tests of sqs_broker.charts: the geometry of the inline SVG charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqs_broker import history
from sqs_broker.dashboard import charts
from sqs_broker.history import HistoryWindow


def test_points__scaled_to_the_box():
    """The peak touches the top padding, zero the bottom; x spans the width."""
    assert charts.points([0, 5, 10], width=104, height=24, pad=2) == "2.0,22.0 52.0,12.0 102.0,2.0"


def test_points__flat_and_single():
    """All zeros stay on the bottom line; one value draws a flat line."""
    assert charts.points([0, 0], 10, 10, pad=0) == "0.0,10.0 10.0,10.0"
    assert charts.points([3], 10, 10, pad=0) == "0.0,0.0 10.0,0.0"
    assert charts.points([], 10, 10) == ""


def _window(hours: float = 1.0, step: int = 60) -> HistoryWindow:
    end = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    return HistoryWindow(end - timedelta(hours=hours), end, step)


def _at(window: HistoryWindow, minutes_before_end: int, visible: int, **more: int) -> dict:
    t = window.end - timedelta(minutes=minutes_before_end)
    return {"t": t, "visible": visible, "in_flight": 0, "delayed": 0, **more}


def test_sparkline__peak_and_count():
    """A sparkline knows its peak and how many samples its buckets hold."""
    window = _window()
    samples = [_at(window, m, v, samples=2) for m, v in ((3, 1), (2, 7), (1, 3))]
    spark = charts.sparkline(samples, window=window)
    assert (spark["peak"], spark["count"]) == (7, 6)
    assert charts.sparkline([], window=window)["segments"] == []


def test_time_segments__placed_by_time_not_by_count():
    """Two minutes of samples sit at the right end of a six-hour axis, not across it."""
    window = _window(hours=6)
    samples = [_at(window, 2, 5), _at(window, 1, 5)]
    (segment,) = charts.time_segments(samples, "visible", window, (0, 0, 360, 10), top=5)
    xs = [float(p.split(",")[0]) for p in segment.split()]
    assert all(x > 357 for x in xs), xs


def test_time_segments__gaps_stay_open():
    """A sampling gap splits the line in two instead of joining over it."""
    window = _window(hours=1)
    samples = [_at(window, m, 1) for m in (50, 49, 48, 10, 9, 8)]
    segments = charts.time_segments(samples, "visible", window, (0, 0, 600, 10), top=1)
    assert len(segments) == 2
    assert [len(s.split()) for s in segments] == [3, 3]


def test_time_segments__sparse_sampling_is_no_gap():
    """Samples every five minutes on one-minute buckets draw one line: the usual step is no gap."""
    window = _window(hours=1)
    samples = [_at(window, m, 1) for m in range(55, 0, -5)]
    assert len(charts.time_segments(samples, "visible", window, (0, 0, 600, 10), top=1)) == 1


def test_time_ticks__round_times_across_the_window():
    """A six-hour axis gets ticks every hour on the hour, the last at the right edge."""
    window = _window(hours=6)
    ticks = charts.time_ticks(window, 0, 600)
    assert [t["label"] for t in ticks] == [f"{h:02d}:00" for h in range(6, 13)]
    assert [t["x"] for t in ticks][:2] == ["0.0", "100.0"] and ticks[-1]["x"] == "600.0"


def test_backoff_chart__bars_follow_delays():
    """One bar per attempt, heights proportional to the delay, labelled by attempt."""
    rows = [
        {"attempt": 2, "delay": 10, "cumulative": 10},
        {"attempt": 3, "delay": 30, "cumulative": 40},
    ]
    chart = charts.backoff_chart(rows, width=200, height=100)
    assert [b["attempt"] for b in chart["bars"]] == [2, 3]
    heights = [float(b["h"]) for b in chart["bars"]]
    assert heights[1] == 3 * heights[0]
    assert chart["top"] == 40
    assert charts.backoff_chart([])["bars"] == []


def test_history_chart__three_lines_one_scale():
    """Visible, in flight and delayed share one scale whose top is the largest value."""
    window = _window(hours=1)
    samples = [
        {"t": window.start, "visible": 4, "in_flight": 8, "delayed": 0},
        {"t": window.end - timedelta(seconds=60), "visible": 2, "in_flight": 0, "delayed": 1},
    ]
    chart = charts.history_chart(samples, width=108, height=122, window=window)
    assert chart["top"] == 8
    # Plot area 4..104 wide, 4..104 high (the bottom band holds the ticks).
    (segment,) = chart["lines"]["in_flight"]
    first, last = segment.split()
    assert first.endswith(",4.0") and last.endswith(",104.0")
    assert (chart["start"], chart["end"], chart["count"]) == (window.start, window.end, 2)
    assert chart["ticks"]


def test_sparkline_svg__one_polyline_per_run_and_escaped():
    """The sparkline's <svg>: the CSS's class, one polyline per run, the label escaped."""
    window = _window(hours=1)
    samples = [_at(window, m, 1) for m in (50, 49, 48, 10, 9, 8)]
    spark = charts.sparkline(samples, window=window)
    svg = charts.sparkline_svg(spark, 'peak "3" <b>')
    assert svg.startswith('<svg class="sqs-spark" width="120" height="24" viewBox="0 0 120 24"')
    assert svg.count("<polyline points=") == 2
    assert 'aria-label="peak &quot;3&quot; &lt;b&gt;"' in svg


def _segments_by_datetimes(samples, key, window, box, top):
    """time_segments as first written, in datetime arithmetic per point: the reference."""
    left, upper, right, bottom = box
    span = (window.end - window.start).total_seconds() or 1.0
    k = (bottom - upper) / (top if top > 0 else 1)

    def x_of(t):
        offset = (t - window.start).total_seconds() + window.step / 2
        return left + min(max(offset / span, 0.0), 1.0) * (right - left)

    times = [s["t"] for s in samples]
    steps = sorted((b - a).total_seconds() for a, b in zip(times, times[1:], strict=False))
    limit = max(2 * window.step, 2 * (steps[len(steps) // 2] if steps else window.step))
    runs, previous = [], None
    for sample in samples:
        if previous is None or (sample["t"] - previous).total_seconds() > limit:
            runs.append([])
        runs[-1].append((x_of(sample["t"]), bottom - sample[key] * k))
        previous = sample["t"]
    runs = [r if len(r) > 1 else [(max(left, r[0][0] - 1.5), r[0][1]),
                                  (min(right, r[0][0] + 1.5), r[0][1])] for r in runs]  # fmt: skip
    return [" ".join(f"{x:.1f},{y:.1f}" for x, y in run) for run in runs]


def test_time_segments__same_points_as_datetime_arithmetic():
    """The list-at-a-time arithmetic draws exactly what per-point datetime arithmetic drew."""
    import random

    rng = random.Random(15)
    for _ in range(300):
        end = datetime(2026, 1, 1, 12, rng.randrange(60), rng.randrange(60),
                       rng.randrange(10**6), tzinfo=UTC)  # fmt: skip
        hours = rng.choice([0.1, 1, 6, 24])
        window = HistoryWindow(end - timedelta(hours=hours), end, max(60, int(hours * 30)))
        first = int(window.start.timestamp()) // window.step
        buckets = sorted(rng.sample(range(first - 2, first + 122), rng.randrange(0, 60)))
        samples = [{"t": datetime.fromtimestamp(b * window.step, UTC),
                    "visible": rng.randrange(0, 500)} for b in buckets]  # fmt: skip
        top = max([s["visible"] for s in samples] or [0])
        box = rng.choice([(2, 2, 118, 22), (4, 4, 636, 182)])
        expected = _segments_by_datetimes(samples, "visible", window, box, top)
        assert charts.time_segments(samples, "visible", window, box, top) == expected


def test_young_history__says_when_the_first_line_comes():
    """One time bucket of samples: no chart box, the minutes until a line; two: a line."""
    now = datetime(2026, 12, 6, 18, 0, 30, tzinfo=UTC)
    window = history.history_window(hours=6, now=now)  # 180 s buckets
    one = [{"t": now, "visible": 0, "in_flight": 0, "delayed": 0, "samples": 1}]
    chart = charts.history_chart(one, window=window)
    # 150 s to the next bucket, plus up to a minute for its first sample.
    assert chart["collecting_minutes"] == 4
    assert charts.sparkline(one, window=window)["collecting_minutes"] == 4
    earlier = {**one[0], "t": now - timedelta(seconds=600)}
    assert charts.history_chart([earlier, *one], window=window)["collecting_minutes"] is None


def test_young_history__rows_say_collecting_not_a_lone_dot():
    """A queue row with one bucket of samples shows "collecting", with the minutes."""
    from sqs_broker.dashboard.rows import Sparks

    html = Sparks()({"count": 1, "peak": 0, "collecting_minutes": 3, "segments": []})
    assert "collecting: first line in 3 min" in html and "<svg" not in html
