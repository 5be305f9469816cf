"""The consumer's retries, through tenacity: exponential backoff (0.5 s, 1 s, 2 s ... 10 s),
forever, until the work succeeds or shutdown is requested (the wait between attempts ends at
once then, raising Stopped). What is worth retrying is the caller's predicate: transient
and systemic database errors (loader/stream/pipeline.classify), any NATS connect error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

FIRST_WAIT_S = 0.5
LONGEST_WAIT_S = 10.0


class Stopped(Exception):
    """Shutdown was requested while the work waited for its next attempt."""


def until_stopped(stop: asyncio.Event, worth_retrying: Callable[[BaseException], bool],
                  on_retry: Callable[[BaseException, int, float], None]) -> AsyncRetrying:
    """A tenacity controller: `await until_stopped(...)(coroutine_function, *args)`.
    `on_retry(error, attempt, wait_s)` is called before each wait."""

    async def sleep(seconds: float) -> None:
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            return
        raise Stopped

    def before_sleep(state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        error = state.outcome.exception()
        assert error is not None
        on_retry(error, state.attempt_number, state.next_action.sleep)

    return AsyncRetrying(
        retry=retry_if_exception(worth_retrying),
        wait=wait_exponential(multiplier=FIRST_WAIT_S, max=LONGEST_WAIT_S),
        sleep=sleep, before_sleep=before_sleep, reraise=True,
    )
