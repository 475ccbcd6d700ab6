"""Dockerfile finder: text -> (line, column, kind, value, context) tables."""

from __future__ import annotations

import pytest

from imagevet.check import FindingKind, ReplaceSpan, find_in_dockerfile


def rows(text: str) -> list[tuple[int, int, str, str, str]]:
    return [
        (f.location.line, f.location.column, str(f.kind), f.value, f.context)
        for f in find_in_dockerfile(text, "Dockerfile")
    ]


CASES = [
    pytest.param("FROM alpine:3.20\n", [(1, 6, "reference", "alpine:3.20", "FROM")], id="plain"),
    pytest.param("from Alpine\n", [(1, 6, "invalid-reference", "Alpine", "FROM")], id="lowercase-instruction-uppercase-name"),
    pytest.param(
        "FROM --platform=linux/amd64 nginx:1.27 AS web\n",
        [(1, 29, "reference", "nginx:1.27", "FROM (stage web)")],
        id="platform-and-alias",
    ),
    pytest.param(
        "FROM golang:1.22 AS Build\nFROM build\nFROM BUILD AS again\n",
        [(1, 6, "reference", "golang:1.22", "FROM (stage build)")],
        id="stage-names-are-case-insensitive",
    ),
    pytest.param("FROM build\nFROM golang AS build\n",
                 [(1, 6, "reference", "build", "FROM"), (2, 6, "reference", "golang", "FROM (stage build)")],
                 id="a-later-stage-name-is-still-an-image-before-it"),
    pytest.param("FROM scratch\nFROM SCRATCH AS x\n", [], id="scratch"),
    pytest.param(
        "FROM a AS one\nCOPY --from=one /x /y\nCOPY --from=0 /x /y\nCOPY --from=two /x /y\nFROM b AS two\n",
        [(1, 6, "reference", "a", "FROM (stage one)"), (5, 6, "reference", "b", "FROM (stage two)")],
        id="copy-from-stage-or-index",
    ),
    pytest.param(
        "FROM a\nCOPY --chown=1:1 --from=bitnami/kubectl:1.30 /k /k\n",
        [(1, 6, "reference", "a", "FROM"), (2, 25, "reference", "bitnami/kubectl:1.30", "COPY --from")],
        id="copy-from-image",
    ),
    pytest.param(
        "FROM a AS b\nRUN --mount=type=cache,from=b,target=/c --mount=from=busybox:1.36,target=/bb true\n",
        [(1, 6, "reference", "a", "FROM (stage b)"), (2, 54, "reference", "busybox:1.36", "RUN --mount from")],
        id="run-mount-from",
    ),
    pytest.param(
        "ARG BASE=debian\nARG TAG=12\nFROM ${BASE}:${TAG}-slim\nFROM $BASE\n",
        [(3, 6, "reference", "debian:12-slim", "FROM"), (4, 6, "reference", "debian", "FROM")],
        id="arg-defaults",
    ),
    pytest.param(
        "ARG TAG\nFROM alpine:${TAG:-3.20}\nFROM alpine:${TAG}\nFROM alpine:$NOPE\n",
        [(2, 6, "reference", "alpine:3.20", "FROM"), (3, 6, "unresolved", "alpine:", "FROM"),
         (4, 6, "unresolved", "alpine:", "FROM")],
        id="defaults-and-unresolved",
    ),
    pytest.param(
        "FROM a\nARG LATE=x\nFROM b:${LATE}\n",
        [(1, 6, "reference", "a", "FROM"), (3, 6, "unresolved", "b:", "FROM")],
        id="arg-in-a-stage-is-not-seen-by-from",
    ),
    pytest.param(
        "ARG TOOLS=busybox:1.36\nFROM a\nARG TOOLS\nCOPY --from=${TOOLS} /bin/sh /sh\n",
        [(2, 6, "reference", "a", "FROM"), (4, 13, "reference", "busybox:1.36", "COPY --from")],
        id="stage-arg-imports-global-default",
    ),
    pytest.param(
        "# syntax=docker/dockerfile:1\n# escape=`\nFROM `\n  alpine:3.20 `\n  AS base\n",
        [(4, 3, "reference", "alpine:3.20", "FROM (stage base)")],
        id="escape-directive-backtick",
    ),
    pytest.param(
        "FROM \\\n# a comment inside the continuation\n\n    nginx:1.27\n",
        [(4, 5, "reference", "nginx:1.27", "FROM")],
        id="continuation-with-comment-and-blank",
    ),
    pytest.param(
        "FROM a\nRUN <<EOF\nFROM b\nEOF\nRUN <<-'X' cat\n\tFROM c\n\tX\nFROM d\n",
        [(1, 6, "reference", "a", "FROM"), (8, 6, "reference", "d", "FROM")],
        id="heredocs-skipped",
    ),
    pytest.param("  # just a comment\n\n", [], id="nothing"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_findings(text: str, expected: list[tuple[int, int, str, str, str]]) -> None:
    assert rows(text) == expected


def test_literal_reference_is_fixed_in_place() -> None:
    text = "FROM --platform=$BUILDPLATFORM bitnami/redis:7.2 AS cache\n"
    (f,) = find_in_dockerfile(text, "Dockerfile")
    assert isinstance(f.fix, ReplaceSpan) and f.fix.via == ""
    assert text[f.fix.span.start : f.fix.span.end] == "bitnami/redis:7.2"


def test_whole_arg_reference_is_fixed_through_the_arg_default() -> None:
    text = 'ARG IMG="bitnami/redis:7.2"\nFROM ${IMG} AS a\nFROM $IMG AS b\n'
    found = find_in_dockerfile(text, "Dockerfile")
    assert [f.detail for f in found] == ["from ARG IMG", "from ARG IMG"]
    for f in found:
        assert isinstance(f.fix, ReplaceSpan) and f.fix.via == "ARG IMG"
        assert text[f.fix.span.start : f.fix.span.end] == "bitnami/redis:7.2"  # inside the quotes


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("ARG TAG=7.2\nFROM bitnami/redis:${TAG}\n", "built from ARG values"),
        ("ARG IMG=bitnami/redis:7.2\nFROM ${IMG}\nFROM ${IMG}-debian\n", "also used inside other image references"),
        ("ARG V=7.2\nARG IMG=bitnami/redis:${V}\nFROM ${IMG}\n", "built from ARG values"),
    ],
)
def test_arg_built_references_are_not_auto_fixable(text: str, note: str) -> None:
    f = find_in_dockerfile(text, "Dockerfile")[0]
    assert f.kind is FindingKind.REFERENCE and f.fix is None and note in f.fix_note


def test_crlf_line_endings() -> None:
    text = "FROM a\r\nFROM \\\r\n  b:1\r\n"
    assert rows(text) == [(1, 6, "reference", "a", "FROM"), (3, 3, "reference", "b:1", "FROM")]
