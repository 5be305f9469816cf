"""Notification sinks: stdout JSON lines, a JSON webhook, the Alertmanager v2 API.

A sink's send() returns only when the receiver confirmed (HTTP 2xx, or the line was written);
anything else raises SinkError, saying whether trying again can help (`retryable`): 408, 429,
5xx, timeouts and refused connections can; any other 4xx is a permanent refusal, and the
delivery is dead-lettered with the status and an excerpt of the answer. Standard library HTTP
(urllib): one POST per notification needs nothing more.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol, TextIO
from urllib.parse import urlsplit, urlunsplit

from loader.alerts.alertmanager_format import api_alert, webhook_v4

USER_AGENT = "tsfleet-alerts"
RESPONSE_EXCERPT = 500
RETRYABLE_4XX = (408, 429)


class SinkError(RuntimeError):
    """The sink did not confirm the notification: why, the HTTP status and answer, if any."""

    def __init__(self, message: str, status: int | None = None, body: str | None = None,
                 retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.retryable = retryable


def is_retryable(status: int | None) -> bool:
    """No answer, 408, 429 or 5xx: try again later. Any other refusal is permanent."""
    return status is None or status in RETRYABLE_4XX or status >= 500


@dataclass(frozen=True)
class Notification:
    notification_id: int
    episode_id: int
    transition: str
    payload: dict[str, Any]
    attempts: int = 1
    lease_token: str | None = None


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
        try:
            answer = exc.read(RESPONSE_EXCERPT).decode(errors="replace")
        except OSError:
            answer = ""
        raise SinkError(f"POST {_redacted(url)} answered HTTP {exc.code}", status=exc.code,
                        body=answer, retryable=is_retryable(exc.code)) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SinkError(f"POST {_redacted(url)} failed: {reason or type(exc).__name__}"
                        ) from exc


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
    """POST the notification as JSON; any 2xx confirms it.

    format "tsfleet": tsfleet's own body (version 1, the notification payload);
    "alertmanager": Alertmanager's webhook payload, version 4, so receivers written for
    Alertmanager's webhooks take it unchanged.
    """

    url: str
    timeout: float = 10.0
    format: Literal["tsfleet", "alertmanager"] = "tsfleet"
    external_url: str = ""
    generator_url: str = ""
    kind: str = "webhook"

    @property
    def name(self) -> str:
        suffix = "" if self.format == "tsfleet" else f" ({self.format})"
        return f"webhook {_redacted(self.url)}{suffix}"

    def body(self, notification: Notification) -> dict[str, Any]:
        if self.format == "alertmanager":
            return webhook_v4(notification.payload, receiver="tsfleet",
                              external_url=self.external_url,
                              generator_template=self.generator_url)
        return {"version": "1", "notification_id": notification.notification_id,
                **notification.payload}

    def send(self, notification: Notification) -> None:
        post_json(self.url, self.body(notification), self.timeout,
                  {"Idempotency-Key": f"tsfleet-{notification.notification_id}"})


@dataclass
class AlertmanagerSink:
    """Alertmanager v2: POST /api/v2/alerts with labels, annotations, startsAt, endsAt.

    Firing alerts carry endsAt = now + 4 x resend_interval and are re-sent every
    resend_interval (resend_firing), as Prometheus does, so Alertmanager keeps them active
    and resolves them by itself if tsfleet goes away; resolved alerts carry their real endsAt.
    generator_url is a template ({episode_id}, {rule}, {alertname}) linking back to tsfleet.
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
        if payload.get("status") == "resolved":
            ends_at: datetime | str | None = payload.get("endsAt")
        else:
            ends_at = now + 4 * self.resend_interval
        return api_alert(payload, ends_at, self.generator_url)

    def send(self, notification: Notification) -> None:
        post_json(self.endpoint, [self.alert(notification.payload)], self.timeout)

    def resend_firing(self, payloads: list[dict[str, Any]]) -> None:
        if payloads:
            post_json(self.endpoint, [self.alert(p) for p in payloads], self.timeout)
