"""Image references parsed and normalised as Docker's ``distribution/reference`` does.

Grammar (distribution/reference v0.6)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] remote-name
    domain     := host [ ":" port ]            host: DNS name or [IPv6]
    remote-name:= path-component ( "/" path-component )*
    path-component := [a-z0-9]+ ( ( [._] | __ | [-]+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}

Normalisation (``ParseNormalizedNamed``):

* The text is split at the first ``/``.  The first part is a registry host when it is
  ``localhost``, contains ``.`` or ``:``, or has an uppercase letter; otherwise the registry
  is ``docker.io`` and the whole text is the repository path.
* ``index.docker.io``, ``registry-1.docker.io`` and ``registry.hub.docker.com`` are ``docker.io``.
* A ``docker.io`` repository with one component gets ``library/``.
* The repository path must be lowercase and at most 255 characters (the domain not counted).
* A reference with neither tag nor digest means ``:latest`` (see :attr:`Reference.identifier`);
  with both, the digest decides what is pulled and the tag is kept for display.
* A bare 64-hex name is refused: it is an image ID, not a reference.

``str(ref)`` is the fully qualified form and ``Reference.parse(str(ref)) == ref``.
:attr:`Reference.familiar` is the short form Docker prints (``nginx:1.27``).

Schemes (skopeo's transport names): a plain name (or ``docker://name``) is a registry reference,
``scheme == "docker"``.  ``oci:PATH[:TAG|@DIGEST]`` names an image in an OCI image layout
directory and ``oci-archive:FILE[:TAG|@DIGEST]`` one in a layout packed in a tar file.  For these,
``registry`` is ``""`` and ``repository`` is the path as written, normalised with
``os.path.normpath`` (never resolved: this module touches no file).  The tag is what follows the
last ``:`` when that part has no ``/`` and is a valid tag; a digest follows the last ``@``.  A path
that would read back differently (it ends in ``:<tag>`` after normalisation) is refused.
"""

from __future__ import annotations

import os.path
import re
from dataclasses import dataclass, replace
from typing import Literal, TypeGuard

from imagevet.digest import Digest
from imagevet.errors import InvalidDigestError, InvalidReferenceError

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_ALIASES",
    "LAYOUT_SCHEMES",
    "Reference",
    "Scheme",
    "canonical_registry",
    "is_valid_tag",
]

Scheme = Literal["docker", "oci", "oci-archive"]
"""Where an image lives: a registry, an OCI layout directory, an OCI layout in a tar file."""
LAYOUT_SCHEMES: tuple[Scheme, ...] = ("oci", "oci-archive")

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
DEFAULT_TAG = "latest"
MAX_PATH_LENGTH = 255

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*\Z", re.ASCII)
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}\Z", re.ASCII)
_TAG_RE = re.compile(rf"^{_TAG}\Z", re.ASCII)
_DIGEST_RE = re.compile(rf"^{_DIGEST}\Z", re.ASCII)
_ANCHORED_ID = re.compile(r"^[a-f0-9]{64}\Z")


def is_valid_tag(tag: object) -> TypeGuard[str]:
    """Whether ``tag`` is a tag name (the distribution grammar: letters, digits, ``_``, ``.``,
    ``-``, at most 128, not starting with ``.`` or ``-``); the one check every layer uses."""
    return isinstance(tag, str) and _TAG_RE.match(tag) is not None


def canonical_registry(host: str) -> str:
    """Fold Docker Hub's aliases into ``docker.io``; other hosts are returned as written."""
    lower = host.lower()
    return DOCKER_HUB if lower in DOCKER_HUB_ALIASES or lower == DOCKER_HUB else host


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised image reference: ``registry/repository[:tag][@digest]``, or for an OCI
    layout ``oci:PATH[:tag][@digest]`` (``registry`` empty, ``repository`` the path)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None
    scheme: Scheme = "docker"

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse and normalise ``text``; raise InvalidReferenceError saying why it is invalid."""
        if not text:
            raise InvalidReferenceError(text, "empty reference")
        if text != text.strip():
            raise InvalidReferenceError(text, "leading or trailing white space")
        for scheme in LAYOUT_SCHEMES:
            if text.startswith(f"{scheme}:"):
                return cls._parse_layout(text, scheme)
        rest = text.removeprefix("docker://")
        digest: Digest | None = None
        if "@" in rest:
            rest, _, digest_text = rest.partition("@")
            if not _DIGEST_RE.match(digest_text):
                raise InvalidReferenceError(text, f"invalid digest {digest_text!r}")
            try:
                digest = Digest.parse(digest_text)
            except InvalidDigestError as e:
                raise InvalidReferenceError(text, e.reason) from None
        tag: str | None = None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG_RE.match(tag):
                raise InvalidReferenceError(
                    text, f"invalid tag {tag!r} (letters, digits, '_', '.', '-'; at most 128)"
                )
        if not rest:
            raise InvalidReferenceError(text, "missing repository name")

        first, sep, remainder = rest.partition("/")
        if sep and (first == "localhost" or "." in first or ":" in first or first != first.lower()):
            registry, path = first, remainder
            if not _DOMAIN_RE.match(registry):
                raise InvalidReferenceError(text, f"invalid registry host {registry!r}")
        else:
            registry, path = DOCKER_HUB, rest
        registry = canonical_registry(registry)
        if registry == DOCKER_HUB and "/" not in path:
            if _ANCHORED_ID.match(path):
                raise InvalidReferenceError(
                    text, "a 64-hex name is an image ID, not a repository name"
                )
            path = f"library/{path}"
        if not _PATH_RE.match(path):
            if _PATH_RE.match(path.lower()):
                raise InvalidReferenceError(text, "repository name must be lowercase")
            raise InvalidReferenceError(
                text,
                f"invalid repository name {path!r} (lowercase letters, digits and "
                "separators '.', '_', '__', '-', components joined by '/')",
            )
        if len(path) > MAX_PATH_LENGTH:
            raise InvalidReferenceError(
                text, f"repository name longer than {MAX_PATH_LENGTH} characters"
            )
        return cls(registry, path, tag, digest)

    @classmethod
    def _parse_layout(cls, text: str, scheme: Scheme) -> Reference:
        rest = text[len(scheme) + 1 :]
        if "\x00" in rest:
            raise InvalidReferenceError(text, "NUL character in a layout path")
        digest: Digest | None = None
        at = rest.rfind("@")
        if at >= 0 and _DIGEST_RE.match(rest[at + 1 :]):
            try:
                digest = Digest.parse(rest[at + 1 :])
            except InvalidDigestError as e:
                raise InvalidReferenceError(text, e.reason) from None
            rest = rest[:at]
        tag: str | None = None
        colon = rest.rfind(":")
        if colon >= 0 and "/" not in rest[colon + 1 :] and _TAG_RE.match(rest[colon + 1 :]):
            rest, tag = rest[:colon], rest[colon + 1 :]
        if not rest:
            raise InvalidReferenceError(text, f"missing layout path after {scheme}:")
        path = os.path.normpath(rest)
        tail = path[path.rfind(":") + 1 :] if ":" in path else None
        if tail is not None and "/" not in tail and _TAG_RE.match(tail):
            raise InvalidReferenceError(
                text, f"layout path {path!r} ends in ':{tail}', which would read as a tag"
            )
        if "@" in path and _DIGEST_RE.match(path[path.rfind("@") + 1 :]):
            raise InvalidReferenceError(
                text, f"layout path {path!r} ends in '@<digest>', which would read as a digest"
            )
        return cls("", path, tag, digest, scheme)

    @property
    def is_layout(self) -> bool:
        """Whether this names an image in an OCI layout (``oci:`` or ``oci-archive:``)."""
        return self.scheme != "docker"

    @property
    def name(self) -> str:
        """``registry/repository`` (``oci:PATH`` for a layout) with no tag or digest."""
        if self.scheme != "docker":
            return f"{self.scheme}:{self.repository}"
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What a manifest request asks for: the digest if any, else the tag, else ``latest``."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    @property
    def familiar(self) -> str:
        """Docker's short form: no ``docker.io/``, no ``library/`` for official images."""
        if self.registry == DOCKER_HUB and self.scheme == "docker":
            repo = self.repository
            if repo.startswith("library/") and repo.count("/") == 1:
                repo = repo[len("library/") :]
            name = repo
        else:
            name = self.name
        return name + self._suffix()

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DOCKER_HUB and self.scheme == "docker"

    def with_tag(self, tag: str | None) -> Reference:
        """Return a copy naming ``tag`` and no digest."""
        if tag is not None and not _TAG_RE.match(tag):
            raise InvalidReferenceError(f"{self.name}:{tag}", f"invalid tag {tag!r}")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest) -> Reference:
        """Return a copy pinned to ``digest`` (the tag, if any, is kept for display)."""
        return replace(self, digest=digest)

    def repo(self) -> Reference:
        """The repository alone, with no tag or digest."""
        return replace(self, tag=None, digest=None)

    def scope(self, *actions: str) -> str:
        """The token scope for this repository: ``repository:<path>:pull,push``."""
        return f"repository:{self.repository}:{','.join(actions or ('pull',))}"

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag else ""
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def __str__(self) -> str:
        return self.name + self._suffix()
