"""Publisher of the transactional outbox (ingest.asset_event_outbox) to telemetry.asset.v1.

Events are claimed with `for update skip locked` (several consumers never publish the same
row at once), published to JetStream with their event key as Nats-Msg-Id (a re-publish after a
crash is dropped by the stream's duplicate window), and marked published in the same
transaction once the server acknowledged them. Whatever a crashed consumer left behind is
published by the next one at start-up and after every batch.
"""

from __future__ import annotations

import asyncio
import json

import psycopg
from nats.js import JetStreamContext

from loader.db import plain_url

CLAIM_SQL = "select event_id, event_key, subject, payload from ingest.claim_asset_events(%s)"
MARK_SQL = "select ingest.mark_asset_events_published(%s::bigint[])"


class OutboxPublisher:
    def __init__(self, js: JetStreamContext, database_url: str, chunk: int = 500) -> None:
        self.js = js
        self.database_url = database_url
        self.chunk = chunk
        self._conn: psycopg.AsyncConnection | None = None

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                plain_url(self.database_url), autocommit=True,
                application_name="tsfleet-consume-outbox")
        return self._conn

    async def publish_pending(self) -> int:
        """Publish every pending event; returns how many were published. Raises on trouble
        (database or NATS down): the events stay pending for the next call."""
        published = 0
        while True:
            conn = await self._connection()
            try:
                async with conn.transaction():
                    cur = await conn.execute(CLAIM_SQL, (self.chunk,))
                    rows = await cur.fetchall()
                    if not rows:
                        return published
                    acks = await asyncio.gather(
                        *(self.js.publish(subject, json.dumps(payload).encode(),
                                          headers={"Nats-Msg-Id": key})
                          for _event_id, key, subject, payload in rows),
                        return_exceptions=True,
                    )
                    done = [row[0] for row, ack in zip(rows, acks, strict=True)
                            if not isinstance(ack, BaseException)]
                    if done:
                        await conn.execute(MARK_SQL, (done,))
            except psycopg.OperationalError:
                await self.close()
                raise
            published += len(done)
            failures = [ack for ack in acks if isinstance(ack, BaseException)]
            if failures:
                raise RuntimeError(f"{len(failures)} event(s) not acknowledged by NATS: "
                                   f"{failures[0]!r}")

    async def close(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.close()
            finally:
                self._conn = None
