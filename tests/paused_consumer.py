"""`tsfleet consume nats` that stops for good between a commit and its acks, through the
consumer's test hook (run_consumer's after_commit), so that a test can SIGKILL it right there
and check that the redelivery changes nothing. Run as a script with the command's options."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Sequence

from loader.cli import main
from loader.stream import consumer
from loader.stream.pipeline import Delivery
from loader.stream.sink import Written
from loader.stream.stats import log_event


async def pause_before_ack(written: Written, chunk: Sequence[Delivery]) -> None:
    log_event("fault_pause_before_ack",
              batch_id=written.counts.batch_id if written.counts else None,
              messages=len(chunk))
    await asyncio.Event().wait()


if __name__ == "__main__":
    consumer.run_consumer = functools.partial(consumer.run_consumer,  # type: ignore[assignment]
                                              after_commit=pause_before_ack)
    main(["consume", "nats", *sys.argv[1:]], prog_name="tsfleet")
