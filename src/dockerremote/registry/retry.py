"""When and how long to wait before asking a registry again.

Retried: 429 (after its Retry-After, unless that is longer than we are willing to wait), 5xx
except 501/505, and failures to connect or read. Not retried: anything else, which will not
change by asking again. A dropped connection that delivered bytes resets the count: progress
means the registry is alive.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 507, 508, 509, 520, 521, 522, 523, 524, 598, 599})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5              # tries of one request that makes no progress (first one included)
    base_delay: float = 0.25       # the first wait; doubled after each failure
    max_delay: float = 5.0         # cap of the exponential wait
    max_retry_after: float = 30.0  # a Retry-After beyond this: give up now, the error says why
    jitter: float = 0.2            # +-20%, so clients that failed together do not return together
    max_resumes: int = 100         # Range resumes of one blob, however much progress each made

    def delay(self, failures: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before try number failures+1, or None when we should give up."""
        if failures >= self.attempts:
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return max(0.0, retry_after)
        d = min(self.max_delay, self.base_delay * (2 ** max(0, failures - 1)))
        return d * (1 + random.uniform(-self.jitter, self.jitter))


@dataclass
class Attempts:
    """The retry state of one transfer (a blob download or upload) across its requests."""

    policy: RetryPolicy
    failures: int = 0
    resumes: int = 0

    def delay_after(self, err: Exception, progressed: bool, retry_after: float | None) -> float:
        """Seconds to wait before the next request; raises `err` when it is time to give up.

        A request that moved the transfer forward is a resume (no wait, count reset); one that
        did not is a failure, waited for with backoff (or Retry-After).
        """
        if progressed:
            self.failures, self.resumes = 0, self.resumes + 1
            if self.resumes > self.policy.max_resumes:
                raise err
            return 0.0
        self.failures += 1
        delay = self.policy.delay(self.failures, retry_after)
        if delay is None:
            raise err
        return delay

    async def wait(self, delay: float, err: Exception,
                   on_retry: Callable[[int, float, Exception], Any] | None) -> None:
        if on_retry is not None:
            r = on_retry(self.failures, delay, err)
            if inspect.isawaitable(r):
                await r
        if delay:
            await asyncio.sleep(delay)


def retryable(status: int) -> bool:
    return status in RETRY_STATUSES


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After: delta-seconds or an HTTP-date (RFC 9110 10.2.3); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
