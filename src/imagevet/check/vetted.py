"""The vetted mirrors ``check`` judges against, and the adapters that build them.

A :class:`VettedImage` says: the community (or other) repository ``source`` is mirrored, after
vetting, as ``mirror``; ``tags`` maps each vetted tag to the digest that was vetted.  Build them

* from the policy and lock with :func:`vetted_from_lock` (the lock records, per source tag, the
  digest copied into the mirror and, for an index, the digest of each platform's manifest), or
* from a JSON file with :func:`read_vetted`: a list of
  ``{"source": "bitnami/redis", "mirror": "acme/redis", "tags": {"7.2": "sha256:..."}}``, or
* in code: ``VettedImage(Reference.parse("bitnami/redis"), Reference.parse("acme/redis"),
  {"7.2": Digest.parse("sha256:...")})``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagevet.digest import Digest
from imagevet.errors import InvalidDigestError, InvalidReferenceError, PolicyError
from imagevet.reference import Reference

if TYPE_CHECKING:  # read only with --policy: keep pydantic out of a plain `check` run
    from imagevet.lock import Lock
    from imagevet.policy import Entry, Policy

__all__ = [
    "VettedImage",
    "read_vetted",
    "vetted_from_data",
    "vetted_from_lock",
]


@dataclass(frozen=True, slots=True)
class VettedImage:
    """A vetted repository: its ``source``, its ``mirror`` and the vetted ``tags`` -> digests.

    ``source`` and ``mirror`` are kept as repositories (any tag or digest is dropped).
    ``platforms`` maps a vetted tag whose digest is an index to the digest of each platform
    manifest it lists (``{"7.2": {"linux/amd64": sha256:...}}``): a reference pinned to one of
    them is pinned to part of a vetted image.
    """

    source: Reference
    mirror: Reference
    tags: Mapping[str, Digest] = field(default_factory=dict)
    platforms: Mapping[str, Mapping[str, Digest]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", self.source.repo())
        object.__setattr__(self, "mirror", self.mirror.repo())
        object.__setattr__(self, "tags", dict(self.tags))
        object.__setattr__(self, "platforms", {t: dict(p) for t, p in self.platforms.items() if t in self.tags})

    def tags_for(self, digest: Digest) -> list[str]:
        """The vetted tags whose digest is ``digest``, sorted."""
        return sorted(t for t, d in self.tags.items() if d == digest)

    def platform_of(self, digest: Digest) -> list[tuple[str, str]]:
        """``(tag, platform)`` of each vetted index that lists ``digest`` as a platform manifest,
        sorted."""
        return sorted((t, p) for t, children in self.platforms.items() for p, d in children.items() if d == digest)

    def pinned(self, tag: str) -> Reference:
        """The mirror at ``tag``, pinned to the vetted digest of that tag."""
        return self.mirror.with_tag(tag).with_digest(self.tags[tag])


def vetted_from_data(data: Any, *, path: str = "<vetted>") -> list[VettedImage]:
    """Build vetted images from decoded JSON: ``[{source, mirror, tags: {tag: digest}}]``, each
    entry optionally with ``platforms: {tag: {"linux/amd64": digest}}``, the platform manifests
    of a vetted tag's index."""
    if not isinstance(data, list):
        raise PolicyError(path, "expected a list of {source, mirror, tags}")
    out: list[VettedImage] = []
    for i, entry in enumerate(data):
        where = f"[{i}]"
        if not isinstance(entry, dict):
            raise PolicyError(path, "expected an object", field=where)
        try:
            source = Reference.parse(str(entry["source"]))
            mirror = Reference.parse(str(entry["mirror"]))
            raw_tags = entry.get("tags", {})
            if not isinstance(raw_tags, dict):
                raise PolicyError(path, "expected an object of tag: digest", field=f"{where}.tags")
            tags = {str(t): Digest.parse(str(d)) for t, d in raw_tags.items()}
            raw_platforms = entry.get("platforms", {})
            if not isinstance(raw_platforms, dict) or not all(isinstance(p, dict) for p in raw_platforms.values()):
                raise PolicyError(path, "expected an object of tag: {platform: digest}", field=f"{where}.platforms")
            platforms = {
                str(t): {str(p): Digest.parse(str(d)) for p, d in children.items()}
                for t, children in raw_platforms.items()
            }
            unknown = sorted(set(platforms) - set(tags))
            if unknown:
                raise PolicyError(path, f"platforms of a tag that is not vetted: {', '.join(unknown)}",
                                  field=f"{where}.platforms")
        except KeyError as e:
            raise PolicyError(path, "missing", field=f"{where}.{e.args[0]}") from None
        except (InvalidReferenceError, InvalidDigestError) as e:
            raise PolicyError(path, str(e), field=where) from None
        out.append(VettedImage(source, mirror, tags, platforms))
    return out


def read_vetted(path: Path) -> list[VettedImage]:
    """Read a vetted-mirrors JSON file (see :func:`vetted_from_data`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PolicyError(str(path), f"cannot read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise PolicyError(str(path), f"invalid JSON: {e.msg}", line=e.lineno, column=e.colno) from None
    return vetted_from_data(data, path=str(path))


def vetted_from_lock(policy: Policy, lock: Lock) -> list[VettedImage]:
    """One VettedImage per policy entry: its source, its mirror, the locked tag digests and the
    platform manifests of each locked index (``platforms``, as ``--vetted`` data gives them).

    The digests are the source's (the lock's).  An entry that mirrors a platform subset holds a
    rewritten index at the mirror, so a reference pinned to the *mirror's* digest of such an
    entry is judged by its tag only; its platform manifests are copied byte for byte, so a pin
    of one of them is vetted, but only of a platform the entry mirrors.  A lock record without
    its platform manifests' digests (written before they were recorded: ``imagevet lock`` adds
    them) vets no platform manifest.
    """
    out: list[VettedImage] = []
    for entry in policy.entries:
        locked = lock.entry(entry.key)
        if locked is None:
            out.append(VettedImage(entry.source, entry.target))
            continue
        tags = {t: i.digest for t, i in locked.tags.items()}
        platforms = {
            t: {p: d for p, d in i.manifests if _mirrored(entry, p)} for t, i in locked.tags.items()
        }
        out.append(VettedImage(entry.source, entry.target, tags, {t: c for t, c in platforms.items() if c}))
    return out


def _mirrored(entry: Entry, platform: str) -> bool:
    """Whether ``entry``'s mirror holds the manifest of ``platform`` (all of them without a
    platform subset; the platforms the subset matches, as :func:`imagevet.manifest.subset_index`
    selects them, with one)."""
    if entry.platforms is None:
        return True
    from imagevet.manifest import Platform

    wanted = Platform.parse(platform)
    return any(p.matches(wanted) for p in entry.platforms)
