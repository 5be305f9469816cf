"""What Grafana does to a provisioned SQL query before its PostgreSQL data source runs it.

Template variables in a query become a quoted, comma-separated list of their values (the
PostgreSQL data source's interpolation for multi-value and All); `$__interval` becomes the
panel's interval; the data source's macros are expanded as its macro engine does (with the
data source's `timescaledb: true`, `$__timeGroup` is `time_bucket`). Enough of Grafana to run
the dashboard's queries against a real database in tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "grafana"
DASHBOARD = GRAFANA / "dashboards/tsfleet-fleet.json"
DATASOURCE_UID = "tsfleet-timescaledb"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def datasource() -> dict:
    return yaml.safe_load((GRAFANA / "provisioning/datasources/tsfleet.yaml").read_text()
                          )["datasources"][0]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def variables() -> dict[str, dict]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def seconds(interval: str) -> int:
    match = re.fullmatch(r"'?(\d+)([smhd])'?", interval.strip())
    assert match, f"not a Grafana interval: {interval!r}"
    return int(match.group(1)) * _UNITS[match.group(2)]


def quoted(values: Sequence[str]) -> str:
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def expand(raw: str, values: Mapping[str, Sequence[str]] | None = None, *,
           start: datetime | None = None, end: datetime | None = None,
           interval: str = "1h") -> str:
    """The SQL Grafana sends for `raw` over [start, end] with these variable values."""
    end = end or datetime.now(timezone.utc)
    start = start or end - timedelta(hours=24)
    text = raw.replace("$__interval", interval)
    for name, chosen in sorted((values or {}).items(), key=lambda item: -len(item[0])):
        text = re.sub(r"\$\{" + name + r"\}|\$" + name + r"\b", lambda _m, c=chosen: quoted(c),
                      text)
    timescaledb = bool(datasource()["jsonData"].get("timescaledb"))

    def time_group(match: re.Match[str]) -> str:
        column, step = (part.strip() for part in match.group(1).split(",")[:2])
        if timescaledb:
            return f"time_bucket('{seconds(step)}s',{column})"
        return f"floor(extract(epoch from {column})/{seconds(step)})*{seconds(step)}"

    def time_filter(match: re.Match[str]) -> str:
        column = match.group(1).strip()
        return (f"{column} BETWEEN '{start.astimezone(timezone.utc).isoformat()}'"
                f" AND '{end.astimezone(timezone.utc).isoformat()}'")

    text = re.sub(r"\$__timeGroupAlias\(([^)]*)\)", lambda m: time_group(m) + ' AS "time"', text)
    text = re.sub(r"\$__timeGroup\(([^)]*)\)", time_group, text)
    text = re.sub(r"\$__timeFilter\(([^)]*)\)", time_filter, text)
    assert "$" not in text, f"a Grafana macro or variable the test cannot expand: {text}"
    return text
