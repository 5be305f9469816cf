"""JetStream setup: the streams the consumer reads from and publishes to."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from loader.stream.settings import ConsumerSettings
from loader.stream.stats import log_event


async def ensure_stream(js: JetStreamContext, name: str, subject: str) -> None:
    """Create the stream (file storage) when missing; an existing stream is left as it is."""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=name, subjects=[subject],
                                         storage=StorageType.FILE, duplicate_window=120.0))
        log_event("stream_created", stream=name, subject=subject)
        return
    subjects = info.config.subjects or []
    if subject not in subjects:
        log_event("stream_subject_not_listed", level="warning", stream=name, subject=subject,
                  subjects=subjects)


async def ensure_streams(js: JetStreamContext, settings: ConsumerSettings) -> None:
    await ensure_stream(js, settings.stream, settings.subject)
    await ensure_stream(js, settings.dlq_stream, settings.dlq_subject)
    if settings.events_subject:
        await ensure_stream(js, settings.events_stream, settings.events_subject)
