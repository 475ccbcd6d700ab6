"""Send one notification: POST, retried with backoff and jitter, bounded in time and size.

It goes through the registry client's HTTP stack (:class:`~imagevet.registry.transport.AiohttpTransport`:
no redirect followed, no proxy from the environment, bounded connect and read timeouts) and
takes its backoff numbers from a :class:`~imagevet.registry.retry.RetryPolicy`.  It does not
use ``RetryPolicy.call``: that retries registry and Hub errors, whose messages carry the
request URL's path, and here the path is the credential; and a notification must also stop at
the run's deadline, whatever ``Retry-After`` says.  So the loop is here::

    attempt (at most attempt_seconds, and never past the deadline):
        2xx                         -> sent
        429, 5xx but 501, no answer -> wait (Retry-After when it is at most max_retry_after,
                                       else backoff 2**n with jitter) and retry, unless the wait
                                       would pass the deadline or the attempts are used up
        3xx                         -> failed (never followed: a POST is not re-sent elsewhere)
        other 4xx/5xx               -> failed
    the answer's body is read up to response_limit bytes, and only for a failure's message

Messages name the target by its variable and host (``Receiver.label``) and carry the status
and at most 200 characters of the answer, scrubbed of every piece of the URL and key.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from imagevet import __version__
from imagevet.errors import TransportError, scrub
from imagevet.notify.receivers import Receiver
from imagevet.registry.responses import parse_retry_after
from imagevet.registry.retry import RetryPolicy
from imagevet.registry.transport import Request, Transport

__all__ = ["DEFAULT_RETRY", "Attempted", "DeliverySettings", "post"]

log = logging.getLogger(__name__)

DEFAULT_RETRY = RetryPolicy(attempts=4, wait_initial=0.5, wait_max=8.0, wait_jitter=0.5, max_retry_after=20.0)


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How hard to try: per attempt, per run, and how much of an answer is read."""

    total_seconds: float = 30.0
    """All deliveries of one run end by then (a dead receiver cannot stall ``watch``)."""
    attempt_seconds: float = 10.0
    """One request: connect, send, and the answer's headers and body."""
    retry: RetryPolicy = DEFAULT_RETRY
    response_limit: int = 64 << 10


@dataclass(frozen=True, slots=True)
class Attempted:
    """How one POST went: ``ok`` after a 2xx; else ``reason`` (safe to show) and whether the
    target looks down (no answer, 5xx, 429: the rest of its events wait for the next run)."""

    ok: bool
    attempts: int
    status: int | None = None
    reason: str = ""
    down: bool = False


def _retryable(status: int) -> bool:
    return status == 429 or (status >= 500 and status != 501)


async def post(
    transport: Transport,
    receiver: Receiver,
    body: bytes,
    headers: Mapping[str, str],
    *,
    deadline: float,
    settings: DeliverySettings,
    jitter: Callable[[], float] = random.random,
    secrets: Sequence[str] = (),
) -> Attempted:
    """POST ``body`` to ``receiver`` until a 2xx, a final answer, the attempts or ``deadline``
    (the event loop's clock) run out; see the module docstring.  ``secrets``: more values to
    mask in the answer's text besides the receiver's own (the other targets' URLs and keys)."""
    loop = asyncio.get_running_loop()
    policy = settings.retry
    secrets = [*receiver.secrets(), *secrets]
    all_headers = {"Content-Type": "application/json", "User-Agent": f"imagevet/{__version__}", **headers}
    attempts = 0
    last = "not sent"
    status: int | None = None
    while True:
        left = deadline - loop.time()
        if left <= 0:
            return Attempted(False, attempts, status, f"{last}; the run's notification time "
                             f"({settings.total_seconds:g} s) ran out", down=True)
        attempts += 1
        wait: float | None = None
        try:
            async with asyncio.timeout(min(settings.attempt_seconds, left)):
                response = await transport.send(Request("POST", receiver.url, dict(all_headers), body))
                status = response.status
                if 200 <= status < 300:
                    await response.aclose()
                    return Attempted(True, attempts, status)
                text = (await response.read(settings.response_limit)).decode("utf-8", "replace")
        except TimeoutError:
            last, status = f"no answer within {min(settings.attempt_seconds, left):g} s", None
        except TransportError as e:  # e.reason never holds the URL (e's message does: unused)
            last, status = e.reason, None
        else:
            said = scrub(text.strip(), secrets, limit=200)
            last = f"HTTP {status}" + (f": {said}" if said else "")
            if 300 <= status < 400:
                return Attempted(False, attempts, status, f"HTTP {status}: redirects are not followed")
            if not _retryable(status):
                return Attempted(False, attempts, status, last)
            asked = parse_retry_after(response.headers.get("Retry-After"))
            if asked is not None:
                if asked > policy.max_retry_after:
                    return Attempted(False, attempts, status, f"{last}; asked to wait {asked:.0f} s "
                                     f"(more than {policy.max_retry_after:g} s)", down=True)
                wait = asked
        if attempts >= policy.attempts:
            return Attempted(False, attempts, status, f"{last} (after {attempts} attempts)", down=True)
        if wait is None:
            wait = min(policy.wait_max, policy.wait_initial * 2 ** (attempts - 1)) + policy.wait_jitter * jitter()
        if loop.time() + wait >= deadline:
            return Attempted(False, attempts, status, f"{last}; no time left in this run to retry "
                             f"in {wait:.1f} s", down=True)
        log.debug("notify %s: %s; retrying in %.2f s", receiver.label, last, wait)
        await asyncio.sleep(wait)
