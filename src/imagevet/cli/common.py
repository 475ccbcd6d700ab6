"""What every command shares: consoles, logging with redaction, exit codes, running coroutines.

Importing it is cheap: ``asyncio`` and ``rich`` (about a third of a second between them on a
busy machine) load when a coroutine runs or a console first prints, so ``imagevet --help`` and
commands that print nothing never pay for them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import typer

from imagevet.errors import (
    CopyError,
    CredentialsError,
    DigestMismatchError,
    HubError,
    ImagevetError,
    InvalidDigestError,
    InvalidReferenceError,
    PolicyError,
    RegistryError,
    SecurityError,
    TransportError,
)
from imagevet.reference import DOCKER_HUB, canonical_registry

if TYPE_CHECKING:  # the registry stack (aiohttp) loads only for commands that talk to registries
    from rich.console import Console

    from imagevet.hub import HubCredentials
    from imagevet.registry import Credential, RegistryClient
    from imagevet.store import StoreRouter

__all__ = [
    "EXIT_CHANGES",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "console",
    "configure_logging",
    "err_console",
    "fail",
    "handle_errors",
    "hub_settings",
    "make_registry_client",
    "make_store",
    "print_json",
    "real_console",
    "redact",
    "redact_url_userinfo",
    "run",
    "terminal_safe",
]

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILURE = 1  # an operation failed (registry, copy, Hub)
EXIT_USAGE = 2  # bad arguments or bad input files
EXIT_CHANGES = 3  # plan --detailed-exitcode: changes pending


class _DeferredConsole:
    """A rich ``Console`` made (and rich imported) on first use; every attribute is the console's."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    @property
    def real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def real_console(console: Console) -> Console:
    """The rich ``Console`` behind ``console`` (for rich classes that take one, e.g. ``Progress``)."""
    return console.real if isinstance(console, _DeferredConsole) else console


console = cast("Console", _DeferredConsole(highlight=False, soft_wrap=True))
err_console = cast("Console", _DeferredConsole(stderr=True, highlight=False, soft_wrap=True))

# Error class -> exit code; the first match wins, so subclasses come first.
_EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidReferenceError, EXIT_USAGE),
    (InvalidDigestError, EXIT_USAGE),
    (PolicyError, EXIT_USAGE),
    (CredentialsError, EXIT_FAILURE),
    (DigestMismatchError, EXIT_FAILURE),
    (SecurityError, EXIT_FAILURE),
    (CopyError, EXIT_FAILURE),
    (RegistryError, EXIT_FAILURE),
    (TransportError, EXIT_FAILURE),
    (HubError, EXIT_FAILURE),
    (ImagevetError, EXIT_FAILURE),
)

_SECRET_PATTERNS = (
    re.compile(r"(?i)(authorization:\s*)(\S+\s+)?\S+"),
    # a key = value pair; not a URL path ending in the word (``/v2/auth/token: <error>``)
    re.compile(r"(?i)((?<![\w/.-])(?:password|secret|token|access_token|identitytoken)\"?\s*[:=]\s*\"?)[^\s\",}]+"),
    re.compile(r"dckr_(?:pat|oat)_[A-Za-z0-9_-]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"),  # JWTs
)


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")


def redact_url_userinfo(text: str) -> str:
    """Replace the ``user:password@`` of every URL in ``text`` with ``***@``."""
    return _USERINFO.sub(r"\1***@", text)


def redact(text: str) -> str:
    """Mask anything that looks like a credential in ``text`` (URL user info included)."""
    text = redact_url_userinfo(text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() and m.group(1) else "") + "***", text)
    return text


_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 controls but tab and newline, DEL, C1 controls
    "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"  # bidi, invisible
)
_UNSAFE_MULTILINE = re.compile(_UNSAFE.pattern)
_UNSAFE_ONE_LINE = re.compile(_UNSAFE.pattern[:-1] + "\n]")


def _escaped(m: re.Match[str]) -> str:
    code = ord(m[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: object, *, markup: bool = True, multiline: bool = False) -> str:
    """``text`` made safe to print on a terminal: every control character (ESC, C0 and C1, DEL,
    CR, and newline unless ``multiline``), and every bidi override or invisible format character
    is shown escaped (``\\x1b``, ``\\u202e``), so a registry's error text, a ledger record or a
    scanned file can neither move the cursor, rewrite earlier lines, set a title or hyperlink,
    nor reorder what is shown.  With ``markup`` (for text printed with rich markup on), rich
    markup is escaped too, so ``[red]`` is shown as written.

    Use it for every untrusted string the CLI prints; JSON output needs none (json.dumps escapes).
    """
    pattern = _UNSAFE_MULTILINE if multiline else _UNSAFE_ONE_LINE
    out = pattern.sub(_escaped, str(text))
    if not markup:
        return out
    from rich.markup import escape

    return escape(out)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(redact(super().format(record)), markup=False, multiline=True)


class _StaminaRecords(logging.Filter):
    """Turn the retry library's bare ``stamina.retry_scheduled`` record (its details are in
    ``extra``) into one readable DEBUG line; imagevet reports the final error itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "stamina.retry_scheduled":
            details = record.__dict__
            record.msg = "retry %s scheduled in %.2fs after %s"
            record.args = (
                details.get("stamina.retry_num"),
                details.get("stamina.wait_for") or 0.0,
                details.get("stamina.caused_by"),
            )
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def configure_logging(*, debug: bool = False, quiet: bool = False) -> None:
    """Send imagevet's log records to stderr, redacted and terminal-safe; DEBUG with --debug.

    The retry library (``stamina``) logs every scheduled retry as a WARNING to its own logger,
    which Python would print bare (``stamina.retry_scheduled``) on every failing request: those
    records are shown only with ``--debug``, as readable DEBUG lines.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("imagevet")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING)
    stamina_log = logging.getLogger("stamina")
    stamina_log.propagate = False
    stamina_log.filters[:] = [_StaminaRecords()]
    stamina_log.handlers[:] = [handler] if debug else [logging.NullHandler()]
    stamina_log.setLevel(logging.DEBUG if debug else logging.CRITICAL + 1)


def exit_code_for(exc: BaseException) -> int:
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_FAILURE


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {terminal_safe(redact(message), multiline=True)}", markup=True)
    raise typer.Exit(code)


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn imagevet errors into one red line on stderr and the exit code of their class."""
    try:
        yield
    except ImagevetError as e:
        fail(str(e), exit_code_for(e))
    except KeyboardInterrupt:
        fail("interrupted", 130)


def run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine made by ``factory`` on a fresh event loop, errors mapped to exit codes."""
    import asyncio

    async def _main() -> T:
        return await factory()

    with handle_errors():
        return asyncio.run(_main())


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout (no colours, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def explicit_credentials(env: Mapping[str, str]) -> dict[str, Credential]:
    """Per-registry credentials for CI, from the environment (never from the policy file).

    * ``IMAGEVET_AUTH_FILE``: a JSON file ``{"<registry>": {"username": ..., "password": ...}}``;
    * ``DOCKER_HUB_USERNAME`` + ``DOCKER_HUB_TOKEN``: Docker Hub (a PAT, or an OAT with the org
      name as user), the same pair the Hub API integration uses.
    """
    from imagevet.registry import Credential

    found: dict[str, Credential] = {}
    path = env.get("IMAGEVET_AUTH_FILE")
    if path:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CredentialsError(f"IMAGEVET_AUTH_FILE: {path} does not exist") from None
        except (OSError, ValueError) as e:
            raise CredentialsError(f"IMAGEVET_AUTH_FILE: {path} is not valid JSON: {type(e).__name__}") from None
        if not isinstance(data, dict):
            raise CredentialsError(f"IMAGEVET_AUTH_FILE: {path} must map registry hosts to credentials")
        for host, entry in data.items():
            if not isinstance(entry, dict) or not entry.get("username") or not entry.get("password"):
                raise CredentialsError(
                    f"IMAGEVET_AUTH_FILE: {path}: entry {host!r} needs 'username' and 'password'"
                )
            found[canonical_registry(str(host))] = Credential(str(entry["username"]), str(entry["password"]))
    user, token = env.get("DOCKER_HUB_USERNAME"), env.get("DOCKER_HUB_TOKEN")
    if user and token:
        found.setdefault(DOCKER_HUB, Credential(user, token))
    return found


def hub_settings(env: Mapping[str, str] | None = None) -> tuple[str, HubCredentials | None]:
    """The Hub API URL and credentials from the environment; a usage error (exit 2) when
    ``IMAGEVET_HUB_URL`` holds credentials (``user:password@``): they belong in
    ``DOCKER_HUB_USERNAME``/``DOCKER_HUB_TOKEN``, and a URL is shown in output and logs."""
    from urllib.parse import urlsplit

    from imagevet.errors import redact_url
    from imagevet.hub import hub_settings_from_env

    url, credentials = hub_settings_from_env(os.environ if env is None else env)
    try:
        parts = urlsplit(url)
        userinfo, usable = "@" in parts.netloc, parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        userinfo, usable = "@" in url, False
    if not usable and not userinfo:
        fail(f"IMAGEVET_HUB_URL ({redact_url(url)}) must be an absolute http(s) URL", EXIT_USAGE)
    if userinfo:
        fail(
            f"IMAGEVET_HUB_URL ({redact_url(url)}) must not hold credentials (user:password@): "
            "give them in DOCKER_HUB_USERNAME and DOCKER_HUB_TOKEN",
            EXIT_USAGE,
        )
    return url, credentials


def make_registry_client(
    *, insecure: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> RegistryClient:
    """A client with credentials from the environment first, then Docker's own config.

    ``IMAGEVET_TRANSFER_TIMEOUT`` (seconds): a response or body with no byte for that long, or
    whose body brings less than 1 KiB/s over that long, fails (default 120).
    """
    from imagevet.registry import (
        ChainCredentials,
        CredentialStore,
        DockerConfigCredentials,
        RegistryClient,
        RegistryHost,
        StaticCredentials,
        TransferTimeouts,
    )

    env = os.environ if env is None else env
    explicit = explicit_credentials(env)
    docker = DockerConfigCredentials(env=env, home=Path.home())
    store: CredentialStore = ChainCredentials(StaticCredentials(explicit), docker) if explicit else docker
    hosts = {canonical_registry(h): RegistryHost(insecure=True) for h in insecure}
    timeouts = None
    if env.get("IMAGEVET_TRANSFER_TIMEOUT"):
        value = env["IMAGEVET_TRANSFER_TIMEOUT"]
        try:
            timeouts = TransferTimeouts.within(float(value))
        except ValueError:
            raise PolicyError(
                "IMAGEVET_TRANSFER_TIMEOUT", f"{value!r} is not a positive number of seconds"
            ) from None
    return RegistryClient(credentials=store, hosts=hosts, timeouts=timeouts)


def make_store(*, insecure: Sequence[str] = (), env: Mapping[str, str] | None = None) -> StoreRouter:
    """The image store of every command: registries (:func:`make_registry_client`), ``oci:``
    layout directories and ``oci-archive:`` files, by each reference's scheme.  Close it (``async
    with``): archives are written when it closes."""
    from imagevet.store import StoreRouter

    return StoreRouter(make_registry_client(insecure=insecure, env=env))
