"""X-RateLimit-* headers and the wait a 429 asks for."""

from __future__ import annotations

import pytest

from imagevet.hub.throttle import ApiRateLimit, retry_after
from imagevet.registry.responses import parse_retry_after

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"X-Retry-After": str(int(NOW) + 30)}, 30.0),
        ({"X-Retry-After": str(int(NOW) - 30)}, 0.0),
        ({"Retry-After": "4", "X-Retry-After": str(int(NOW) + 30)}, 4.0),
        ({"Retry-After": "Tue, 14 Nov 2023 22:12:20 GMT"}, 0.0),
        ({"X-RateLimit-Reset": str(int(NOW) + 12)}, 12.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
        # a live Hub 429 carried retry-after as a unix time equal to x-ratelimit-reset (§12)
        ({"Retry-After": str(int(NOW) + 30)}, 30.0),
        ({"Retry-After": str(int(NOW) - 30)}, 0.0),
        ({"Retry-After": str(int(NOW) - 86399)}, 0.0),  # a unix time a day old: no wait
        ({"Retry-After": "21600"}, 21600.0),  # a 6-hour window stays seconds
        ({"Retry-After": "86400"}, 86400.0),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), (str(NOW + 12), 12.0), ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0), ("x", None)],
)
def test_one_parser_for_registry_and_hub(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected
    assert retry_after({"Retry-After": value}, NOW, fallback=False) == expected


def test_no_fallback_headers_outside_a_429() -> None:
    assert retry_after({"X-RateLimit-Reset": str(int(NOW) + 12)}, NOW, fallback=False) is None


def test_retry_after_http_date_in_the_future() -> None:
    # 2023-11-14T22:13:20Z is NOW; the date says 60 s later
    assert retry_after({"Retry-After": "Tue, 14 Nov 2023 22:14:20 GMT"}, NOW) == 60.0


def test_rate_limit_headers() -> None:
    rate = ApiRateLimit.from_headers(
        {
            "X-RateLimit-Limit": "180",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "1700000060",
        }
    )
    assert rate == ApiRateLimit(180, 0, 1700000060.0)
    assert rate.exhausted
    assert ApiRateLimit.from_headers({}) is None
    partial = ApiRateLimit.from_headers({"X-RateLimit-Remaining": "5"})
    assert partial == ApiRateLimit(None, 5, None) and not partial.exhausted
    assert ApiRateLimit.from_headers({"X-RateLimit-Remaining": "inf"}) is None  # hostile: ignored
