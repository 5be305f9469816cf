"""The one JSON log formatter (loader/logs.py) the consumer and the alert runner share."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest

from loader.logs import EventLog, JsonFormatter, configure


@pytest.fixture
def captured() -> io.StringIO:
    """The "tsfleet" loggers written with the shared formatter into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tsfleet")
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def test_an_event_is_one_json_line_with_time_level_component_event_and_fields(
        captured: io.StringIO) -> None:
    log = EventLog("alerts", component="alerts-runner")
    log("delivered", sink="webhook", notification_id=7,
        at=datetime(2026, 1, 1, tzinfo=timezone.utc), path=Path("/tmp/x"))
    log("delivery_failed", level="warning", error="timed out")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert (first["level"], first["component"], first["event"]) == ("info", "alerts-runner",
                                                                     "delivered")
    assert (first["sink"], first["notification_id"]) == ("webhook", 7)
    assert first["at"] == "2026-01-01 00:00:00+00:00" and first["path"] == "/tmp/x"
    assert datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert (second["level"], second["error"]) == ("warning", "timed out")


def test_levels_below_the_configured_one_are_dropped(captured: io.StringIO) -> None:
    logging.getLogger("tsfleet").setLevel(logging.WARNING)
    log = EventLog("consumer")
    log("stats", processed=1)
    log("database_unavailable", level="warning")
    assert [json.loads(line)["event"] for line in captured.getvalue().splitlines()] == [
        "database_unavailable"]


def test_configure_sends_events_to_the_current_stderr_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("tsfleet")
    before = list(logger.handlers)
    try:
        configure()
        configure()  # a second call adds no second handler
        EventLog("consumer")("consumer_started", durable="d")
        lines = capsys.readouterr().err.splitlines()
        assert [json.loads(line)["event"] for line in lines] == ["consumer_started"]
        assert json.loads(lines[0])["component"] == "consumer"
    finally:
        for handler in logger.handlers:
            if handler not in before:
                logger.removeHandler(handler)
