"""The in-toto v1 Statement imagevet signs: its exact shape, and parsing it back (hostile input)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from imagevet.digest import Digest
from imagevet.errors import SignatureError
from imagevet.signature.intoto import (
    MIRROR_PREDICATE_TYPE,
    STATEMENT_TYPE,
    MirrorPredicate,
    Statement,
    parse_statement,
)

MIRROR = Digest.parse("sha256:" + "a" * 64)
SOURCE = Digest.parse("sha256:" + "b" * 64)
LOCK = "c" * 64
WHEN = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)


def predicate(**changes: object) -> MirrorPredicate:
    values: dict[str, object] = {
        "source": "docker.io/bitnami/redis:7.2", "source_digest": SOURCE, "entry": "redis",
        "approved_by": "security@acme.example", "lock_sha256": LOCK, "time": WHEN,
        "imagevet_version": "0.1.0", "reason": "needed by checkout", "ticket": "SEC-12",
        "expires": "2099-12-31",
    }
    values.update(changes)
    return MirrorPredicate(**values)  # type: ignore[arg-type]


def test_the_statement_has_in_totos_v1_shape_with_our_predicate() -> None:
    statement = Statement("registry.example/acme/redis", MIRROR, predicate(
        signature={"kind": "key", "key_id": "sha256:" + "d" * 64}, scan={"critical": 0, "high": 2},
    ))
    doc = json.loads(statement.to_bytes())
    assert doc == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "registry.example/acme/redis", "digest": {"sha256": "a" * 64}}],
        "predicateType": "https://imagevet.dev/mirror/v1",
        "predicate": {
            "source": {"reference": "docker.io/bitnami/redis:7.2", "digest": {"sha256": "b" * 64}},
            "entry": "redis",
            "approval": {"by": "security@acme.example", "reason": "needed by checkout",
                         "ticket": "SEC-12", "expires": "2099-12-31"},
            "lock": {"sha256": LOCK},
            "time": "2026-11-30T10:00:00Z",
            "imagevet": {"version": "0.1.0"},
            "signature": {"kind": "key", "key_id": "sha256:" + "d" * 64},
            "scan": {"critical": 0, "high": 2},
        },
    }
    assert list(doc) == ["_type", "subject", "predicateType", "predicate"]
    assert b" " not in statement.to_bytes().replace(b"needed by checkout", b"")  # compact JSON


def test_optional_records_are_left_out_and_the_statement_parses_back() -> None:
    statement = Statement("oci:mirror/acme/redis", MIRROR, predicate(reason=None, ticket=None, expires=None))
    doc = json.loads(statement.to_bytes())
    assert "signature" not in doc["predicate"] and "scan" not in doc["predicate"]
    assert doc["predicate"]["approval"] == {"by": "security@acme.example", "reason": None, "ticket": None, "expires": None}
    parsed, subjects = parse_statement(statement.to_bytes(), what="att")
    assert parsed == statement and subjects == (MIRROR,)


def test_same_statement_ignores_time_and_version_only() -> None:
    base = predicate(scan={"high": 1})
    assert base.same_statement(predicate(scan={"high": 1}, time=datetime(2027, 1, 1, tzinfo=UTC), imagevet_version="9"))
    assert not base.same_statement(predicate(scan={"high": 2}))
    assert not base.same_statement(predicate(scan={"high": 1}, lock_sha256="e" * 64))
    assert not base.same_statement(predicate(scan={"high": 1}, source_digest=MIRROR))
    assert not base.same_statement(predicate(scan={"high": 1}, ticket="SEC-13"))


def _doc(**changes: object) -> bytes:
    doc = Statement("r/acme/x", MIRROR, predicate()).to_json()
    for key, value in changes.items():
        if key.startswith("p_"):
            doc["predicate"][key[2:]] = value
        else:
            doc[key] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", "not JSON"),
        (b"[1]", "not a JSON object"),
        (_doc(_type="https://example.com/Other"), "not an in-toto statement"),
        (_doc(predicateType="https://slsa.dev/provenance/v1"), "predicate type"),
        (_doc(subject=[]), "no subject"),
        (_doc(subject=[{"name": "x", "digest": {"md5": "00"}}]), "no sha256"),
        (_doc(subject=[{"name": "x", "digest": {"sha256": "zz"}}]), "not a valid digest"),
        (_doc(subject=[{"name": "x", "digest": {"sha256": "a" * 64}}] * 65), "subjects"),
        (_doc(p_lock={"sha256": "short"}), "lock.sha256"),
        (_doc(p_time="yesterday"), "predicate time"),
        (_doc(p_entry=""), "entry"),
        (_doc(p_source="docker.io/x"), "source is not a JSON object"),
        (_doc(predicate=[]), "predicate is not a JSON object"),
    ],
)
def test_malformed_statements_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        parse_statement(data, what="att")


def test_a_statement_with_several_subjects_reports_them_all() -> None:
    doc = json.loads(_doc())
    doc["subject"].append({"name": "other", "digest": {"sha256": "f" * 64}})
    statement, subjects = parse_statement(json.dumps(doc).encode(), what="att")
    assert statement.subject_digest == MIRROR and subjects == (MIRROR, Digest.parse("sha256:" + "f" * 64))
    assert doc["_type"] == STATEMENT_TYPE and doc["predicateType"] == MIRROR_PREDICATE_TYPE
