"""Variable substitution as Dockerfiles and Compose do it, and offsets -> line and column."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from imagevet.check.text import LineIndex, expand_variables

VARS: dict[str, str | None] = {"A": "alpine", "E": "", "U": None}


@pytest.mark.parametrize(
    ("text", "value", "missing"),
    [
        ("$A:3", "alpine:3", ()),
        ("${A}:3", "alpine:3", ()),
        ("${U:-debian}", "debian", ()),
        ("${E:-debian}", "debian", ()),
        ("${E-debian}", "", ()),
        ("${A:+x}", "x", ()),
        ("${E:+x}", "", ()),
        ("${U:+x}", "", ("U",)),
        ("${U}", "", ("U",)),
        ("$NOPE/x", "/x", ("NOPE",)),
        ("${U:?set it}", "", ("U",)),
        ("${A#al}", "", ("${A#al}",)),
        ("${U:-${A}}", "alpine", ()),
        ("\\$A", "$A", ()),
        ("price$", "price$", ()),
        ("${A", "${A", ("${A",)),
    ],
)
def test_expand(text: str, value: str, missing: tuple[str, ...]) -> None:
    got = expand_variables(text, VARS)
    assert (got.value, got.missing) == (value, missing)


def test_compose_dollar_escape() -> None:
    assert expand_variables("$$A-${A}", VARS, escape="$").value == "$A-alpine"


@given(st.text(st.sampled_from("ab\n\r"), max_size=40), st.data())
def test_line_index(text: str, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(text)))
    assume(not (text[offset - 1 : offset] == "\r" and text[offset : offset + 1] == "\n"))
    line, column = LineIndex("f", text).position(offset)
    before = text[:offset].replace("\r\n", "\n").replace("\r", "\n")
    assert line == before.count("\n") + 1
    assert column == len(before) - (before.rfind("\n") + 1) + 1
