"""A Python reference of the alert semantics (docs/alerts.md), over raw readings.

It is written from the documented rules, not from the SQL, so the property tests can hold
alerts.backtest() and alerts.evaluate() to it:
- step k at time s_k sees the readings in (s_{k-1}, s_k] (none at the first step) and the
  newest reading at or before s_k, if it is younger than the lookback;
- a threshold condition fires when the worst of those crosses the firing threshold, and an
  open alert holds while it crosses the clear threshold;
- a device is stale at s when it has no reading in (s - stale_after, s];
- the lifecycle: pending (firing at once when `for` is 0), firing once `for` has elapsed,
  cancelled if it stops holding while pending; a firing alert resolves once it has not held
  for keep_firing_for.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Threshold:
    below: float | None = None
    above: float | None = None
    clear: float | None = None
    lookback: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class Episode:
    fired_at: datetime
    resolved_at: datetime | None
    peak: float


def steps(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    count = int((end - start) / step)
    return [start + step * k for k in range(count + 1)]


def threshold_signals(readings: list[tuple[datetime, float]], rule: Threshold,
                      times: list[datetime]) -> list[tuple[bool, bool, float | None, bool]]:
    """(fires, holds, value, is_low) per step."""
    readings = sorted(readings)
    stamps = [r[0] for r in readings]
    out = []
    for k, at in enumerate(times):
        lo_i = bisect_right(stamps, times[k - 1]) if k else bisect_right(stamps, at)
        window = [v for _, v in readings[lo_i:bisect_right(stamps, at)]]
        newest = bisect_right(stamps, at) - 1
        if newest >= 0 and readings[newest][0] > at - rule.lookback:
            window.append(readings[newest][1])
        if not window:
            out.append((False, False, None, False))
            continue
        low, high = min(window), max(window)
        if rule.below is not None:
            clear = rule.clear if rule.clear is not None else rule.below
            out.append((low < rule.below, low < clear, low, True))
        else:
            assert rule.above is not None
            clear = rule.clear if rule.clear is not None else rule.above
            out.append((high > rule.above, high > clear, high, False))
    return out


def stale_signals(stamps: list[datetime], stale_after: timedelta, ignore_after: timedelta,
                  times: list[datetime]) -> list[tuple[bool, bool, float | None, bool]]:
    stamps = sorted(stamps)
    out = []
    for at in times:
        newest = bisect_right(stamps, at) - 1
        if newest < 0 or stamps[newest] <= at - ignore_after:
            out.append((False, False, None, False))
            continue
        silent = (at - stamps[newest]).total_seconds()
        stale = stamps[newest] <= at - stale_after
        out.append((stale, stale, silent, False))
    return out


def episodes(times: list[datetime], signals: list[tuple[bool, bool, float | None, bool]],
             for_interval: timedelta, keep_firing_for: timedelta) -> list[Episode]:
    """Fold the lifecycle over the steps; the episodes that fired."""
    result: list[Episode] = []
    state: str | None = None
    started = fired = cleared = None
    peak = 0.0
    for at, (fires, holds, value, is_low) in zip(times, signals, strict=True):
        held = fires if state is None else (fires or holds)
        if held:
            assert value is not None
            if state is None:
                state, started, fired, cleared, peak = "pending", at, None, None, value
            else:
                peak = min(peak, value) if is_low else max(peak, value)
            cleared = None
            if state == "pending" and at - started >= for_interval:
                state, fired = "firing", at
        elif state == "pending":
            state = None
        elif state == "firing":
            cleared = cleared or at
            if at - cleared >= keep_firing_for:
                result.append(Episode(fired, at, peak))
                state = None
    if state == "firing":
        result.append(Episode(fired, None, peak))
    return result
