"""The policy file (``imagevet.yaml``): what is vetted, where it is mirrored, and which tags.

``load_policy(path, env=...)`` reads and checks a policy and returns a frozen :class:`Policy`;
``select_tags(tags, entry.tags)`` picks the upstream tags an entry mirrors.  The file format is
described in docs/policy.md.  This package does no network I/O.
"""

from __future__ import annotations

from imagevet.policy.loader import load_policy, parse_policy
from imagevet.policy.located import PolicyErrors
from imagevet.policy.model import (
    Approval,
    Entry,
    EntryKey,
    Location,
    Mode,
    Policy,
    TagRules,
    Target,
)
from imagevet.policy.tags import missing_tags, select_tags
from imagevet.policy.versions import InvalidRangeError, TagVersion, VersionRange

__all__ = [
    "Approval",
    "Entry",
    "EntryKey",
    "InvalidRangeError",
    "Location",
    "Mode",
    "Policy",
    "PolicyErrors",
    "TagRules",
    "TagVersion",
    "Target",
    "VersionRange",
    "load_policy",
    "missing_tags",
    "parse_policy",
    "select_tags",
]
