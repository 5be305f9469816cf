"""Notification sinks: stdout JSON lines, a JSON webhook, the Alertmanager v2 API.

A sink's send() returns only when the receiver confirmed (HTTP 2xx, or the line was written);
anything else raises SinkError, and the runner retries later with backoff. Standard library
HTTP (urllib): one POST per notification needs nothing more.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit, urlunsplit

USER_AGENT = "tsfleet-alerts"


class SinkError(RuntimeError):
    """The sink did not confirm the notification."""


@dataclass(frozen=True)
class Notification:
    notification_id: int
    episode_id: int
    transition: str
    payload: dict[str, Any]
    attempts: int = 1


class Sink(Protocol):
    kind: str

    @property
    def name(self) -> str: ...

    def send(self, notification: Notification) -> None: ...


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(":" + parts.password + "@", ":***@"))
    return urlunsplit(parts)


def post_json(url: str, body: object, timeout: float, headers: dict[str, str] | None = None
              ) -> int:
    data = json.dumps(body, default=str).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raise SinkError(f"POST {_redacted(url)} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SinkError(f"POST {_redacted(url)} failed: {reason}") from exc


@dataclass
class StdoutSink:
    """One JSON object per line: the notification payload plus its id and transition."""

    stream: TextIO | None = None
    kind: str = "stdout"

    @property
    def name(self) -> str:
        return "stdout"

    def send(self, notification: Notification) -> None:
        stream = self.stream or sys.stdout
        line = {"notification_id": notification.notification_id, **notification.payload}
        try:
            stream.write(json.dumps(line, default=str, sort_keys=True) + "\n")
            stream.flush()
        except OSError as exc:
            raise SinkError(f"cannot write to stdout: {exc}") from exc


@dataclass
class WebhookSink:
    """POST the notification as JSON; any 2xx confirms it."""

    url: str
    timeout: float = 10.0
    kind: str = "webhook"

    @property
    def name(self) -> str:
        return f"webhook {_redacted(self.url)}"

    def send(self, notification: Notification) -> None:
        body = {"version": "1", "notification_id": notification.notification_id,
                **notification.payload}
        post_json(self.url, body, self.timeout,
                  {"Idempotency-Key": f"tsfleet-{notification.notification_id}"})


@dataclass
class AlertmanagerSink:
    """Alertmanager v2: POST /api/v2/alerts with labels, annotations, startsAt, endsAt.

    Firing alerts carry endsAt = now + 4 x resend_interval and are re-sent every
    resend_interval (resend_firing), as Prometheus does, so Alertmanager keeps them active
    and resolves them by itself if tsfleet goes away; resolved alerts carry their real endsAt.
    """

    url: str
    timeout: float = 10.0
    resend_interval: timedelta = field(default_factory=lambda: timedelta(minutes=1))
    generator_url: str = ""
    kind: str = "alertmanager"

    @property
    def name(self) -> str:
        return f"alertmanager {_redacted(self.url)}"

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/api/v2/alerts"

    def alert(self, payload: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(timezone.utc)
        labels = {k: str(v) for k, v in payload.get("labels", {}).items() if v is not None}
        annotations = {k: str(v) for k, v in payload.get("annotations", {}).items()
                       if v is not None}
        alert: dict[str, Any] = {"labels": labels, "annotations": annotations,
                                 "startsAt": payload.get("startsAt")}
        if payload.get("status") == "resolved":
            alert["endsAt"] = payload.get("endsAt")
        else:
            alert["endsAt"] = (now + 4 * self.resend_interval).isoformat()
        if self.generator_url:
            alert["generatorURL"] = self.generator_url
        return alert

    def send(self, notification: Notification) -> None:
        post_json(self.endpoint, [self.alert(notification.payload)], self.timeout)

    def resend_firing(self, payloads: list[dict[str, Any]]) -> None:
        if payloads:
            post_json(self.endpoint, [self.alert(p) for p in payloads], self.timeout)
