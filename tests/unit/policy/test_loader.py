"""load_policy / parse_policy: valid policies, merged defaults, and a table of malformed ones."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from imagevet.errors import PolicyError
from imagevet.manifest import Platform
from imagevet.policy import Mode, PolicyErrors, load_policy, parse_policy
from imagevet.reference import Reference
from imagevet.repository_spec import RepoSpec, TeamPermission

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "imagevet.yaml"


def _parse(text: str, env: dict[str, str] | None = None, today: date | None = None):  # type: ignore[no-untyped-def]
    return parse_policy(textwrap.dedent(text), path="p.yaml", env=env or {}, today=today)


def _errors(
    text: str, env: dict[str, str] | None = None, today: date | None = None
) -> list[PolicyError]:
    with pytest.raises(PolicyErrors) as info:
        _parse(text, env, today)
    return list(info.value.errors)


# ---- valid policies --------------------------------------------------------------------------


def test_example_policy_loads() -> None:
    policy = load_policy(EXAMPLE, env={})
    assert [e.name for e in policy.entries] == [
        "bitnami/redis",
        "gotenberg/gotenberg",
        "mailhog/mailhog",
    ]
    redis, gotenberg, mailhog = policy.entries
    assert redis.source == Reference.parse("bitnami/redis")
    assert redis.target == Reference.parse("docker.io/acme/redis")
    assert redis.mode is Mode.PINNED and gotenberg.mode is Mode.FOLLOW
    assert redis.tags.keep == 2 and redis.tags.tags == ("7.4",)
    assert gotenberg.platforms == (Platform("linux", "amd64"), Platform("linux", "arm64"))
    assert redis.platforms is None and redis.referrers is True
    assert (
        redis.approval.ticket == "SEC-101" and redis.approval.approved_by == "security@acme.example"
    )
    assert mailhog.approval.expires == date(2026, 12, 31)  # the entry's key wins over the default
    assert redis.approval.expires == date(2027, 6, 30)
    assert redis.location is not None and (redis.location.line, redis.location.column) == (24, 5)


def test_example_policy_env_overrides_target() -> None:
    policy = load_policy(
        EXAMPLE,
        env={
            "IMAGEVET_TARGET_REGISTRY": "registry.example.com:5000",
            "IMAGEVET_ORG": "mirrors/hub",
        },
    )
    assert policy.entries[0].target == Reference.parse(
        "registry.example.com:5000/mirrors/hub/redis"
    )
    assert policy.entries[0].repo_spec().namespace == "mirrors/hub"


def test_repo_spec_and_teams_merge() -> None:
    policy = _parse(
        """\
        version: 1
        target: {namespace: acme}
        defaults:
          approval: {approved_by: alice}
          teams: {developers: read, platform: admin}
        images:
          - source: bitnami/redis
            private: false
            teams: {developers: none, sre: write}
            tags: {tags: [latest]}
        """
    )
    (entry,) = policy.entries
    assert entry.repo_spec() == RepoSpec(
        namespace="acme",
        name="redis",
        private=False,
        description="Vetted mirror of docker.io/bitnami/redis",
        teams={"platform": TeamPermission.ADMIN, "sre": TeamPermission.WRITE},
    )


def test_tag_rules_merge_per_key_and_naming_template() -> None:
    policy = _parse(
        """\
        version: 1
        target: {registry: ghcr.io, namespace: acme/mirror, naming: "{namespace}-{name}"}
        defaults:
          approval: {approved_by: alice}
          tags: {deny: ['.*-debug'], keep: 3}
        images:
          - source: bitnami/redis
            tags: {allow: ['7\\..*'], keep: 1}
          - source: nginx
            description: "nginx from {source}"
            tags: {range: ">=1.26"}
        """
    )
    redis, nginx = policy.entries
    assert redis.target == Reference.parse("ghcr.io/acme/mirror/bitnami-redis")
    assert nginx.target == Reference.parse("ghcr.io/acme/mirror/library-nginx")
    assert [p.pattern for p in redis.tags.deny] == [".*-debug"] and redis.tags.keep == 1
    assert nginx.tags.keep == 3 and str(nginx.tags.range) == ">=1.26"
    assert nginx.description == "nginx from docker.io/library/nginx"


def test_env_expansion() -> None:
    policy = _parse(
        """\
        version: 1
        target: {registry: "${REG}", namespace: "${ORG:-acme}"}
        defaults: {approval: {approved_by: "${WHO:-nobody} $$5"}}
        images:
          - source: "${SRC_HOST:-docker.io}/bitnami/redis"
            tags: {tags: [latest]}
        """,
        env={"REG": "registry.example.com", "WHO": ""},
    )
    (entry,) = policy.entries
    assert entry.target == Reference.parse("registry.example.com/acme/redis")
    assert entry.approval.approved_by == "nobody $5"


def test_anchors_merge_keys_and_x_keys() -> None:
    policy = _parse(
        """\
        version: 1
        x-common: &common
          mode: follow
          approval: {approved_by: alice}
          tags: {tags: [latest]}
        target: {namespace: acme}
        images:
          - <<: *common
            source: bitnami/redis
          - <<: *common
            source: bitnami/postgresql
            mode: pinned
        """
    )
    assert [e.mode for e in policy.entries] == [Mode.FOLLOW, Mode.PINNED]


def test_platforms_all_and_explicit_digests() -> None:
    digest = "sha256:" + "a" * 64
    policy = _parse(
        f"""\
        version: 1
        target: {{namespace: acme}}
        defaults: {{approval: {{approved_by: a}}, platforms: [linux/amd64]}}
        images:
          - source: bitnami/redis
            platforms: all
            tags: {{digests: ["{digest}"]}}
        """
    )
    (entry,) = policy.entries
    assert entry.platforms is None and str(entry.tags.digests[0]) == digest


def test_expired_approval_is_not_a_load_error() -> None:
    policy = _parse(
        """\
        version: 1
        target: {namespace: acme}
        images:
          - source: bitnami/redis
            approval: {approved_by: a, expires: 2001-01-01}
            tags: {tags: [latest]}
        """
    )
    assert policy.entries[0].approval.expires == date(2001, 1, 1)


def test_missing_file() -> None:
    with pytest.raises(PolicyErrors) as info:
        load_policy(Path("/nonexistent/imagevet.yaml"), env={})
    assert "cannot read" in str(info.value)
    assert isinstance(info.value, PolicyError)


# ---- malformed policies: exact line, column and field ------------------------------------------

GOOD_HEAD = """\
version: 1
target:
  namespace: acme
defaults:
  approval:
    approved_by: alice
images:
"""  # images start on line 8


MALFORMED: list[tuple[str, str, list[tuple[int, int, str | None, str]]]] = [
    (
        "yaml-syntax-flow",
        "version: 1\ntarget: [acme\n",
        [(3, 1, None, "YAML syntax error: expected ',' or ']'")],
    ),
    (
        "yaml-syntax-tab",
        "version: 1\ntarget:\n\tnamespace: acme\n",
        [(3, 1, None, "YAML syntax error: found character '\\t' that cannot start any token")],
    ),
    (
        "yaml-duplicate-key",
        GOOD_HEAD + "  - source: bitnami/redis\n    tags: {tags: [a]}\n    tags: {tags: [b]}\n",
        [(10, 5, "images[0].tags", "duplicate key 'tags' (first at line 9:5)")],
    ),
    ("empty-file", "", [(1, 1, None, "the file is empty")]),
    ("not-a-mapping", "- a\n- b\n", [(1, 1, None, "expected a mapping with version, target")]),
    (
        "wrong-types",
        "version: 2\ntarget: acme\nimages: {}\n",
        [
            (1, 10, "version", "expected one of 1, got the number 2"),
            (2, 9, "target", "expected a mapping of key: value, got the string acme"),
            (3, 9, "images", "expected a list, got a mapping"),
        ],
    ),
    (
        "missing-keys",
        "version: 1\nimages:\n  - tags: {tags: [a]}\n",
        [
            (1, 1, "target", "required key is missing"),
            (3, 5, "images[0].source", "required key is missing"),
        ],
    ),
    (
        "unknown-keys-with-suggestion",
        GOOD_HEAD + "  - source: bitnami/redis\n    tagz: {allow: ['.*']}\n    platfroms: all\n",
        [
            (
                9,
                5,
                "images[0].tagz",
                "unknown key 'tagz' (did you mean 'tags'?); allowed keys: approval, backup_tag",
            ),
            (10, 5, "images[0].platfroms", "unknown key 'platfroms' (did you mean 'platforms'?)"),
        ],
    ),
    (
        "unknown-top-level-key",
        "version: 1\ntarget: {namespace: acme}\nimage: []\nimages: []\n",
        [
            (
                3,
                1,
                "image",
                "unknown key 'image' (did you mean 'images'?); allowed keys: audit, defaults, images, notify, sign, target, version",
            )
        ],
    ),
    (
        "unknown-nested-key",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    tags:\n      allow: ['.*']\n      exclude: ['x']\n",
        [
            (
                11,
                7,
                "images[0].tags.exclude",
                "unknown key 'exclude'; allowed keys: allow, deny, digests, keep, prereleases, range, tags",
            )
        ],
    ),
    (
        "bad-regex",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    tags:\n      allow: ['7\\.\\d+', '7\\.(\\d+']\n",
        [
            (
                10,
                25,
                "images[0].tags.allow[1]",
                "invalid regular expression '7\\.(\\d+': missing ), unterminated subpattern at position 3",
            )
        ],
    ),
    (
        "bad-range",
        GOOD_HEAD + '  - source: bitnami/redis\n    tags:\n      range: ">=1.2 <<2"\n',
        [(10, 14, "images[0].tags.range", "invalid range '>=1.2 <<2': cannot read '<<2'")],
    ),
    (
        "bad-range-wildcard",
        GOOD_HEAD + "  - source: bitnami/redis\n    tags: {range: '1.x.3'}\n",
        [(9, 19, "images[0].tags.range", "'1.x.3': a wildcard must end the version")],
    ),
    (
        "tag-as-number",
        GOOD_HEAD + "  - source: bitnami/redis\n    tags:\n      tags: [1.10, latest]\n",
        [
            (
                10,
                14,
                "images[0].tags.tags[0]",
                'expected a string, got the number 1.10 (quote it: "1.10")',
            )
        ],
    ),
    (
        "keep-zero-and-string",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    tags: {allow: ['.*'], keep: 0, prereleases: yes}\n",
        [
            (9, 33, "images[0].tags.keep", "must be at least 1, got the number 0"),
            (
                9,
                49,
                "images[0].tags.prereleases",
                "expected true or false, got the string yes (YAML 1.2 reads it as a string)",
            ),
        ],
    ),
    (
        "bad-platform",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    platforms: [linux/amd64, linux, Linux/ARM64]\n    tags: {tags: [a]}\n",
        [
            (
                9,
                30,
                "images[0].platforms[1]",
                "invalid platform 'linux': expected os/architecture[/variant]",
            ),
            (
                9,
                37,
                "images[0].platforms[2]",
                "invalid platform 'Linux/ARM64': lowercase os/architecture[/variant]",
            ),
        ],
    ),
    (
        "platforms-string",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    platforms: linux/amd64\n    tags: {tags: [a]}\n",
        [
            (
                9,
                16,
                "images[0].platforms",
                "expected all or a list of os/arch[/variant], got the string 'linux/amd64'",
            )
        ],
    ),
    (
        "bad-reference",
        GOOD_HEAD
        + "  - source: Bitnami/Redis\n    tags: {tags: [a]}\n  - source: bitnami/redis:7.2\n    tags: {tags: [a]}\n",
        [
            (
                8,
                13,
                "images[0].source",
                "invalid reference 'Bitnami/Redis': repository name must be lowercase",
            ),
            (
                10,
                13,
                "images[1].source",
                "'bitnami/redis:7.2': give the repository only; choose tags under tags:",
            ),
        ],
    ),
    (
        "mode-typo",
        GOOD_HEAD + "  - source: bitnami/redis\n    mode: folow\n    tags: {tags: [a]}\n",
        [
            (
                9,
                11,
                "images[0].mode",
                "expected one of pinned, follow, got the string folow (did you mean 'follow'?)",
            )
        ],
    ),
    (
        "invalid-date",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    approval: {expires: 2026-02-30}\n    tags: {tags: [a]}\n",
        [
            (
                9,
                25,
                "images[0].approval.expires",
                "invalid date '2026-02-30': day is out of range for month",
            )
        ],
    ),
    (
        "date-not-a-date",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    approval: {expires: next year}\n    tags: {tags: [a]}\n",
        [(9, 25, "images[0].approval.expires", "expected a date YYYY-MM-DD, got 'next year'")],
    ),
    (
        "expires-before-approved",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    approval:\n      approved_on: 2026-05-01\n      expires: 2026-04-01\n    tags: {tags: [a]}\n",
        [
            (
                11,
                16,
                "images[0].approval.expires",
                "expires (2026-04-01) is before approved_on (2026-05-01)",
            )
        ],
    ),
    (
        "duplicate-targets",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    tags: {tags: [a]}\n  - source: redis\n    tags: {tags: [a]}\n",
        [
            (
                10,
                13,
                "images[1].source",
                "duplicate target docker.io/acme/redis: images[1] (redis) and images[0] (bitnami/redis, line 8:13) "
                "mirror into the same repository",
            )
        ],
    ),
    (
        "duplicate-explicit-target",
        GOOD_HEAD + "  - source: bitnami/redis\n    target: cache\n    tags: {tags: [a]}\n"
        "  - source: redis\n    target: cache\n    tags: {tags: [a]}\n",
        [
            (
                11,
                13,
                "images[1].source",
                "duplicate target docker.io/acme/cache: images[1] (redis) and images[0]",
            )
        ],
    ),
    (
        "duplicate-names",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    tags: {tags: [a]}\n  - source: bitnami/redis\n    target: redis2\n    tags: {tags: [a]}\n",
        [(10, 5, "images[1]", "duplicate entry name 'bitnami/redis' (also images[0], line 8:5)")],
    ),
    (
        "hub-name-with-slash",
        "version: 1\ntarget:\n  namespace: acme\n  naming: '{path}'\ndefaults: {approval: {approved_by: a}}\n"
        "images:\n  - source: bitnami/redis\n    tags: {tags: [a]}\n",
        [
            (
                4,
                11,
                "target.naming",
                "'bitnami/redis' (for images[0], source bitnami/redis): a Docker Hub repository name has no '/'",
            )
        ],
    ),
    (
        "hub-namespace-library",
        "version: 1\ntarget:\n  namespace: library\nimages: []\n",
        [(3, 14, "target.namespace", "a Docker Hub namespace is one organization or user name")],
    ),
    (
        "template-unknown-field",
        "version: 1\ntarget:\n  namespace: acme\n  naming: '{org}-{name}'\nimages: []\n",
        [
            (
                4,
                11,
                "target.naming",
                "unknown field {org} in '{org}-{name}'; allowed: {name}, {namespace}, {path}",
            )
        ],
    ),
    (
        "backup-template-without-digest",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    backup_tag: '{tag}-old'\n    tags: {tags: [a]}\n",
        [(9, 17, "images[0].backup_tag", "must contain {digest12}, {digest} or {date}")],
    ),
    (
        "selects-nothing",
        GOOD_HEAD
        + "  - source: bitnami/redis\n    tags: {keep: 3}\n  - source: bitnami/postgresql\n",
        [
            (
                9,
                11,
                "images[0].tags",
                "selects no tags: give at least one of tags.allow, tags.range, tags.tags or tags.digests",
            ),
            (10, 5, "images[1]", "selects no tags"),
        ],
    ),
    (
        "approval-missing",
        "version: 1\ntarget: {namespace: acme}\nimages:\n  - source: bitnami/redis\n    tags: {tags: [a]}\n",
        [(4, 5, "images[0]", "approval.approved_by is required (here or in defaults.approval)")],
    ),
    (
        "secret-key",
        GOOD_HEAD + "  - source: bitnami/redis\n    tags: {tags: [a]}\n    password: hunter2\n",
        [
            (
                10,
                5,
                "images[0].password",
                "key 'password' looks like a secret; secrets never live in the policy file",
            )
        ],
    ),
    (
        "secret-value",
        "version: 1\ntarget: {namespace: acme}\nimages: []\nx-note: dckr_pat_abcdefghijklmnop\n",
        [
            (
                4,
                9,
                "x-note",
                "this value looks like a Docker Hub access token; secrets never live in the policy file",
            )
        ],
    ),
    (
        "env-unset",
        "version: 1\ntarget:\n  registry: ${REGISTRY}\n  namespace: acme\nimages: []\n",
        [
            (
                3,
                13,
                "target.registry",
                "environment variable REGISTRY is not set (or write ${REGISTRY:-default})",
            )
        ],
    ),
    (
        "unsupported-tag",
        "version: 1\ntarget: {namespace: !!binary YWNtZQ==}\nimages: []\n",
        [(2, 21, "target.namespace", "unsupported YAML tag 'tag:yaml.org,2002:binary'")],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [(t, e) for _, t, e in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_policy(text: str, expected: list[tuple[int, int, str | None, str]]) -> None:
    errors = _errors(text)
    got = [(e.line, e.column, e.field) for e in errors]
    assert got == [(line, column, field) for line, column, field, _ in expected], [
        str(e) for e in errors
    ]
    for error, (line, column, field, message) in zip(errors, expected, strict=True):
        assert error.path == "p.yaml"
        assert message in error.message, str(error)
        assert str(error).startswith(f"p.yaml:{line}:{column}: " + (f"{field}: " if field else ""))


def test_all_errors_are_reported_together() -> None:
    text = GOOD_HEAD + (
        "  - source: bitnami/redis\n"  # 8
        "    mode: folow\n"  # 9
        "    tags: {allow: ['(']}\n"  # 10
        "  - source: redis\n"  # 11
        "    tags: {tags: [a]}\n"  # 12
        "  - source: bitnami/redis\n"  # 13
        "    target: other\n"  # 14
        "    tags: {tags: [a]}\n"  # 15
        "  - source: redis\n"  # 16
        "    target: other\n"  # 17
        "    tags: {tags: [a]}\n"  # 18
    )
    errors = _errors(text)
    assert [(e.line, e.field) for e in errors] == [
        (9, "images[0].mode"),
        (10, "images[0].tags.allow[0]"),
        (
            16,
            "images[3]",
        ),  # duplicate name "redis" (images[1]): cross-checks run on the valid entries
        (16, "images[3].source"),  # duplicate target (images[2])
    ]
    with pytest.raises(PolicyErrors) as info:
        _parse(text)
    assert str(info.value).count("\n") == 3


def test_approved_on_in_the_future_with_today() -> None:
    text = (
        GOOD_HEAD
        + "  - source: bitnami/redis\n    approval: {approved_on: 2030-01-01}\n    tags: {tags: [a]}\n"
    )
    errors = _errors(text, today=date(2026, 1, 1))
    assert [(e.line, e.column, e.field) for e in errors] == [
        (9, 29, "images[0].approval.approved_on")
    ]
    assert "is in the future (today is 2026-01-01)" in errors[0].message
    assert _parse(text).entries[0].approval.approved_on == date(2030, 1, 1)  # no today: not checked


def test_description_too_long_for_docker_hub() -> None:
    text = (
        GOOD_HEAD
        + "  - source: bitnami/redis\n    description: '"
        + "x" * 101
        + "'\n    tags: {tags: [a]}\n"
    )
    (error,) = _errors(text)
    assert (error.line, error.column, error.field) == (9, 18, "images[0].description")
    assert "101 characters; Docker Hub allows 100" in error.message


def test_secret_values_are_not_echoed() -> None:
    token = "dckr_pat_" + "Z" * 20
    with pytest.raises(PolicyErrors) as info:
        _parse(f"version: 1\ntarget: {{namespace: acme}}\nimages: []\nx-token: {token}\n")
    assert token not in str(info.value)


def test_env_set_but_empty() -> None:
    text = "version: 1\ntarget: {namespace: acme}\ndefaults: {approval: {approved_by: 'x${EMPTY}y'}}\nimages:\n  - source: redis\n    tags: {tags: [a]}\n"
    assert _parse(text, env={"EMPTY": ""}).entries[0].approval.approved_by == "xy"
    (error,) = _errors(text)
    assert (error.line, error.column, error.field) == (3, 36, "defaults.approval.approved_by")
