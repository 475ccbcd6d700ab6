"""``load_policy``: read, check and build a policy file, reporting every error with its position.

Steps: compose the YAML with positions (``located``); refuse anything that looks like a secret;
drop top-level ``x-*`` keys (anchors for reuse, as in Compose and regsync); expand ``${VAR}``
from the ``env`` mapping given (never ``os.environ``); validate with the pydantic schema; merge
``defaults`` into each entry; check what needs several values (duplicate targets and names,
Docker Hub naming, approvals, tag rules that select nothing).  Errors from every step are
collected and raised together as one :class:`PolicyErrors`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from imagevet.digest import Digest
from imagevet.errors import InvalidReferenceError, PolicyError
from imagevet.manifest import Platform
from imagevet.policy.located import (
    Located,
    PolicyErrors,
    expand_env,
    parse_yaml,
    read_yaml_file,
    validation_errors,
)
from imagevet.policy.model import (
    DEFAULT_BACKUP_TAG,
    DEFAULT_DESCRIPTION,
    DEFAULT_SCAN_TIMEOUT,
    Approval,
    Audit,
    Entry,
    KeylessRule,
    KeySource,
    Location,
    Mode,
    NotifyTarget,
    Policy,
    Scan,
    Sign,
    TagRules,
    Target,
    VerifyRule,
    render_template,
)
from imagevet.policy.schema import (
    HINTS,
    ApprovalModel,
    AuditModel,
    EntryModel,
    NotifyModel,
    PolicyModel,
    ScanModel,
    SettingsModel,
    SignModel,
    TagRulesModel,
    TargetModel,
    VerifyModel,
    duration_seconds,
)
from imagevet.policy.versions import VersionRange
from imagevet.reference import DOCKER_HUB, Reference
from imagevet.repository_spec import TeamPermission

__all__ = ["DESCRIPTION_MAX", "load_policy", "parse_policy"]

DESCRIPTION_MAX = 100
"""Docker Hub's limit on a repository's short description."""

_M = TypeVar("_M", bound=BaseModel)

_SECRET_KEYS = frozenset(
    {
        "password", "passwd", "pass", "pwd", "token", "accesstoken", "secret", "clientsecret",
        "apikey", "auth", "credentials", "credential", "privatekey", "pat", "identitytoken",
    }
)  # fmt: skip
_SECRET_VALUES = [
    (re.compile(r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{8,}"), "a Docker Hub access token"),
    (
        re.compile(r"(?:ghp|gho|ghs|ghu)_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"),
        "a GitHub token",
    ),
    (re.compile(r"glpat-[A-Za-z0-9_-]{20,}"), "a GitLab token"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
]
_SECRET_URLS = [
    (re.compile(r"(?i)https?://hooks\.slack\.com/(?:services|workflows|triggers)/\S+"),
     "a Slack incoming-webhook URL"),
    (re.compile(r"(?i)https?://[^/\s@]*discord(?:app)?\.com/api/webhooks/\S+"), "a Discord webhook URL"),
    (re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s@:]+:[^/\s@]+@"), "a URL with a user:password"),
]
_URLS_ELSEWHERE = (
    "webhook URLs and URL credentials are secrets and never live in the policy file: put the URL "
    "in an environment variable and name it with notify: url_env (docs/notifications.md)"
)
_SECRETS_ELSEWHERE = (
    "secrets never live in the policy file: use `docker login`, a credential helper, "
    "or IMAGEVET_* environment variables"
)


def load_policy(path: Path, *, env: Mapping[str, str], today: date | None = None) -> Policy:
    """Read and check the policy file at ``path``; raise PolicyErrors listing every problem.

    ``env`` supplies ``${VAR}`` values (the CLI passes ``os.environ``; tests pass a dict).
    With ``today``, an ``approved_on`` date after it is an error.  An *expired* approval is not
    a load error: :func:`imagevet.plan.plan_sync` holds new digests and reports it.
    """
    try:
        text = read_yaml_file(path)
    except OSError as e:
        raise PolicyErrors([PolicyError(str(path), f"cannot read: {e.strerror or e}")]) from None
    except UnicodeDecodeError as e:
        raise PolicyErrors(
            [PolicyError(str(path), f"not UTF-8 text: {e.reason} at byte {e.start}")]
        ) from None
    return parse_policy(text, path=path, env=env, today=today)


def parse_policy(
    text: str,
    *,
    path: Path | str = "imagevet.yaml",
    env: Mapping[str, str],
    today: date | None = None,
) -> Policy:
    """Check and build a policy from its YAML ``text``; ``path`` is used in messages."""
    label = str(path)
    located = parse_yaml(text, path=label)
    errors: list[PolicyError] = []
    if not isinstance(located.data, dict):
        raise PolicyErrors(
            [located.error((), "expected a mapping with version, target, defaults, images")]
        )
    _find_secrets(located, located.data, (), errors)
    if errors:
        raise PolicyErrors(errors)
    data = {k: v for k, v in located.data.items() if not k.startswith("x-")}
    located = expand_env(Located(label, data, located.spans), env, errors)
    try:
        model = PolicyModel.model_validate(located.data)
        pieces = _Pieces(model.target, model.defaults, dict(enumerate(model.images)), model.version)
    except ValidationError as e:
        # a value whose ${VAR} failed is reported once, for the variable
        seen = {(x.line, x.column) for x in errors}
        more = validation_errors(located, e, PolicyModel, hints=HINTS)
        errors.extend(x for x in more if (x.line, x.column) not in seen)
        found = _valid_pieces(located.data)
        if found is None:
            raise PolicyErrors(errors) from None
        pieces = found
    policy = _Builder(located, pieces, Path(path), today).build(errors)
    if errors:
        raise PolicyErrors(errors)
    return policy


@dataclass(frozen=True, slots=True)
class _Pieces:
    """The parts of a policy that passed the schema, so cross-checks run even when others failed."""

    target: TargetModel
    defaults: SettingsModel | None
    images: dict[int, EntryModel]
    version: int


def _valid_pieces(data: dict[str, Any]) -> _Pieces | None:
    def valid(model: type[_M], value: Any) -> _M | None:
        try:
            return model.model_validate(value)
        except ValidationError:
            return None

    target = valid(TargetModel, data.get("target"))
    if target is None:
        return None
    defaults = valid(SettingsModel, data.get("defaults") or {})
    if defaults is None and data.get("defaults") is not None:
        return None
    images = data.get("images")
    entries = {}
    for i, item in enumerate(images if isinstance(images, list) else []):
        entry = valid(EntryModel, item)
        if entry is not None:
            entries[i] = entry
    return _Pieces(target, defaults, entries, 1)


def _find_secrets(
    located: Located, value: Any, path: tuple[str | int, ...], errors: list[PolicyError]
) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            normal = re.sub(r"[^a-z]", "", key.lower())
            if normal in _SECRET_KEYS:
                errors.append(
                    located.error(
                        (*path, key),
                        f"key {key!r} looks like a secret; {_SECRETS_ELSEWHERE}",
                        at_key=True,
                    )
                )
            else:
                _find_secrets(located, item, (*path, key), errors)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _find_secrets(located, item, (*path, i), errors)
    elif isinstance(value, str):
        for pattern, what in _SECRET_VALUES:
            if pattern.search(value):
                errors.append(
                    located.error(path, f"this value looks like {what}; {_SECRETS_ELSEWHERE}")
                )
                break
        else:
            for pattern, what in _SECRET_URLS:
                if pattern.search(value):
                    errors.append(
                        located.error(path, f"this value looks like {what}; {_URLS_ELSEWHERE}")
                    )
                    break


_Path = tuple[str | int, ...]


class _Builder:
    """Merges defaults into entries and checks what spans several values."""

    def __init__(self, located: Located, pieces: _Pieces, path: Path, today: date | None) -> None:
        self.located = located
        self.pieces = pieces
        self.path = path
        self.today = today
        self.defaults = pieces.defaults or SettingsModel()

    def _pick(self, entry: EntryModel, index: int, name: str) -> tuple[Any, _Path]:
        """The entry's value of ``name`` if set, else the default's; and where it was written."""
        value = getattr(entry, name)
        if value is not None:
            return value, ("images", index, name)
        return getattr(self.defaults, name), ("defaults", name)

    def _merged(
        self, entry: EntryModel, index: int, name: str, model_cls: Any
    ) -> dict[str, tuple[Any, _Path]]:
        """A per-key merge of a nested mapping (``tags``, ``approval``): entry keys win."""
        out: dict[str, tuple[Any, _Path]] = {}
        for where, holder in (
            (("defaults", name), getattr(self.defaults, name)),
            (("images", index, name), getattr(entry, name)),
        ):
            if holder is None:
                continue
            for key in model_cls.model_fields:
                value = getattr(holder, key)
                if value is not None:
                    out[key] = (value, (*where, key))
        return out

    def build(self, errors: list[PolicyError]) -> Policy:
        t = self.pieces.target
        if t.layout is not None:
            if t.registry is not None:
                errors.append(
                    self.located.error(
                        ("target", "layout"),
                        "a target is either a registry or a layout directory: remove registry or layout",
                    )
                )
            base = str(self.path.parent)
            layout = os.path.normpath(os.path.join(base, t.layout))  # an absolute layout stays
            target = Target("", t.namespace, t.naming, layout)
        else:
            target = Target(registry=t.registry or DOCKER_HUB, namespace=t.namespace, naming=t.naming)
        if target.layout is None and (
            target.registry == DOCKER_HUB
            or Reference.parse(f"{target.registry}/x/y").registry == DOCKER_HUB
        ):
            target = Target(DOCKER_HUB, target.namespace, target.naming)
            if "/" in target.namespace or target.namespace == "library":
                errors.append(
                    self.located.error(
                        ("target", "namespace"),
                        f"{target.namespace!r}: a Docker Hub namespace is one organization or user name (not 'library')",
                    )
                )
        built: list[tuple[int, Entry]] = []
        for index, entry in sorted(self.pieces.images.items()):
            one = self._entry(target, entry, index, errors)
            if one is not None:
                built.append((index, one))
        self._check_unique(built, errors)
        entries = tuple(e for _, e in built)
        return Policy(
            path=self.path, target=target, entries=entries, version=self.pieces.version,
            audit=_audit(self.located.data.get("audit")),
            sign=_sign(self.located.data.get("sign"), self.path.parent),
            notify=self._notify(errors),
        )

    def _notify(self, errors: list[PolicyError]) -> tuple[NotifyTarget, ...]:
        """The ``notify`` section (its schema errors were reported with the whole model); one
        target per ``url_env``: notices are kept per target, named by that variable."""
        items = self.located.data.get("notify")
        out: list[NotifyTarget] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(items if isinstance(items, list) else []):
            try:
                model = NotifyModel.model_validate(item)
            except ValidationError:
                continue
            first = seen.setdefault(model.url_env, index)
            if first != index:
                errors.append(self.located.error(
                    ("notify", index, "url_env"),
                    f"{model.url_env} is already the target of notify[{first}] "
                    f"({self.located.location(('notify', first))}); one target per URL variable",
                ))
                continue
            span = self.located.span(("notify", index))
            out.append(NotifyTarget(
                type=model.type, url_env=model.url_env, secret_env=model.secret_env,
                events=frozenset(model.events) if model.events is not None else None,
                expiring_within=model.expiring_within,
                location=Location(self.located.path, span.line, span.column),
            ))
        return tuple(out)

    def _entry(
        self, target: Target, entry: EntryModel, index: int, errors: list[PolicyError]
    ) -> Entry | None:
        at: _Path = ("images", index)
        err = self.located.error
        before = len(errors)
        source = Reference.parse(entry.source).repo()
        parts = source.repository.split("/")
        fields = {
            "name": parts[-1],
            "namespace": parts[0] if len(parts) > 1 else "",
            "path": source.repository,
            "source": source.name,
        }
        if entry.target is not None:
            name, name_at = entry.target, (*at, "target")
        else:
            name, name_at = render_template(target.naming, fields), ("target", "naming")
        where = (
            "" if entry.target is not None else f" (for images[{index}], source {source.familiar})"
        )
        target_ref: Reference | None = None
        if target.registry == DOCKER_HUB and "/" in name:
            errors.append(
                err(
                    name_at,
                    f"{name!r}{where}: a Docker Hub repository name has no '/'; use naming: \"{{namespace}}-{{name}}\" or an explicit target",
                )
            )
        else:
            try:
                if target.layout is not None:  # the same names as on a registry
                    Reference.parse(f"example.com/{target.namespace}/{name}")
                target_ref = target.repository(name)
            except InvalidReferenceError as e:
                errors.append(err(name_at, f"{e.reason}{where}"))

        tags = self._tag_rules(entry, index, errors)
        approval = self._approval(entry, index, errors)
        scan = self._scan(entry, index, errors)
        mode, _ = self._pick(entry, index, "mode")
        platforms_text, _ = self._pick(entry, index, "platforms")
        platforms = (
            None
            if platforms_text in (None, ["all"])
            else tuple(Platform.parse(p) for p in platforms_text)
        )
        referrers, _ = self._pick(entry, index, "referrers")
        backup, _ = self._pick(entry, index, "backup_tag")
        private, _ = self._pick(entry, index, "private")
        description_tpl, description_at = self._pick(entry, index, "description")
        description = render_template(description_tpl or DEFAULT_DESCRIPTION, fields)
        if target.registry == DOCKER_HUB and len(description) > DESCRIPTION_MAX:
            errors.append(
                err(
                    description_at if description_tpl else at,
                    f"the description of images[{index}] is {len(description)} characters; Docker Hub allows {DESCRIPTION_MAX}",
                )
            )
        teams: dict[str, TeamPermission] = {}
        for holder in (self.defaults.teams, entry.teams):
            for team, permission in (holder or {}).items():
                if permission == "none":
                    teams.pop(team, None)
                else:
                    teams[team] = TeamPermission(permission)
        verify = self._verify(entry, index)
        if len(errors) > before or target_ref is None or tags is None or approval is None:
            return None
        span = self.located.span(at)
        return Entry(
            name=entry.name or source.familiar,
            source=source,
            target=target_ref,
            tags=tags,
            approval=approval,
            mode=Mode(mode or Mode.PINNED),
            platforms=platforms,
            referrers=True if referrers is None else referrers,
            backup_tag=backup or DEFAULT_BACKUP_TAG,
            private=True if private is None else private,
            description=description,
            teams=teams,
            location=Location(self.located.path, span.line, span.column),
            scan=scan,
            verify=verify,
        )

    def _verify(self, entry: EntryModel, index: int) -> VerifyRule | None:
        """The entry's ``verify:`` (else the default's, whole): a key file is resolved from the
        policy file's directory, as ``target.layout`` is; nothing is read here."""
        model, where = self._pick(entry, index, "verify")
        if not isinstance(model, VerifyModel):
            return None

        def at(path: _Path) -> Location:
            span = self.located.span(path)
            return Location(self.located.path, span.line, span.column)

        if model.identity is not None or model.identity_regexp is not None:
            root = model.trust_root
            return VerifyRule(location=at(where), keyless=KeylessRule(
                model.identity, model.identity_regexp, model.issuer, model.issuer_regexp,
                os.path.normpath(os.path.join(str(self.path.parent), root)) if root is not None else None,
                at(where),
            ))
        if model.key is not None:
            path = os.path.normpath(os.path.join(str(self.path.parent), model.key))
            source = KeySource(path=path, location=at((*where, "key")))
        else:
            source = KeySource(env=model.key_env, location=at((*where, "key_env")))
        return VerifyRule((source,), at(where))

    def _tag_rules(
        self, entry: EntryModel, index: int, errors: list[PolicyError]
    ) -> TagRules | None:
        merged = self._merged(entry, index, "tags", TagRulesModel)
        get = {k: v for k, (v, _) in merged.items()}
        if not any(k in get for k in ("allow", "range", "tags", "digests")):
            where: _Path = (
                ("images", index, "tags") if entry.tags is not None else ("images", index)
            )
            errors.append(
                self.located.error(
                    where,
                    "selects no tags: give at least one of tags.allow, tags.range, tags.tags or tags.digests (here or in defaults)",
                )
            )
            return None
        return TagRules(
            allow=tuple(re.compile(p) for p in get.get("allow", ())),
            deny=tuple(re.compile(p) for p in get.get("deny", ())),
            range=VersionRange.parse(get["range"]) if "range" in get else None,
            keep=get.get("keep"),
            prereleases=bool(get.get("prereleases", False)),
            tags=tuple(dict.fromkeys(get.get("tags", ()))),
            digests=tuple(dict.fromkeys(Digest.parse(d) for d in get.get("digests", ()))),
        )

    def _approval(
        self, entry: EntryModel, index: int, errors: list[PolicyError]
    ) -> Approval | None:
        merged = self._merged(entry, index, "approval", ApprovalModel)
        err = self.located.error
        if "approved_by" not in merged:
            where: _Path = (
                ("images", index, "approval") if entry.approval is not None else ("images", index)
            )
            errors.append(
                err(
                    where,
                    "approval.approved_by is required (here or in defaults.approval): who vetted this image",
                )
            )
            return None
        approved_on = merged.get("approved_on", (None, ()))[0]
        expires = merged.get("expires", (None, ()))[0]
        ok = True
        if approved_on is not None and expires is not None and expires < approved_on:
            errors.append(
                err(
                    merged["expires"][1],
                    f"expires ({expires}) is before approved_on ({approved_on})",
                )
            )
            ok = False
        if approved_on is not None and self.today is not None and approved_on > self.today:
            errors.append(
                err(
                    merged["approved_on"][1],
                    f"approved_on ({approved_on}) is in the future (today is {self.today})",
                )
            )
            ok = False
        if not ok:
            return None
        return Approval(
            approved_by=merged["approved_by"][0],
            reason=merged.get("reason", (None, ()))[0],
            ticket=merged.get("ticket", (None, ()))[0],
            approved_on=approved_on,
            expires=expires,
        )

    def _scan(self, entry: EntryModel, index: int, errors: list[PolicyError]) -> Scan | None:
        """The entry's scanner hook: ``defaults.scan`` merged with its own, key by key; None
        when neither sets one.  ``command`` and ``fail_on`` must be given (here or in defaults)."""
        if entry.scan is None and self.defaults.scan is None:
            return None
        merged = self._merged(entry, index, "scan", ScanModel)
        where: _Path = ("images", index, "scan") if entry.scan is not None else ("defaults", "scan")
        missing = [k for k in ("command", "fail_on") if k not in merged]
        if missing:
            errors.append(
                self.located.error(
                    where,
                    f"scan.{missing[0]} is required (here or in defaults.scan): "
                    + ("the scanner's arguments with {ref}" if missing[0] == "command"
                       else "critical, high, medium or low"),
                )
            )
            return None
        timeout = merged.get("timeout", (None, ()))[0]
        return Scan(
            command=tuple(merged["command"][0]),
            fail_on=merged["fail_on"][0],
            timeout=duration_seconds(timeout) if timeout is not None else DEFAULT_SCAN_TIMEOUT,
        )

    def _check_unique(self, built: list[tuple[int, Entry]], errors: list[PolicyError]) -> None:
        by_target: dict[Reference, int] = {}
        by_name: dict[str, int] = {}
        loc = self.located.location
        for index, entry in built:
            first = by_target.setdefault(entry.target, index)
            if first != index:
                other = self.pieces.images[first].source
                errors.append(
                    self.located.error(
                        ("images", index, "source"),
                        f"duplicate target {entry.target.name}: images[{index}] ({entry.source.familiar}) and "
                        f"images[{first}] ({other}, {loc(('images', first, 'source'))}) mirror into the same "
                        'repository; set target: on one of them, or naming: "{namespace}-{name}"',
                    )
                )
            first = by_name.setdefault(entry.name, index)
            if first != index:
                errors.append(
                    self.located.error(
                        ("images", index),
                        f"duplicate entry name {entry.name!r} (also images[{first}], {loc(('images', first))}); "
                        "give each a distinct name:",
                    )
                )


def _audit(value: Any) -> Audit:
    """The ``audit`` section (its errors were reported with the whole model): checkpoint, public key."""
    try:
        model = AuditModel.model_validate(value or {})
    except ValidationError:
        return Audit()
    checkpoint = None
    if model.checkpoint is not None:
        ref = Reference.parse(model.checkpoint)
        checkpoint = ref if ref.tag is not None else ref.with_tag("checkpoint")
    return Audit(checkpoint=checkpoint, public_key=model.public_key)


def _sign(value: Any, base: Path) -> Sign | None:
    """The ``sign`` section (its errors were reported with the whole model); None when absent."""
    if value is None:
        return None
    try:
        model = SignModel.model_validate(value)
    except ValidationError:
        return None
    key_file = Path(os.path.normpath(os.path.join(str(base), model.key))) if model.key is not None else None
    return Sign(key_file=key_file, key_env=model.key_env, password_env=model.password_env)
