"""Retries with exponential backoff and jitter (``stamina``), honouring ``Retry-After``.

What is retried: :class:`~imagevet.errors.TransportError`, 429, and 5xx other than 501, from a
registry (:class:`~imagevet.errors.RegistryError`) or the Docker Hub API
(:class:`~imagevet.errors.HubError`): both clients use this one policy.  A wait the server asks
for (``Retry-After``, in seconds, as an HTTP-date or as a unix time) is honoured when it is at
most ``max_retry_after``; a longer one (Docker Hub's 6-hour pull window) gives up at once, so the
caller sees :class:`~imagevet.errors.RateLimitedError` (or
:class:`~imagevet.errors.HubRateLimitedError`) with ``retry_after`` instead of a loop.

Only *replayable* requests are retried here.  A request whose body is a one-shot stream (a blob
upload) is sent once; the operation that owns the source stream retries by opening it again.

One layer per request: when :meth:`RetryPolicy.call` gives up it marks the error ``exhausted``,
and an exhausted error is never retried again, by another policy (a token fetch inside a request)
or by an operation above the client (``copy`` restarts a blob only for a body that broke after
its response came, or for the one-shot upload).  A blob GET answered 5xx every time is therefore
sent ``attempts`` times in all (5 by default), not ``attempts`` times per layer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import stamina

from imagevet.errors import HubError, RegistryError, TransportError

__all__ = ["RetryPolicy"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one request.

    * ``attempts``: tries in all, the first included (1 = no retry).
    * ``timeout``: give up retrying after this many seconds in all.
    * ``wait_initial`` · ``2**n``, capped at ``wait_max``, plus up to ``wait_jitter``: the backoff.
    * ``max_retry_after``: the longest ``Retry-After`` waited for.
    """

    attempts: int = 5
    timeout: float = 120.0
    wait_initial: float = 0.25
    wait_max: float = 10.0
    wait_jitter: float = 0.5
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    @classmethod
    def no_wait(cls, attempts: int = 5, *, max_retry_after: float = 60.0) -> RetryPolicy:
        """Retry at once without backoff (tests); ``Retry-After`` is still honoured."""
        return cls(
            attempts=attempts,
            wait_initial=0.0,
            wait_max=0.0,
            wait_jitter=0.0,
            max_retry_after=max_retry_after,
        )

    @classmethod
    def never(cls) -> RetryPolicy:
        """Send every request once."""
        return cls(attempts=1)

    def backoff_for(self, exc: Exception) -> bool | float:
        """Whether to retry after ``exc``, or how many seconds to wait when the server said so."""
        if getattr(exc, "exhausted", False):
            return False  # an inner layer already retried this request
        if isinstance(exc, TransportError):
            log.debug("retrying after %s", exc)
            return True
        if not isinstance(exc, RegistryError | HubError) or not exc.temporary:
            return False
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is None:
            log.debug("retrying after HTTP %d", exc.status)
            return True
        if retry_after > self.max_retry_after:
            log.info(
                "not retrying HTTP %d: the server asks to wait %.0f s (more than %.0f s)",
                exc.status,
                retry_after,
                self.max_retry_after,
            )
            return False
        log.info("HTTP %d: retrying in %.2f s as Retry-After asks", exc.status, retry_after)
        return float(retry_after)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` until it succeeds, retrying what :meth:`backoff_for` allows; the error it
        gives up on is marked ``exhausted`` (see the module docstring)."""
        try:
            if self.attempts == 1:
                return await fn()
            async for attempt in stamina.retry_context(
                on=self.backoff_for,
                attempts=self.attempts,
                timeout=self.timeout,
                wait_initial=self.wait_initial,
                wait_max=self.wait_max,
                wait_jitter=self.wait_jitter,
            ):
                with attempt:
                    return await fn()
        except (TransportError, RegistryError, HubError) as e:
            e.exhausted = True
            raise
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover
