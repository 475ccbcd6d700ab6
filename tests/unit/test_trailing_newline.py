"""A value with a trailing newline is not the value: every anchored check refuses it.

Python's ``$`` matches before a final ``\\n``, so ``re.match(r"^v1$", "v1\\n")`` succeeds; a tag,
digest or reference that slipped through that way would name a different object than the one
printed, or break the lock it is written to.
"""

from __future__ import annotations

import pytest

from imagevet.digest import Digest, is_digest_tag
from imagevet.errors import ImagevetError
from imagevet.reference import Reference

HEX = "a" * 64


@pytest.mark.parametrize(
    "text",
    [
        "busybox:1.36\n",
        "example.com/team/app\n",
        "example.com\n/app:1",
        f"busybox@sha256:{HEX}\n",
        f"{HEX}\n",
    ],
)
def test_reference_refuses_a_trailing_newline(text: str) -> None:
    with pytest.raises(ImagevetError):
        Reference.parse(text)


def test_with_tag_refuses_a_trailing_newline() -> None:
    with pytest.raises(ImagevetError):
        Reference.parse("busybox").with_tag("1.36\n")


def test_digest_refuses_a_trailing_newline() -> None:
    with pytest.raises(ImagevetError):
        Digest.parse(f"sha256:{HEX}\n")


def test_a_digest_tag_with_a_newline_is_an_ordinary_tag() -> None:
    assert is_digest_tag(f"sha256-{HEX}.sig")
    assert not is_digest_tag(f"sha256-{HEX}.sig\n")
