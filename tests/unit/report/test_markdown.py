"""Markdown: the catalog as a pull-request comment, exact text, escaping and its size bound."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from imagevet.report import build_report, render_markdown
from imagevet.report.markdown import code, md
from tests.unit.report.conftest import HOSTILE_POLICY, NOW, Setup, make_setup

EXPECTED = """\
## imagevet catalog

2 vetted images from `imagevet.yaml`, mirrored to `registry.example.com/acme`. Last sync 2026-11-30 09:00 UTC: **failed** (failed 1, hold 1, noop 3). Generated 2026-11-30 12:00 UTC.

| image | pull | mode | approval | last sync | status |
| --- | --- | --- | --- | --- | --- |
| redis | `registry.example.com/acme/redis:7.10.0-rc1` (+3) | pinned | approved by alice@example.com (SEC-101) on 2026-05-01, **expires 2026-12-10** (in 10 days) | held (2026-11-30 09:00 UTC) | **approval expiring**, 1 held |
| mailhog | `registry.example.com/acme/mailhog:v1.0.1` | follow | approved by bob@example.com, **expired 2026-11-01** | failed (2026-11-30 09:00 UTC) | **approval expired**, **last sync failed** |

### redis

Vetted mirror of docker.io/bitnami/redis

- upstream `docker.io/bitnami/redis` → mirror `registry.example.com/acme/redis`, mode pinned
- every platform; signatures, SBOMs and attestations copied
- approved by alice@example.com (SEC-101) on 2026-05-01, **expires 2026-12-10** (in 10 days): cache for the web tier
- last sync: held (2026-11-30 09:00 UTC)

**Held updates** (waiting for approval):

- `7.4.0` → `sha256:3ab8aa288aab1967f01fea8cd94fc2f0a2b65941049a032fcd6c79ab31c85199` since 2026-11-29: upstream moved the tag (pinned)

| tag | digest | platforms | referrers | locked |
| --- | --- | --- | --- | --- |
| `7.10.0-rc1` | `sha256:8e93ed0289793722745e52135d598b25a33ead67af890b666622838594ae7ad9` | — | 0 | 2026-11-01 |
| `7.4.1` | `sha256:e9c509cebe68421e9ade9089af122acae73c0de87494408aa02b9b6b8a8e12a3` | linux/amd64, linux/arm64 | 1 | 2026-11-01 |
| `7.4.0` | `sha256:7ef54b7971bbddde66d104efd19f9ba0914c9e1a4d770540450eaf97e73eb953` | linux/amd64 | 0 | 2026-11-01 |
| `latest` | `sha256:e9c509cebe68421e9ade9089af122acae73c0de87494408aa02b9b6b8a8e12a3` | linux/amd64, linux/arm64 | 1 | 2026-11-01 |

```sh
docker pull registry.example.com/acme/redis:7.10.0-rc1
docker pull registry.example.com/acme/redis@sha256:8e93ed0289793722745e52135d598b25a33ead67af890b666622838594ae7ad9
docker pull registry.example.com/acme/redis:7.4.1
docker pull registry.example.com/acme/redis@sha256:e9c509cebe68421e9ade9089af122acae73c0de87494408aa02b9b6b8a8e12a3
docker pull registry.example.com/acme/redis:7.4.0
docker pull registry.example.com/acme/redis@sha256:7ef54b7971bbddde66d104efd19f9ba0914c9e1a4d770540450eaf97e73eb953
docker pull registry.example.com/acme/redis:latest
docker pull registry.example.com/acme/redis@sha256:e9c509cebe68421e9ade9089af122acae73c0de87494408aa02b9b6b8a8e12a3
```

### mailhog

Vetted mirror of docker.io/mailhog/mailhog

- upstream `docker.io/mailhog/mailhog` → mirror `registry.example.com/acme/mailhog`, mode follow
- linux/amd64; signatures, SBOMs and attestations copied
- approved by bob@example.com, **expired 2026-11-01**
- last sync: failed (2026-11-30 09:00 UTC)
  - v1.0.1: cannot connect to registry.example.com

| tag | digest | platforms | referrers | locked |
| --- | --- | --- | --- | --- |
| `v1.0.1` | `sha256:35c3d00f0a7a0073340fab98069d29a54723994a6bffe1c45bc6aeed28e176e4`<br>mirror digest not known yet | linux/amd64, linux/arm64 | 0 | 2026-11-01 |

```sh
docker pull registry.example.com/acme/mailhog:v1.0.1
```
"""


def test_exact_text_of_a_small_policy_lock_and_state(setup: Setup) -> None:
    report = build_report(setup.policy, setup.lock, setup.state, now=NOW)
    assert render_markdown(report) == EXPECTED


def test_hostile_values_are_escaped_and_bounded(tmp_path: Path) -> None:
    s = make_setup(tmp_path, HOSTILE_POLICY)
    text = render_markdown(build_report(s.policy, s.lock, s.state, now=NOW))
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\| \\`x\\` ../../etc/passwd \\\\x1b\\[31mred next" in text
    assert "\\[click\\](https://evil.example)" in text  # no link
    assert "\\\\u202egnp" in text and "\u202e" not in text and "\x1b" not in text
    assert "(SEC\\|1\\`&lt;b&gt;)" in text
    assert len(text) < 5000  # the megabyte reason is cut to 300 characters
    # every table row keeps its six cells: no value adds a column or a line
    rows = [line for line in text.splitlines() if line.startswith("| ") and "registry.example.com/acme/redis:" in line]
    assert len(rows) == 1 and len(re.findall(r"(?<!\\)\|", rows[0])) == 7


def test_md_and_code_escape_what_markdown_and_html_would_read() -> None:
    assert md("a|b`c<d>e&f*g_h[i]j~k\\l\nm\rn") == "a\\|b\\`c&lt;d&gt;e&amp;f\\*g\\_h\\[i\\]j\\~k\\\\l m n"
    assert md("\x1b[0m\u200b") == "\\\\x1b\\[0m\\\\u200b"
    assert code("docker.io/acme/redis:7.4") == "`docker.io/acme/redis:7.4`"
    assert code("a`b") == "a\\`b" and code("a|b") == "a\\|b" and code("") == ""
    assert md("x" * 500).endswith("…") and len(md("x" * 500)) == 300


def test_a_huge_catalog_is_cut_to_a_github_comment_with_a_note(tmp_path: Path) -> None:
    entries = "".join(
        f"  - source: docker.io/org{i}/image{i}\n    tags:\n      tags: ['1.0']\n" for i in range(400))
    policy = ("version: 1\ntarget:\n  registry: registry.example.com\n  namespace: acme\n"
              "  naming: '{namespace}-{name}'\n"
              "defaults:\n  approval:\n    approved_by: a@example.com\nimages:\n" + entries)
    s = make_setup(tmp_path, policy)
    report = build_report(s.policy, s.lock, s.state, now=NOW)
    text = render_markdown(report)
    assert len(text.encode()) <= 65536 < len(render_markdown(report, limit=10**7).encode())
    assert text.endswith("images shown in full; `imagevet report --html` has the whole catalog.*\n")
    assert "| org0/image0 |" in text  # the table comes first
    small = render_markdown(report, limit=5000)
    assert len(small.encode()) <= 5000 and "Truncated" in small
    assert render_markdown(replace(report, images=report.images[:1])).count("Truncated") == 0
