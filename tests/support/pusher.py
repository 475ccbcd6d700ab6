"""An independent, test-only registry client: push and read images with plain aiohttp.

It shares no code with imagevet's own registry client, so tests can seed and inspect registries
without trusting the code under test. It handles anonymous access, HTTP Basic, and Bearer tokens
obtained from the ``Www-Authenticate`` challenge. Every function takes a registry as a base URL
or any object with ``.url`` (RunningRegistry, FakeRegistry, FaultProxy); credentials default to
the object's ``username``/``password`` attributes unless ``anonymous=True``.

Sync tests call the ``*_sync`` twins (or :func:`run_sync`); async tests await the functions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.manifest import RawManifest
from tests.support.images import Image

__all__ = [
    "ACCEPT_ALL",
    "PushError",
    "RegistryLike",
    "TestClient",
    "blob_exists",
    "blob_exists_sync",
    "delete_manifest",
    "fetch_image",
    "fetch_image_sync",
    "get_blob",
    "get_blob_sync",
    "get_manifest_bytes",
    "get_manifest_bytes_sync",
    "head_manifest",
    "list_tags",
    "list_tags_sync",
    "push_blob",
    "push_image",
    "push_image_sync",
    "push_manifest",
    "push_manifest_sync",
    "run_sync",
]

T = TypeVar("T")

ACCEPT_ALL = ", ".join(
    [
        mediatype.OCI_INDEX,
        mediatype.DOCKER_MANIFEST_LIST,
        mediatype.OCI_MANIFEST,
        mediatype.DOCKER_MANIFEST,
    ]
)
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class RegistryLike(Protocol):
    """Anything with a base URL such as ``http://127.0.0.1:5000``."""

    @property
    def url(self) -> str: ...


Target = str | RegistryLike


class PushError(RuntimeError):
    """The registry answered with an unexpected status."""

    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        self.method, self.url, self.status, self.body = method, url, status, body
        super().__init__(f"{method} {url} -> {status}: {body[:500]!r}")


@dataclass
class Response:
    """A fully read response."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class TestClient:
    """A tiny registry client; use as ``async with TestClient(target) as c``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        target: Target,
        *,
        username: str | None = None,
        password: str | None = None,
        anonymous: bool = False,
        token_server_aware: bool = True,
    ) -> None:
        self.base = (target if isinstance(target, str) else target.url).rstrip("/")
        if username is None and not anonymous and not isinstance(target, str):
            username = getattr(target, "username", None)
            password = getattr(target, "password", None)
        self.username = None if anonymous else username
        self.password = None if anonymous else password
        self.token_server_aware = token_server_aware
        self._authz: dict[str, str] = {}  # repository ("" for none) -> Authorization value
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> TestClient:
        self._session = aiohttp.ClientSession(
            auto_decompress=False, trust_env=False, timeout=aiohttp.ClientTimeout(total=60)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use TestClient in 'async with'")
        return self._session

    def _basic(self) -> str | None:
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    async def _token(self, challenge: str, repo: str) -> str | None:
        params = dict(_CHALLENGE_RE.findall(challenge))
        realm = params.get("realm")
        if not realm:
            return None
        query: list[tuple[str, str]] = []
        if "service" in params:
            query.append(("service", params["service"]))
        scope = params.get("scope")
        if scope:
            query.extend(("scope", s) for s in scope.split(" "))
        elif repo:
            query.append(("scope", f"repository:{repo}:pull"))
        headers = {}
        basic = self._basic()
        if basic:
            headers["Authorization"] = basic
        async with self.session.get(realm, params=query, headers=headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise PushError("GET", realm, resp.status, body)
            data = await resp.json(content_type=None)
        token = data.get("token") or data.get("access_token")
        return f"Bearer {token}" if token else None

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        repo: str = "",
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Iterable[int] | None = None,
        allow_redirects: bool = True,
    ) -> Response:
        """Send a request, answering one auth challenge; raise PushError unless status in ``expect``."""
        url = path_or_url if path_or_url.startswith("http") else self.base + path_or_url
        for attempt in range(2):
            hdrs = dict(headers or {})
            authz = self._authz.get(repo)
            if authz:
                hdrs["Authorization"] = authz
            if data is not None:
                hdrs.setdefault("Content-Length", str(len(data)))
            result = await self._send(method, url, data, hdrs, allow_redirects)
            challenge = result.headers.get("Www-Authenticate", "")
            if result.status != 401 or attempt == 1 or not challenge:
                break
            kind = challenge.split(" ", 1)[0].lower()
            if kind == "basic" and self._basic():
                new = self._basic()
            elif kind == "bearer" and self.token_server_aware:
                new = await self._token(challenge, repo)
            else:
                new = None
            if new is None or new == authz:
                break
            self._authz[repo] = new
        if expect is not None and result.status not in set(expect):
            raise PushError(method, url, result.status, result.body)
        return result

    async def _send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str], follow: bool
    ) -> Response:
        """One exchange; GET/HEAD redirects are followed by hand, keeping the Location byte-exact
        (aiohttp re-quotes it) and sending Authorization only to the same origin."""
        for _hop in range(6):
            target = URL(url, encoded=True)
            async with self.session.request(
                method, target, data=data, headers=headers, allow_redirects=False
            ) as resp:
                body = await resp.read()
                result = Response(resp.status, CIMultiDict(resp.headers), body, url)
            location = result.headers.get("Location")
            if not (
                follow and method in ("GET", "HEAD") and result.status in _REDIRECTS and location
            ):
                return result
            nxt = URL(location, encoded=True)
            if not nxt.is_absolute():
                nxt = target.join(nxt)
            if nxt.origin() != target.origin():
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = str(nxt)
        raise PushError(method, url, 310, b"too many redirects")

    # -- operations -------------------------------------------------------------------------

    async def blob_exists(self, repo: str, digest: Digest | str) -> bool:
        r = await self.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo=repo, expect=(200, 404))
        return r.status == 200

    async def push_blob(self, repo: str, data: bytes, digest: Digest | None = None) -> Digest:
        """Upload ``data`` (POST then one monolithic PUT) unless the blob is already there."""
        digest = digest or Digest.of(data)
        if await self.blob_exists(repo, digest):
            return digest
        r = await self.request(
            "POST", f"/v2/{repo}/blobs/uploads/", repo=repo, data=b"", expect=(202,)
        )
        location = r.headers["Location"]
        if not location.startswith("http"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        await self.request(
            "PUT",
            f"{location}{sep}digest={digest}",
            repo=repo,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            expect=(201,),
        )
        return digest

    async def push_manifest(self, repo: str, manifest: RawManifest, ref: str | None = None) -> None:
        ref = ref or str(manifest.digest)
        r = await self.request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            repo=repo,
            data=manifest.data,
            headers={"Content-Type": manifest.media_type},
            expect=(201,),
        )
        got = r.headers.get("Docker-Content-Digest")
        if got and got.startswith(manifest.digest.algorithm + ":") and got != str(manifest.digest):
            raise PushError(
                "PUT", r.url, r.status, f"registry digest {got} != {manifest.digest}".encode()
            )

    async def push_image(
        self, repo: str, image: Image, tag: str | None = None, *, skip: Iterable[Digest] = ()
    ) -> None:
        skipped = {str(d) for d in skip}
        for digest, data in image.blobs.items():
            if str(digest) not in skipped:
                await self.push_blob(repo, data, digest)
        for m in image.manifests:
            if str(m.digest) in skipped:
                continue
            if tag and m.digest == image.top.digest:
                await self.push_manifest(repo, m, tag)
            else:
                await self.push_manifest(repo, m)

    async def get_manifest(
        self, repo: str, ref: str, *, accept: str = ACCEPT_ALL
    ) -> tuple[bytes, str, str]:
        r = await self.request(
            "GET",
            f"/v2/{repo}/manifests/{ref}",
            repo=repo,
            headers={"Accept": accept},
            expect=(200,),
        )
        return r.body, r.headers.get("Content-Type", ""), r.headers.get("Docker-Content-Digest", "")

    async def head_manifest(self, repo: str, ref: str) -> Response:
        return await self.request(
            "HEAD", f"/v2/{repo}/manifests/{ref}", repo=repo, headers={"Accept": ACCEPT_ALL}
        )

    async def get_blob(self, repo: str, digest: Digest | str) -> bytes:
        r = await self.request("GET", f"/v2/{repo}/blobs/{digest}", repo=repo, expect=(200,))
        return r.body

    async def list_tags(self, repo: str, *, page_size: int | None = None) -> list[str]:
        path = f"/v2/{repo}/tags/list" + (f"?n={page_size}" if page_size else "")
        tags: list[str] = []
        while path:
            r = await self.request("GET", path, repo=repo, expect=(200, 404))
            if r.status == 404:
                return []
            tags.extend(json.loads(r.body).get("tags") or [])
            link = r.headers.get("Link", "")
            m = re.match(r"\s*<([^>]+)>", link)
            path = m.group(1) if m and 'rel="next"' in link else ""
        return tags

    async def delete_manifest(self, repo: str, digest: Digest | str) -> None:
        await self.request("DELETE", f"/v2/{repo}/manifests/{digest}", repo=repo, expect=(202,))

    async def fetch_image(self, repo: str, ref: str, *, missing_ok: bool = False) -> Image:
        """Read a manifest, its children and every blob back into an Image."""
        body, ctype, _ = await self.get_manifest(repo, ref)
        top = RawManifest.from_bytes(body, ctype or None)
        manifests: list[RawManifest] = []
        blobs: dict[Digest, bytes] = {}

        async def walk(m: RawManifest) -> None:
            for child in m.children():
                try:
                    cbody, cctype, _ = await self.get_manifest(repo, str(child.digest))
                except PushError as e:
                    if missing_ok and e.status == 404:
                        continue
                    raise
                cm = RawManifest.from_bytes(
                    cbody, cctype or child.media_type, algorithm=child.digest.algorithm
                )
                await walk(cm)
            for d in m.blobs():
                if d.digest in blobs:
                    continue
                try:
                    blobs[d.digest] = await self.get_blob(repo, d.digest)
                except PushError as e:
                    if (missing_ok or "urls" in _raw_descriptor(m, d.digest)) and e.status == 404:
                        continue
                    raise
            if m.digest not in {x.digest for x in manifests}:
                manifests.append(m)

        await walk(top)
        return Image(top=top, manifests=manifests, blobs=blobs)


def _raw_descriptor(m: RawManifest, digest: Digest) -> dict[str, Any]:
    for d in [m.json.get("config") or {}, *(m.json.get("layers") or [])]:
        if isinstance(d, dict) and d.get("digest") == str(digest):
            return d
    return {}


# -- module-level functions (the contract other tests use) ------------------------------------


async def push_image(
    registry: Target,
    repository: str,
    image: Image,
    tag: str | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    anonymous: bool = False,
    token_server_aware: bool = True,
    skip: Iterable[Digest] = frozenset(),
) -> None:
    """Push blobs (POST + monolithic PUT), then manifests children first; ``tag`` names the top."""
    async with TestClient(
        registry,
        username=username,
        password=password,
        anonymous=anonymous,
        token_server_aware=token_server_aware,
    ) as c:
        await c.push_image(repository, image, tag, skip=skip)


async def push_blob(
    registry: Target,
    repository: str,
    data: bytes,
    *,
    username: str | None = None,
    password: str | None = None,
    anonymous: bool = False,
) -> Digest:
    """Upload one blob; return its digest."""
    async with TestClient(registry, username=username, password=password, anonymous=anonymous) as c:
        return await c.push_blob(repository, data)


async def push_manifest(
    registry: Target,
    repository: str,
    manifest: RawManifest,
    ref: str,
    *,
    username: str | None = None,
    password: str | None = None,
    anonymous: bool = False,
) -> None:
    """PUT ``manifest`` at ``ref`` (a tag or its digest) with its media type as Content-Type."""
    async with TestClient(registry, username=username, password=password, anonymous=anonymous) as c:
        await c.push_manifest(repository, manifest, ref)


async def get_manifest_bytes(
    registry: Target,
    repository: str,
    ref: str,
    *,
    username: str | None = None,
    password: str | None = None,
    anonymous: bool = False,
    accept: str = ACCEPT_ALL,
) -> tuple[bytes, str, str]:
    """Return (body, Content-Type, Docker-Content-Digest) of a manifest."""
    async with TestClient(registry, username=username, password=password, anonymous=anonymous) as c:
        return await c.get_manifest(repository, ref, accept=accept)


async def head_manifest(
    registry: Target,
    repository: str,
    ref: str,
    *,
    username: str | None = None,
    password: str | None = None,
    anonymous: bool = False,
) -> Response:
    """HEAD a manifest; return the status and headers (no error on 404)."""
    async with TestClient(registry, username=username, password=password, anonymous=anonymous) as c:
        return await c.head_manifest(repository, ref)


async def blob_exists(
    registry: Target,
    repository: str,
    digest: Digest | str,
    *,
    username: str | None = None,
    password: str | None = None,
    anonymous: bool = False,
) -> bool:
    """Whether a HEAD of the blob answers 200 (404 -> False; anything else raises)."""
    async with TestClient(registry, username=username, password=password, anonymous=anonymous) as c:
        return await c.blob_exists(repository, digest)


async def get_blob(
    registry: Target,
    repository: str,
    digest: Digest | str,
    *,
    username: str | None = None,
    password: str | None = None,
    anonymous: bool = False,
) -> bytes:
    """GET a blob's bytes (following redirects)."""
    async with TestClient(registry, username=username, password=password, anonymous=anonymous) as c:
        return await c.get_blob(repository, digest)


async def list_tags(
    registry: Target,
    repository: str,
    *,
    username: str | None = None,
    password: str | None = None,
    anonymous: bool = False,
    page_size: int | None = None,
) -> list[str]:
    """Every tag of ``repository`` (following ``Link`` pagination); [] when it does not exist."""
    async with TestClient(registry, username=username, password=password, anonymous=anonymous) as c:
        return await c.list_tags(repository, page_size=page_size)


async def delete_manifest(
    registry: Target,
    repository: str,
    digest: Digest | str,
    *,
    username: str | None = None,
    password: str | None = None,
    anonymous: bool = False,
) -> None:
    """DELETE a manifest by digest."""
    async with TestClient(registry, username=username, password=password, anonymous=anonymous) as c:
        await c.delete_manifest(repository, digest)


async def fetch_image(
    registry: Target,
    repository: str,
    ref: str,
    *,
    username: str | None = None,
    password: str | None = None,
    anonymous: bool = False,
    missing_ok: bool = False,
) -> Image:
    """Read an image back (top manifest, children, blobs) for byte-for-byte comparisons."""
    async with TestClient(registry, username=username, password=password, anonymous=anonymous) as c:
        return await c.fetch_image(repository, ref, missing_ok=missing_ok)


# -- sync twins ---------------------------------------------------------------------------------


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code (in a fresh thread if a loop is already running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


def push_image_sync(
    registry: Target, repository: str, image: Image, tag: str | None = None, **kw: Any
) -> None:
    """Sync :func:`push_image`."""
    run_sync(push_image(registry, repository, image, tag, **kw))


def push_manifest_sync(
    registry: Target, repository: str, manifest: RawManifest, ref: str, **kw: Any
) -> None:
    """Sync :func:`push_manifest`."""
    run_sync(push_manifest(registry, repository, manifest, ref, **kw))


def get_manifest_bytes_sync(
    registry: Target, repository: str, ref: str, **kw: Any
) -> tuple[bytes, str, str]:
    """Sync :func:`get_manifest_bytes`."""
    return run_sync(get_manifest_bytes(registry, repository, ref, **kw))


def blob_exists_sync(registry: Target, repository: str, digest: Digest | str, **kw: Any) -> bool:
    """Sync :func:`blob_exists`."""
    return run_sync(blob_exists(registry, repository, digest, **kw))


def get_blob_sync(registry: Target, repository: str, digest: Digest | str, **kw: Any) -> bytes:
    """Sync :func:`get_blob`."""
    return run_sync(get_blob(registry, repository, digest, **kw))


def list_tags_sync(registry: Target, repository: str, **kw: Any) -> list[str]:
    """Sync :func:`list_tags`."""
    return run_sync(list_tags(registry, repository, **kw))


def fetch_image_sync(registry: Target, repository: str, ref: str, **kw: Any) -> Image:
    """Sync :func:`fetch_image`."""
    return run_sync(fetch_image(registry, repository, ref, **kw))
