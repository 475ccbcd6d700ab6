"""Pure helpers: WWW-Authenticate challenges, URL joins and Link headers, Retry-After."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from imagevet.registry.challenge import Challenge, parse_challenges, pick_challenge
from imagevet.registry.responses import parse_diagnostics, parse_retry_after
from imagevet.registry.urls import add_query, join_url, next_link, origin

HUB = (
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
    'scope="repository:library/nginx:pull"'
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            [HUB],
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/nginx:pull",
                    },
                )
            ],
        ),
        (['Basic realm="Registry Realm"'], [Challenge("basic", {"realm": "Registry Realm"})]),
        (["basic realm=simple"], [Challenge("basic", {"realm": "simple"})]),
        (
            ['Bearer realm="https://a/t", scope="repository:x/y:pull,push", Basic realm="r"'],
            [
                Challenge("bearer", {"realm": "https://a/t", "scope": "repository:x/y:pull,push"}),
                Challenge("basic", {"realm": "r"}),
            ],
        ),
        (
            ['Basic realm="r"', 'Bearer realm="https://a/t",service="s"'],
            [
                Challenge("basic", {"realm": "r"}),
                Challenge("bearer", {"realm": "https://a/t", "service": "s"}),
            ],
        ),
        (
            ['Bearer realm="say \\"hi\\"", error="insufficient_scope"'],
            [Challenge("bearer", {"realm": 'say "hi"', "error": "insufficient_scope"})],
        ),
        (
            ["Negotiate abc==, Basic realm=x"],
            [Challenge("negotiate", {}), Challenge("basic", {"realm": "x"})],
        ),
        ([""], []),
        (["=garbage"], []),
    ],
)
def test_parse_challenges(values: list[str], expected: list[Challenge]) -> None:
    assert parse_challenges(values) == expected


def test_pick_prefers_bearer_with_realm() -> None:
    got = parse_challenges(['Basic realm="r", Bearer realm="https://a/t"'])
    picked = pick_challenge(got)
    assert picked is not None and picked.scheme == "bearer"
    assert pick_challenge(parse_challenges(['Bearer service="no realm"'])) is None
    picked = pick_challenge(parse_challenges(['Basic realm="r"']))
    assert picked is not None and picked.scheme == "basic"


@pytest.mark.parametrize(
    ("base", "ref", "expected"),
    [
        (
            "https://r.io/v2/a/blobs/uploads/",
            "/v2/a/blobs/uploads/u1?_state=x%2By",
            "https://r.io/v2/a/blobs/uploads/u1?_state=x%2By",
        ),
        (
            "https://r.io/v2/a/blobs/uploads/",
            "https://cdn.io/p?X-Sig=ab%2Bcd%3D%27",
            "https://cdn.io/p?X-Sig=ab%2Bcd%3D%27",
        ),
        ("https://r.io/v2/a/blobs/x?q=1", "//cdn.io/p?s=%3D", "https://cdn.io/p?s=%3D"),
        (
            "https://r.io/v2/a/blobs/uploads/",
            "u2?x=%27",
            "https://r.io/v2/a/blobs/uploads/u2?x=%27",
        ),
        (
            "https://r.io/v2/a/tags/list?n=2",
            "?n=2&last=b",
            "https://r.io/v2/a/tags/list?n=2&last=b",
        ),
        ("http://127.0.0.1:5000", "/v2/x", "http://127.0.0.1:5000/v2/x"),
    ],
)
def test_join_url_keeps_bytes(base: str, ref: str, expected: str) -> None:
    assert join_url(base, ref) == expected


def test_add_query_appends_properly() -> None:
    assert add_query("https://r/u/1", "digest", "sha256:ab") == "https://r/u/1?digest=sha256%3Aab"
    assert (
        add_query("https://r/u/1?_state=a%2Bb%3D", "digest", "sha256:ab")
        == "https://r/u/1?_state=a%2Bb%3D&digest=sha256%3Aab"
    )
    assert add_query("https://r/u/1?", "digest", "d") == "https://r/u/1?digest=d"


def test_origin() -> None:
    assert origin("https://R.io:443/v2/") == "https://r.io"
    assert origin("http://127.0.0.1:5000/v2/?x") == "http://127.0.0.1:5000"
    assert origin("https://r.io:5000") != origin("https://r.io")
    assert origin("https://user:pw@r.io/x") == "https://r.io"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (['</v2/a/tags/list?n=2&last=b>; rel="next"'], "/v2/a/tags/list?n=2&last=b"),
        (["<https://r/x?a=%2B>; rel=next"], "https://r/x?a=%2B"),
        (['<https://r/p>; rel="prev", <https://r/n>; rel="next"'], "https://r/n"),
        (['<https://r/p>; rel="prev"'], None),
        ([], None),
    ],
)
def test_next_link(values: list[str], expected: str | None) -> None:
    assert next_link(values) == expected


def test_retry_after_seconds_and_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_800_000_000.0
    date = formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30.0)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


def test_error_envelope() -> None:
    body = b'{"errors":[{"code":"DENIED","message":"no","detail":{"x":1}}]}'
    (d,) = parse_diagnostics(body)
    assert (d.code, d.message, d.detail) == ("DENIED", "no", {"x": 1})
    assert parse_diagnostics(b"404 page not found") == ()
