"""Free loopback ports and readiness polling for servers started by the tests."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

__all__ = ["LOOPBACK", "free_port", "http_status", "wait_until"]

LOOPBACK = "127.0.0.1"

# urllib must never route loopback traffic through a proxy taken from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind port 0, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """GET ``url`` and return the status code, or None when nothing answers."""
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (OSError, urllib.error.URLError):
        return None


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.02,
    on_timeout: Callable[[], str] = lambda: "condition not met",
) -> None:
    """Poll ``check`` until it is true; raise TimeoutError with ``on_timeout()`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(on_timeout())
        time.sleep(interval)
