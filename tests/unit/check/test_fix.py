"""--fix: edits at exact offsets, everything else byte for byte, and the result checks clean."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from imagevet.check import (
    CheckContext,
    Edit,
    ReplaceSpan,
    Span,
    apply_edits,
    check_paths,
    check_scan,
    find_images,
    plan_fixes,
    scan_paths,
    write_fixes,
)
from imagevet.check.model import FindingKind


def assert_only_spans_changed(original: str, fixed: str, edits: list[Edit]) -> None:
    """``fixed`` is ``original`` with each edit's span replaced, and nothing else changed."""
    pos_o = pos_f = 0
    for e in sorted(edits, key=lambda e: e.span.start):
        keep = original[pos_o : e.span.start]
        assert fixed[pos_f : pos_f + len(keep)] == keep
        pos_f += len(keep)
        assert fixed[pos_f : pos_f + len(e.new)] == e.new
        pos_f += len(e.new)
        pos_o = e.span.end
    assert fixed[pos_f:] == original[pos_o:]


def _fix(root: Path, context: CheckContext) -> tuple[dict[str, bytes], list[Edit]]:
    report = check_paths([root], context, root=root)
    before = {f.path: f.file.read_bytes() for f in report.files}
    plan = plan_fixes(report.issues(), {f.path: (f.file, f.text) for f in report.files})
    write_fixes(plan)
    return before, plan.edits


def test_fixture_repository_fixed_then_rechecked(repo_copy: Path, context: CheckContext) -> None:
    report = check_paths([repo_copy], context, root=repo_copy)
    fixable = {(v.found.path, v.found.location.line) for v in report.verdicts if v.fixable}
    left_alone = {
        (v.found.path, v.found.location.line, v.rule.id)
        for v in report.issues()
        if not v.fixable and v.rule is not None
    }
    before, edits = _fix(repo_copy, context)
    assert len(edits) == 14  # 12 fixable verdicts; the two Helm maps take 2 edits each (no-op edits dropped)

    # every edited file is byte for byte the original outside the edited spans
    for path, data in before.items():
        mine = [e for e in edits if e.path == path]
        assert_only_spans_changed(data.decode(), (repo_copy / path).read_text(), mine)

    after = check_paths([repo_copy], context, root=repo_copy)
    # it re-parses: the only parse error is the file that was broken to begin with
    assert [v.found.path for v in after.verdicts if v.found.kind is FindingKind.PARSE_ERROR] == [
        "broken/docker-compose.yml"
    ]
    assert not [v for v in after.verdicts if v.fixable]
    assert {
        (v.found.path, v.found.location.line, v.rule.id) for v in after.issues() if v.rule is not None
    } == left_alone
    for path, line in fixable - {("Dockerfile", 28)}:  # the ARG-fixed FROM stays on its line
        (v,) = [v for v in after.verdicts if (v.found.path, v.found.location.line) == (path, line)]
        assert v.ok, v.message
    (arg_from,) = [v for v in after.verdicts if (v.found.path, v.found.location.line) == ("Dockerfile", 28)]
    assert arg_from.ok and arg_from.found.detail == "from ARG REDIS_IMAGE"


ODD = (
    "# comments stay\r\n"
    "x-base: &base\r\n"
    "   image:    'bitnami/redis:7.2'   # single quotes, odd spacing\r\n"
    "services:\r\n"
    "      cache: { <<: *base, restart: always }\r\n"
    "      db:\r\n"
    '          image: "bitnami/postgresql:16.3.0"   # a\ttab in a comment\r\n'
    "      tools:\r\n"
    "          image: bitnami/kubectl:1.30 \r\n"
    "      keep:\r\n"
    "          image: bitnami/unvetted:1  # not fixable: no mirror"
)
ODD_FIXED = (
    "# comments stay\r\n"
    "x-base: &base\r\n"
    "   image:    'docker.io/acme/redis:7.2@sha256:09760665f0af12dc6887689c1fa1afe346138a545ce1efbe277acf07bc92780a'"
    "   # single quotes, odd spacing\r\n"
    "services:\r\n"
    "      cache: { <<: *base, restart: always }\r\n"
    "      db:\r\n"
    '          image: "docker.io/acme/postgresql:16.3.0@sha256:1ebe074733631585eb607c14cf55590ed336a8e769b08c3036a430b2bd0f9430"'
    "   # a\ttab in a comment\r\n"
    "      tools:\r\n"
    "          image: docker.io/acme/kubectl:1.30@sha256:713233f60734699f7029da820e3943123b8d11f6736a94519b4e6c7f65884cba \r\n"
    "      keep:\r\n"
    "          image: bitnami/unvetted:1  # not fixable: no mirror"
)


def test_comments_quotes_indentation_and_crlf_preserved(tmp_path: Path, context: CheckContext) -> None:
    (tmp_path / "compose.yaml").write_bytes(ODD.encode())
    _fix(tmp_path, context)
    assert (tmp_path / "compose.yaml").read_bytes() == ODD_FIXED.encode()


def test_dockerfile_keeps_platform_alias_and_case(tmp_path: Path, context: CheckContext) -> None:
    (tmp_path / "Dockerfile").write_text(
        "# escape=`\n"
        'ARG IMG="bitnami/redis:7.4"\n'
        "from --platform=$TARGETPLATFORM bitnami/redis:7.2 as Cache\n"
        "FROM ${IMG} AS a\n"
        "FROM $IMG AS b\n"
        "COPY --from=bitnami/kubectl:1.30 `\n"
        "     /k /k\n"
    )
    before, edits = _fix(tmp_path, context)
    assert [(e.line, e.via) for e in edits] == [(2, "ARG IMG"), (3, ""), (6, "")]
    assert (tmp_path / "Dockerfile").read_text() == (
        "# escape=`\n"
        'ARG IMG="docker.io/acme/redis:7.4@sha256:c6c54bbcd898faaca4f0ae1abf4d1de0f5463c4035e66b7659dd706555459348"\n'
        "from --platform=$TARGETPLATFORM docker.io/acme/redis:7.2@sha256:09760665f0af12dc6887689c1fa1afe346138a545ce1efbe277acf07bc92780a as Cache\n"
        "FROM ${IMG} AS a\n"
        "FROM $IMG AS b\n"
        "COPY --from=docker.io/acme/kubectl:1.30@sha256:713233f60734699f7029da820e3943123b8d11f6736a94519b4e6c7f65884cba `\n"
        "     /k /k\n"
    )
    report = check_paths([tmp_path], context, root=tmp_path)
    assert all(v.ok for v in report.verdicts)


def test_helm_map_with_and_without_digest_key(tmp_path: Path, context: CheckContext) -> None:
    (tmp_path / "values.yaml").write_text(
        "image:\n  registry: docker.io\n  repository: bitnami/redis  # upstream\n  tag: '7.2'\n  digest: ''\n"
        "tools:\n  image:\n    repository: bitnami/kubectl\n    tag: \"1.30\"\n"
    )
    _fix(tmp_path, context)
    assert (tmp_path / "values.yaml").read_text() == (
        "image:\n  registry: docker.io\n  repository: acme/redis  # upstream\n  tag: '7.2'\n"
        "  digest: 'sha256:09760665f0af12dc6887689c1fa1afe346138a545ce1efbe277acf07bc92780a'\n"
        "tools:\n  image:\n    repository: acme/kubectl\n"
        '    tag: "1.30@sha256:713233f60734699f7029da820e3943123b8d11f6736a94519b4e6c7f65884cba"\n'
    )
    assert all(v.ok for v in check_paths([tmp_path], context, root=tmp_path).verdicts)


def test_not_auto_fixable_verdicts_are_reported_as_skipped(tmp_path: Path, context: CheckContext) -> None:
    (tmp_path / "Dockerfile").write_text("ARG T=7.2\nFROM bitnami/redis:${T}\n")
    report = check_paths([tmp_path], context, root=tmp_path)
    plan = plan_fixes(report.issues(), {f.path: (f.file, f.text) for f in report.files})
    assert plan.files == ()
    ((v, why),) = plan.skipped
    assert v.rule is not None and v.rule.id == "IV001" and "ARG" in why


def test_conflicting_edits_are_both_skipped(tmp_path: Path, context: CheckContext) -> None:
    (tmp_path / "Dockerfile").write_text("FROM bitnami/redis:7.2\nFROM bitnami/kubectl:1.30\n")
    scan = scan_paths([tmp_path], root=tmp_path)
    report = check_scan(scan, context)
    a, b = report.verdicts
    assert isinstance(a.found.fix, ReplaceSpan)
    overlapping = replace(b, found=replace(b.found, fix=ReplaceSpan(Span(a.found.fix.span.start + 5, a.found.fix.span.end))))
    plan = plan_fixes([a, overlapping], {f.path: (f.file, f.text) for f in report.files})
    assert plan.files == ()
    assert [why for _, why in plan.skipped] == ["conflicts with another fix of the same text"] * 2


def test_dry_run_diff(tmp_path: Path, context: CheckContext) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: bitnami/redis:7.2\n")
    report = check_paths([tmp_path], context, root=tmp_path)
    plan = plan_fixes(report.issues(), {f.path: (f.file, f.text) for f in report.files})
    assert plan.files[0].diff() == (
        "--- a/compose.yaml\n+++ b/compose.yaml\n@@ -1,3 +1,3 @@\n services:\n   a:\n"
        "-    image: bitnami/redis:7.2\n"
        "+    image: docker.io/acme/redis:7.2@sha256:09760665f0af12dc6887689c1fa1afe346138a545ce1efbe277acf07bc92780a\n"
    )
    assert (tmp_path / "compose.yaml").read_text() == "services:\n  a:\n    image: bitnami/redis:7.2\n"


@st.composite
def _text_and_edits(draw: st.DrawFn) -> tuple[str, list[Edit]]:
    text = draw(st.text(min_size=1, max_size=200))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=8))))
    edits = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=False):
        new = draw(st.text(max_size=10))
        edits.append(Edit("f", Span(start, end), text[start:end], new, 1, 1, "IV001"))
    return text, edits


@given(_text_and_edits())
def test_apply_edits_changes_only_the_spans(case: tuple[str, list[Edit]]) -> None:
    text, edits = case
    assert_only_spans_changed(text, apply_edits(text, edits), edits)


_ALPHABET = st.sampled_from(list("FROMARGCOPYimage:{}[]$\\`'\"#-&*<>=@/.\n\t abcxyz0123456789"))


@given(st.text(_ALPHABET, max_size=300))
def test_finders_never_raise(text: str) -> None:
    from imagevet.check import SourceKind

    for kind in SourceKind:
        for f in find_images(text, "x", kind, app_version="1"):
            assert 0 <= f.location.span.start <= f.location.span.end <= len(text)
