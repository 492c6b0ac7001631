"""Tests of sqs_broker.charts: the geometry of the inline SVG charts."""

from __future__ import annotations

import pytest

from sqs_broker import charts

# Configuration, geometry and text: no SQS server needed.
pytestmark = pytest.mark.pure


def test_points__scaled_to_the_box():
    """The peak touches the top padding, zero the bottom; x spans the width."""
    assert charts.points([0, 5, 10], width=104, height=24, pad=2) == "2.0,22.0 52.0,12.0 102.0,2.0"


def test_points__flat_and_single():
    """All zeros stay on the bottom line; one value draws a flat line."""
    assert charts.points([0, 0], 10, 10, pad=0) == "0.0,10.0 10.0,10.0"
    assert charts.points([3], 10, 10, pad=0) == "0.0,0.0 10.0,0.0"
    assert charts.points([], 10, 10) == ""


def test_sparkline__peak_and_count():
    """A sparkline knows its peak and how many samples it draws."""
    spark = charts.sparkline([{"visible": v} for v in (1, 7, 3)])
    assert (spark["peak"], spark["count"]) == (7, 3)
    assert charts.sparkline([])["points"] == ""


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
    samples = [
        {"t": 1, "visible": 4, "in_flight": 8, "delayed": 0},
        {"t": 2, "visible": 2, "in_flight": 0, "delayed": 1},
    ]
    chart = charts.history_chart(samples, width=108, height=108)
    assert chart["top"] == 8
    assert chart["lines"]["in_flight"] == "4.0,4.0 104.0,104.0"
    assert (chart["first"], chart["last"], chart["count"]) == (1, 2, 2)
