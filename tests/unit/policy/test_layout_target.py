"""``target: layout: DIR``: mirrors into OCI image layouts, one per repository, next to the policy."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from imagevet.errors import PolicyError
from imagevet.policy import PolicyErrors, load_policy, parse_policy
from imagevet.reference import Reference

ENTRY = """
images:
  - source: bitnami/redis
    approval: {approved_by: sec@acme.example, approved_on: 2026-01-05}
    tags: {tags: ["7.4"]}
  - source: ghcr.io/org/app
    target: tools/app
    approval: {approved_by: sec@acme.example, approved_on: 2026-01-05}
    tags: {tags: ["1"]}
"""


def _parse(target: str, path: str = "conf/imagevet.yaml", entries: str = ENTRY):  # type: ignore[no-untyped-def]
    text = "version: 1\n" + textwrap.dedent(target) + entries
    return parse_policy(text, path=path, env={})


def test_layout_target_gives_oci_references_next_to_the_policy() -> None:
    policy = _parse("target:\n  layout: mirror\n  namespace: acme\n")
    assert policy.target.layout == "conf/mirror" and policy.target.registry == ""
    assert policy.target.is_layout and not policy.target.is_docker_hub
    redis, app = policy.entries
    assert redis.target == Reference.parse("oci:conf/mirror/acme/redis")
    assert redis.target.scheme == "oci" and not redis.target.is_docker_hub
    assert str(redis.target.with_tag("7.4")) == "oci:conf/mirror/acme/redis:7.4"
    assert app.target == Reference("", "conf/mirror/acme/tools/app", scheme="oci")
    assert policy.checkpoint_ref == Reference.parse("oci:conf/mirror/acme/imagevet-audit:checkpoint")


def test_an_absolute_layout_stays_and_names_follow_naming(tmp_path: Path) -> None:
    policy = _parse(
        f'target:\n  layout: {tmp_path}/out/../m\n  namespace: acme\n  naming: "{{namespace}}-{{name}}"\n'
    )
    assert policy.entries[0].target == Reference.parse(f"oci:{tmp_path}/m/acme/bitnami-redis")


def test_layout_target_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "imagevet.yaml").write_text("version: 1\ntarget:\n  layout: ./m/\n  namespace: acme\n" + ENTRY)
    policy = load_policy(tmp_path / "imagevet.yaml", env={})
    assert policy.target.layout == str(tmp_path / "m")
    assert policy.entries[0].target.repository == str(tmp_path / "m" / "acme" / "redis")


def test_registry_targets_are_unchanged() -> None:
    policy = _parse("target:\n  namespace: acme\n", entries=ENTRY.replace("tools/app", "app"))
    assert policy.target.registry == "docker.io" and policy.target.layout is None
    assert policy.target.is_docker_hub
    assert policy.entries[0].target == Reference.parse("docker.io/acme/redis")
    other = _parse("target:\n  registry: registry.example.com:5000\n  namespace: m/hub\n")
    assert not other.target.is_docker_hub
    assert other.entries[0].target == Reference.parse("registry.example.com:5000/m/hub/redis")


def _errors(target: str) -> list[PolicyError]:
    with pytest.raises(PolicyErrors) as info:
        _parse(target)
    return list(info.value.errors)


def test_layout_and_registry_are_exclusive_and_the_error_says_where() -> None:
    errors = _errors("target:\n  registry: docker.io\n  layout: mirror\n  namespace: acme\n")
    assert len(errors) == 1
    e = errors[0]
    assert (e.path, e.line, e.column) == ("conf/imagevet.yaml", 4, 11)
    assert "either a registry or a layout directory" in str(e)


@pytest.mark.parametrize("value", ['""', '" m"', "123"])
def test_invalid_layout_values_are_reported_at_their_place(value: str) -> None:
    errors = _errors(f"target:\n  layout: {value}\n  namespace: acme\n")
    assert errors and all(e.line == 3 for e in errors)
    assert any("layout" in str(e) for e in errors)


def test_layout_repository_names_follow_the_registry_grammar() -> None:
    text = "version: 1\ntarget:\n  layout: m\n  namespace: acme\n" + ENTRY.replace("tools/app", "Tools/App")
    with pytest.raises(PolicyErrors) as info:
        parse_policy(text, path="p.yaml", env={})
    (e,) = info.value.errors
    assert e.line == 11 and "lowercase" in str(e)


def test_a_layout_target_survives_the_lock() -> None:
    from imagevet.lock import Lock, LockEntry, parse_lock, render_lock

    entry = _parse("target:\n  layout: mirror\n  namespace: acme\n").entries[0]
    text = render_lock(Lock((LockEntry(entry.source, entry.target),)))
    assert 'target: "oci:conf/mirror/acme/redis"' in text
    (back,) = parse_lock(text).entries
    assert back.key == entry.key
