"""Time ranges of committed readings whose rollups are due, merged.

Used by the stream consumer (loader/stream/refresh.py) to know that a refresh of the queue is
due and to report what it covered; what to refresh is in the database's queue
(_tsfleet.rollup_refresh_queue), filled by each batch's commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

END_EXCLUSIVE = timedelta(microseconds=1)  # a batch's newest reading, as a half-open end


@dataclass
class RangeSet:
    """Half-open time ranges, merged when they overlap or lie within `merge_gap` of each
    other (a time-ordered stream gives one growing range; late data a separate one). At
    most `limit` ranges: beyond it the two closest are merged."""

    merge_gap: timedelta = timedelta(hours=1)
    limit: int = 8
    ranges: list[tuple[datetime, datetime]] = field(default_factory=list)

    def add(self, start: datetime, end: datetime) -> None:
        ranges = sorted([*self.ranges, (start, end)])
        merged: list[tuple[datetime, datetime]] = [ranges[0]]
        for lo, hi in ranges[1:]:
            last_lo, last_hi = merged[-1]
            if lo <= last_hi + self.merge_gap:
                merged[-1] = (last_lo, max(last_hi, hi))
            else:
                merged.append((lo, hi))
        while len(merged) > self.limit:
            gaps = [merged[i + 1][0] - merged[i][1] for i in range(len(merged) - 1)]
            i = gaps.index(min(gaps))
            merged[i:i + 2] = [(merged[i][0], max(merged[i][1], merged[i + 1][1]))]
        self.ranges = merged

    def take(self) -> list[tuple[datetime, datetime]]:
        taken, self.ranges = self.ranges, []
        return taken

    def __bool__(self) -> bool:
        return bool(self.ranges)
