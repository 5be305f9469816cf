"""Alertmanager's shapes of a tsfleet notification: an API v2 alert, and a webhook v4 payload.

The fingerprint is Alertmanager's own (prometheus/common model.LabelSet.Fingerprint: FNV-1a
64 over the sorted label names and values, each followed by the byte 0xff), so a receiver can
correlate a webhook alert with the one Alertmanager shows for the same labels.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

# Alertmanager's "no end yet" (Go's zero time), as its own webhooks send it for firing alerts.
ZERO_TIME = "0001-01-01T00:00:00Z"
GROUP_BY = ("alertname", "rule", "tenant")

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF
_MASK = 2**64 - 1


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint of a label set, 16 hex digits."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for chunk in (name.encode(), labels[name].encode()):
            for byte in (*chunk, _SEPARATOR):
                value = ((value ^ byte) * _FNV_PRIME) & _MASK
    return f"{value:016x}"


def alert_labels(payload: dict[str, Any]) -> dict[str, str]:
    """Labels as Alertmanager takes them: strings, none empty or null."""
    return {k: str(v) for k, v in payload.get("labels", {}).items()
            if v is not None and str(v) != ""}


def alert_annotations(payload: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in payload.get("annotations", {}).items() if v is not None}


def generator_url(template: str, payload: dict[str, Any]) -> str:
    """The template with {episode_id}, {rule} and {alertname} filled in ('' if no template)."""
    if not template:
        return ""
    labels = payload.get("labels", {})
    return template.format(episode_id=payload.get("episode_id", ""),
                           rule=labels.get("rule", ""), alertname=labels.get("alertname", ""))


def api_alert(payload: dict[str, Any], ends_at: datetime | str | None,
              generator_template: str = "") -> dict[str, Any]:
    """One element of POST /api/v2/alerts."""
    ends = ends_at.isoformat() if isinstance(ends_at, datetime) else ends_at
    alert: dict[str, Any] = {"labels": alert_labels(payload),
                             "annotations": alert_annotations(payload),
                             "startsAt": payload.get("startsAt"), "endsAt": ends}
    url = generator_url(generator_template, payload)
    if url:
        alert["generatorURL"] = url
    return alert


def webhook_v4(payload: dict[str, Any], receiver: str, external_url: str = "",
               generator_template: str = "") -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4) for one notification: a group of one alert."""
    labels = alert_labels(payload)
    annotations = alert_annotations(payload)
    status = "resolved" if payload.get("status") == "resolved" else "firing"
    group_labels = {k: labels[k] for k in GROUP_BY if k in labels}
    group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
    alert = {
        "status": status, "labels": labels, "annotations": annotations,
        "startsAt": payload.get("startsAt"),
        "endsAt": payload.get("endsAt") if status == "resolved" else ZERO_TIME,
        "generatorURL": generator_url(generator_template, payload),
        "fingerprint": fingerprint(labels),
    }
    return {"version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": status,
            "receiver": receiver, "groupLabels": group_labels, "commonLabels": labels,
            "commonAnnotations": annotations, "externalURL": external_url, "alerts": [alert]}
