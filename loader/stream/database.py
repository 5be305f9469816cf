"""The consumer's database side: one autocommit connection (sync psycopg, called in a worker
thread so NATS keeps running on the event loop), opened on first use and again after it broke.
Writes go through the sink (loader/stream/sink.py), dead letters through
ingest.record_stream_rejects (loader/stream/deadletter.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import psycopg

from loader.db import plain_url
from loader.stream.deadletter import record_rejects
from loader.stream.pipeline import DeadLetter, Payload
from loader.stream.settings import ConsumerSettings
from loader.stream.sink import Written, prepare_session, write_payloads


class Database:
    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings
        self._conn: psycopg.Connection | None = None

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(plain_url(self.settings.database_url), autocommit=True,
                                   application_name="tsfleet-consume")
            prepare_session(conn, self.settings.events_subject)
            self._conn = conn
        return self._conn

    def write(self, payloads: Sequence[Payload]) -> Written:
        """One committed batch of the payloads (raises: nothing of them was written)."""
        return write_payloads(self._connection(), payloads,
                              source_name=self.settings.source_name,
                              events=self.settings.events_subject is not None)

    def record_rejects(self, letters: Sequence[DeadLetter]) -> int | None:
        return record_rejects(self._connection(), self.settings.source_name, letters)

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
