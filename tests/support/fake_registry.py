"""An in-memory OCI distribution registry (spec 1.1) on aiohttp.web, for copier tests.

It serves ``/v2/`` ping, blob HEAD/GET/DELETE (GET may redirect to a second "storage" origin on
another port, whose requests are logged so tests can check that no ``Authorization`` leaked), uploads
(POST with ``mount``/``from`` or single-POST ``digest``, chunked PATCH, PUT with digest check),
manifests by tag or digest (exact bytes and content type kept), tag listing with ``n``/``last`` and
``Link`` pagination, ``_catalog``, and the native referrers API with ``artifactType`` filtering.

Auth is off, HTTP Basic (``require_auth=(user, password)``) or Bearer tokens from a
:class:`~tests.support.token_server.TokenServer` (``token_server=``), checked per repository and
action like distribution does. State lives in plain dicts for assertions: ``blobs[repo][digest]``,
``manifests[repo][digest]`` (RawManifest with the stored Content-Type as media type) and
``tags[repo][tag]``; ``seed()``/``put_blob()``/``put_manifest()`` fill them without HTTP.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from imagevet import mediatype
from imagevet.digest import Digest
from imagevet.errors import InvalidDigestError
from imagevet.manifest import RawManifest
from tests.support.fault_proxy import RequestRecord
from tests.support.images import Image
from tests.support.server_thread import ServerThread
from tests.support.token_server import TokenServer

__all__ = ["FakeRegistry", "RegistryFault", "start_fake_registry"]

_NAME_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)
_ROUTES = [
    ("ping", re.compile(r"^/v2/?$")),
    ("catalog", re.compile(r"^/v2/_catalog$")),
    ("tags", re.compile(r"^/v2/(?P<name>.+)/tags/list$")),
    ("manifest", re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")),
    ("upload", re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<uuid>[^/]*)$")),
    ("blob", re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$")),
    ("referrers", re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$")),
]
# Deliberately awkward for URL libraries that re-quote (aiohttp#7183): must come back byte-exact.
_SIGNATURE = "ab%2Bcd%3D%27ef%2F"


class RegistryFault(Exception):
    """An error answer with a distribution error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.detail = status, code, message, detail
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = {"errors": [{"code": self.code, "message": self.message, "detail": self.detail}]}
        return web.json_response(body, status=self.status, headers=self.headers)


@dataclass
class _Upload:
    repo: str
    state: str
    data: bytearray = field(default_factory=bytearray)


class FakeRegistry:
    """The in-memory registry; ``start()`` serves it and its storage origin on two free ports."""

    def __init__(
        self,
        *,
        require_auth: tuple[str, str] | None = None,
        token_server: TokenServer | None = None,
        referrers_api: bool = True,
        redirect_blobs: bool = False,
        mount: bool = True,
        check_blobs: bool = True,
        check_children: bool = True,
        tags_page_size: int | None = None,
    ) -> None:
        self.require_auth = require_auth
        self.token_server = token_server
        self.referrers_api = referrers_api
        self.redirect_blobs = redirect_blobs
        self.mount = mount
        self.check_blobs = check_blobs
        self.check_children = check_children
        self.tags_page_size = tags_page_size
        self.username: str | None = require_auth[0] if require_auth else None
        self.password: str | None = require_auth[1] if require_auth else None
        if token_server is not None and token_server.users:
            self.username, self.password = next(iter(token_server.users.items()))
        self.blobs: dict[str, dict[Digest, bytes]] = {}
        self.manifests: dict[str, dict[Digest, RawManifest]] = {}
        self.tags: dict[str, dict[str, Digest]] = {}
        self.uploads: dict[str, _Upload] = {}
        self.requests: list[RequestRecord] = []
        self.storage_requests: list[RequestRecord] = []
        self.url = self.host = self.storage_url = ""
        self._signed: dict[str, bytes] = {}  # raw query string -> blob bytes
        self._lock = threading.RLock()
        self._server: ServerThread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeRegistry:
        api, storage = web.Application(client_max_size=0), web.Application()
        api.router.add_route("*", "/{tail:.*}", self._handle)
        storage.router.add_route("*", "/{tail:.*}", self._handle_storage)
        self._server = ServerThread([api, storage], name="fake-registry")
        port, storage_port = self._server.start()
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"
        self.storage_url = f"http://127.0.0.1:{storage_port}"
        return self

    def stop(self) -> None:
        """Stop serving; idempotent. The stored content stays readable."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- direct access (no HTTP) -----------------------------------------------------------------

    def put_blob(self, repo: str, data: bytes, digest: Digest | None = None) -> Digest:
        """Store a blob in ``repo`` without HTTP."""
        digest = digest or Digest.of(data)
        with self._lock:
            self.blobs.setdefault(repo, {})[digest] = data
        return digest

    def put_manifest(self, repo: str, manifest: RawManifest, tag: str | None = None) -> None:
        """Store a manifest (and tag it) without HTTP or reference checks."""
        with self._lock:
            self.manifests.setdefault(repo, {})[manifest.digest] = manifest
            if tag:
                self.tags.setdefault(repo, {})[tag] = manifest.digest

    def seed(self, repo: str, image: Image, tag: str | None = None) -> None:
        """Store a whole image without HTTP; ``tag`` names its top manifest."""
        for digest, data in image.blobs.items():
            self.put_blob(repo, data, digest)
        for m in image.manifests:
            self.put_manifest(repo, m, tag if m.digest == image.top.digest else None)

    def manifest(self, repo: str, ref: str) -> RawManifest:
        """The stored manifest at a tag or digest (KeyError when absent)."""
        found = self._resolve(repo, ref)
        if found is None:
            raise KeyError(f"{repo}:{ref}")
        return found

    def has_blob(self, repo: str, digest: Digest | str) -> bool:
        return self._blob(repo, str(digest)) is not None

    def referrers(
        self, repo: str, subject: Digest | str, artifact_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Descriptors of the manifests in ``repo`` whose ``subject`` is ``subject``."""
        out = []
        with self._lock:
            stored = list(self.manifests.get(repo, {}).values())
        for m in stored:
            try:
                subj = m.subject
            except Exception:
                continue
            if subj is None or str(subj.digest) != str(subject):
                continue
            at = m.artifact_type
            if artifact_type is not None and at != artifact_type:
                continue
            d: dict[str, Any] = {"mediaType": m.media_type, "digest": str(m.digest), "size": m.size}
            if at:
                d["artifactType"] = at
            ann = m.json.get("annotations")
            if ann:
                d["annotations"] = dict(ann)
            out.append(d)
        return sorted(out, key=lambda d: d["digest"])

    def find(
        self, method: str | None = None, path_contains: str | None = None, status: int | None = None
    ) -> list[RequestRecord]:
        """Logged API requests matching all the given filters."""
        return [
            r
            for r in list(self.requests)
            if (method is None or r.method == method.upper())
            and (path_contains is None or path_contains in r.path)
            and (status is None or r.status == status)
        ]

    def count(
        self, method: str | None = None, path_contains: str | None = None, status: int | None = None
    ) -> int:
        return len(self.find(method, path_contains, status))

    # -- lookups -----------------------------------------------------------------------------------

    def _blob(self, repo: str, digest: str) -> bytes | None:
        with self._lock:
            for d, data in self.blobs.get(repo, {}).items():
                if str(d) == digest:
                    return data
        return None

    def _resolve(self, repo: str, ref: str) -> RawManifest | None:
        with self._lock:
            stored = self.manifests.get(repo, {})
            if ":" not in ref:
                d = self.tags.get(repo, {}).get(ref)
                return stored.get(d) if d is not None else None
            try:
                want = Digest.parse(ref)
            except InvalidDigestError:
                return None
            if want in stored:
                return stored[want]
            for m in stored.values():  # the same bytes asked for by another algorithm
                if Digest.of(m.data, want.algorithm) == want:
                    return m
        return None

    # -- auth ----------------------------------------------------------------------------------------

    def _authorize(self, request: web.Request, repo: str | None, actions: set[str]) -> set[str]:
        """Raise a 401 unless the request may do ``actions`` on ``repo``; return the granted pulls."""
        header = request.headers.get("Authorization", "")
        if self.require_auth is not None:
            kind, _, value = header.partition(" ")
            try:
                user, _, pw = base64.b64decode(value).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = pw = ""
            if kind.lower() != "basic" or (user, pw) != self.require_auth:
                raise RegistryFault(
                    401,
                    "UNAUTHORIZED",
                    "authentication required",
                    headers={"WWW-Authenticate": 'Basic realm="fake-registry"'},
                )
            return {"*"}
        ts = self.token_server
        if ts is None:
            return {"*"}
        scope = f"repository:{repo}:{','.join(sorted(actions))}" if repo else ""
        challenge = f'Bearer realm="{ts.realm}",service="{ts.service}"' + (
            f',scope="{scope}"' if scope else ""
        )
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer":
            raise RegistryFault(
                401,
                "UNAUTHORIZED",
                "authentication required",
                headers={"WWW-Authenticate": challenge},
            )
        try:
            claims = ts.verify(token)
        except Exception as e:
            raise RegistryFault(
                401,
                "UNAUTHORIZED",
                f"invalid token: {e}",
                headers={"WWW-Authenticate": challenge + ',error="invalid_token"'},
            ) from None
        granted: dict[str, set[str]] = {}
        for entry in claims.get("access") or []:
            if entry.get("type") == "repository":
                granted.setdefault(entry["name"], set()).update(entry.get("actions") or [])
        if repo and not actions <= granted.get(repo, set()):
            raise RegistryFault(
                401,
                "UNAUTHORIZED",
                "authentication required",
                detail=[{"Type": "repository", "Name": repo, "Action": a} for a in sorted(actions)],
                headers={"WWW-Authenticate": challenge + ',error="insufficient_scope"'},
            )
        return {name for name, acts in granted.items() if "pull" in acts}

    # -- dispatch --------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = RequestRecord(
            request.method,
            request.rel_url.raw_path,
            request.rel_url.raw_query_string,
            headers=CIMultiDict(request.headers),
        )
        self.requests.append(record)
        try:
            resp = await self._dispatch(request)
        except RegistryFault as e:
            resp = e.response()
        resp.headers.setdefault("Docker-Distribution-Api-Version", "registry/2.0")
        record.status = resp.status
        record.response_headers = CIMultiDict(resp.headers)
        return resp

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        for kind, rx in _ROUTES:
            m = rx.match(path)
            if m is None:
                continue
            params = m.groupdict()
            if kind == "ping":
                self._authorize(request, None, set())
                return web.json_response({})
            if kind == "catalog":
                self._authorize(request, None, set())
                with self._lock:
                    repos = sorted(set(self.manifests) | set(self.blobs))
                return web.json_response({"repositories": repos})
            name = params["name"]
            if not _NAME_RE.match(name) or len(name) > 255:
                raise RegistryFault(400, "NAME_INVALID", f"invalid repository name {name!r}")
            handler = getattr(self, f"_{kind}_{method.lower()}", None)
            if handler is None:
                raise RegistryFault(405, "UNSUPPORTED", f"{method} not supported on {kind}")
            result: web.StreamResponse = await handler(request, **params)
            return result
        return web.Response(status=404, text="404 page not found\n")

    # -- blobs --------------------------------------------------------------------------------------------

    def _parse_digest(self, text: str, code: str = "DIGEST_INVALID") -> Digest:
        try:
            return Digest.parse(text)
        except InvalidDigestError:
            raise RegistryFault(400, code, f"invalid digest {text!r}") from None

    def _blob_or_404(self, name: str, digest: str) -> bytes:
        data = self._blob(name, str(self._parse_digest(digest)))
        if data is None:
            raise RegistryFault(404, "BLOB_UNKNOWN", "blob unknown to registry", detail=digest)
        return data

    async def _blob_head(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        self._authorize(request, name, {"pull"})
        try:
            data = self._blob_or_404(name, digest)
        except RegistryFault as e:
            return web.Response(status=e.status)  # HEAD: no body
        headers = {
            "Docker-Content-Digest": digest,
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data)),
        }
        return web.Response(status=200, headers=headers)

    async def _blob_get(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        self._authorize(request, name, {"pull"})
        data = self._blob_or_404(name, digest)
        if self.redirect_blobs:
            query = f"X-Amz-Signature={_SIGNATURE}{secrets.token_hex(4)}&X-Amz-Expires=300"
            with self._lock:
                self._signed[query] = data
            location = f"{self.storage_url}/storage/{digest}?{query}"
            return web.Response(
                status=307, headers={"Location": location, "Docker-Content-Digest": digest}
            )
        return _serve_bytes(request, data, {"Docker-Content-Digest": digest})

    async def _blob_delete(
        self, request: web.Request, name: str, digest: str
    ) -> web.StreamResponse:
        self._authorize(request, name, {"delete"})
        self._blob_or_404(name, digest)
        with self._lock:
            self.blobs[name].pop(self._parse_digest(digest), None)
        return web.Response(status=202)

    async def _handle_storage(self, request: web.Request) -> web.StreamResponse:
        raw_query = request.rel_url.raw_query_string
        record = RequestRecord(
            request.method,
            request.rel_url.raw_path,
            raw_query,
            headers=CIMultiDict(request.headers),
        )
        self.storage_requests.append(record)
        with self._lock:
            data = self._signed.get(raw_query)
        if data is None:
            resp: web.StreamResponse = web.Response(
                status=403,
                text="<Error><Code>SignatureDoesNotMatch</Code></Error>",
                content_type="application/xml",
            )
        else:
            resp = _serve_bytes(request, data, {})
        record.status = resp.status
        return resp

    # -- uploads ---------------------------------------------------------------------------------------------

    def _upload_location(self, name: str, upload_id: str) -> str:
        return f"/v2/{name}/blobs/uploads/{upload_id}?_state={self.uploads[upload_id].state}"

    def _new_upload(self, name: str) -> web.Response:
        upload_id = str(uuid.uuid4())
        with self._lock:
            self.uploads[upload_id] = _Upload(name, secrets.token_urlsafe(12))
        headers = {
            "Location": self._upload_location(name, upload_id),
            "Range": "0-0",
            "Docker-Upload-UUID": upload_id,
            "Content-Length": "0",
        }
        return web.Response(status=202, headers=headers)

    def _finish(self, name: str, digest_text: str, data: bytes) -> web.Response:
        digest = self._parse_digest(digest_text)
        if Digest.of(data, digest.algorithm) != digest:
            raise RegistryFault(
                400,
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
                detail=digest_text,
            )
        self.put_blob(name, data, digest)
        headers = {
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
            "Content-Length": "0",
        }
        return web.Response(status=201, headers=headers)

    async def _upload_post(self, request: web.Request, name: str, uuid: str) -> web.StreamResponse:
        if uuid:
            raise RegistryFault(405, "UNSUPPORTED", "POST to an upload session")
        pullable = self._authorize(request, name, {"pull", "push"})
        mount, source = request.query.get("mount"), request.query.get("from")
        if mount and source and self.mount and ("*" in pullable or source in pullable):
            data = self._blob(source, str(self._parse_digest(mount)))
            if data is not None:
                self.put_blob(name, data, Digest.parse(mount))
                headers = {
                    "Location": f"/v2/{name}/blobs/{mount}",
                    "Docker-Content-Digest": mount,
                    "Content-Length": "0",
                }
                return web.Response(status=201, headers=headers)
        if "digest" in request.query:
            return self._finish(name, request.query["digest"], await request.read())
        await request.read()
        return self._new_upload(name)

    def _session(self, request: web.Request, name: str, upload_id: str) -> _Upload:
        with self._lock:
            up = self.uploads.get(upload_id)
        if up is None or up.repo != name:
            raise RegistryFault(
                404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", detail=upload_id
            )
        if request.query.get("_state") != up.state:
            raise RegistryFault(
                400, "BLOB_UPLOAD_INVALID", "missing or stale _state: keep the Location query"
            )
        return up

    async def _upload_patch(self, request: web.Request, name: str, uuid: str) -> web.StreamResponse:
        self._authorize(request, name, {"pull", "push"})
        up = self._session(request, name, uuid)
        chunk = await request.read()
        content_range = request.headers.get("Content-Range")
        if content_range:
            m = re.fullmatch(r"(?:bytes )?(\d+)-(\d+)", content_range.strip())
            if (
                m is None
                or int(m.group(1)) != len(up.data)
                or int(m.group(2)) - int(m.group(1)) + 1 != len(chunk)
            ):
                raise RegistryFault(
                    416,
                    "BLOB_UPLOAD_INVALID",
                    f"bad Content-Range {content_range!r} at {len(up.data)}",
                )
        up.data.extend(chunk)
        up.state = secrets.token_urlsafe(12)
        headers = {
            "Location": self._upload_location(name, uuid),
            "Range": f"0-{max(len(up.data) - 1, 0)}",
            "Docker-Upload-UUID": uuid,
            "Content-Length": "0",
        }
        return web.Response(status=202, headers=headers)

    async def _upload_put(self, request: web.Request, name: str, uuid: str) -> web.StreamResponse:
        self._authorize(request, name, {"pull", "push"})
        up = self._session(request, name, uuid)
        if "digest" not in request.query:
            raise RegistryFault(400, "DIGEST_INVALID", "digest query parameter missing")
        data = bytes(up.data) + await request.read()
        with self._lock:
            self.uploads.pop(uuid, None)
        return self._finish(name, request.query["digest"], data)

    async def _upload_get(self, request: web.Request, name: str, uuid: str) -> web.StreamResponse:
        self._authorize(request, name, {"pull"})
        up = self._session(request, name, uuid)
        headers = {
            "Location": self._upload_location(name, uuid),
            "Range": f"0-{max(len(up.data) - 1, 0)}",
            "Docker-Upload-UUID": uuid,
        }
        return web.Response(status=204, headers=headers)

    async def _upload_delete(
        self, request: web.Request, name: str, uuid: str
    ) -> web.StreamResponse:
        self._authorize(request, name, {"pull", "push"})
        self._session(request, name, uuid)
        with self._lock:
            self.uploads.pop(uuid, None)
        return web.Response(status=204)

    # -- manifests ---------------------------------------------------------------------------------------------

    def _manifest_or_404(self, name: str, ref: str) -> RawManifest:
        m = self._resolve(name, ref)
        if m is None:
            raise RegistryFault(
                404, "MANIFEST_UNKNOWN", "manifest unknown", detail={"Name": name, "Revision": ref}
            )
        return m

    def _manifest_headers(self, m: RawManifest, ref: str) -> dict[str, str]:
        digest = (
            ref if ":" in ref else str(m.digest)
        )  # a digest asked by another algorithm echoes back
        return {
            "Content-Type": m.media_type,
            "Docker-Content-Digest": digest,
            "Content-Length": str(m.size),
        }

    async def _manifest_head(self, request: web.Request, name: str, ref: str) -> web.StreamResponse:
        self._authorize(request, name, {"pull"})
        m = self._resolve(name, ref)
        if m is None:
            return web.Response(status=404)
        return web.Response(status=200, headers=self._manifest_headers(m, ref))

    async def _manifest_get(self, request: web.Request, name: str, ref: str) -> web.StreamResponse:
        self._authorize(request, name, {"pull"})
        m = self._manifest_or_404(name, ref)
        headers = self._manifest_headers(m, ref)
        del headers["Content-Length"]
        return web.Response(status=200, body=m.data, headers=headers)

    def _check_references(self, name: str, m: RawManifest) -> None:
        missing: list[str] = []
        if m.is_index and self.check_children:
            missing += [
                str(d.digest) for d in m.children() if self._resolve(name, str(d.digest)) is None
            ]
        if not m.is_index and self.check_blobs:
            raw = [m.json.get("config"), *(m.json.get("layers") or [])]
            for d, obj in zip(m.blobs(), raw, strict=False):
                if isinstance(obj, dict) and obj.get("urls"):
                    continue  # non-distributable: need not be here
                if self._blob(name, str(d.digest)) is None:
                    missing.append(str(d.digest))
        if missing:
            raise RegistryFault(
                400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", detail=missing
            )

    async def _manifest_put(self, request: web.Request, name: str, ref: str) -> web.StreamResponse:
        self._authorize(request, name, {"pull", "push"})
        data = await request.read()
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        if ":" in ref:
            want = self._parse_digest(ref)
            m = RawManifest(ctype, data, Digest.of(data, want.algorithm))
            if m.digest != want:
                raise RegistryFault(
                    400,
                    "DIGEST_INVALID",
                    "provided digest did not match uploaded content",
                    detail=ref,
                )
        else:
            if not _TAG_RE.match(ref):
                raise RegistryFault(400, "TAG_INVALID", f"invalid tag {ref!r}")
            m = RawManifest(ctype, data, Digest.of(data))
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RegistryFault(400, "MANIFEST_INVALID", "manifest is not JSON") from None
        if not isinstance(body, dict) or not ctype:
            raise RegistryFault(
                400, "MANIFEST_INVALID", "manifest must be a JSON object sent with a Content-Type"
            )
        if "mediaType" in body and body["mediaType"] != ctype:
            raise RegistryFault(
                400,
                "MANIFEST_INVALID",
                f"mediaType {body['mediaType']!r} != Content-Type {ctype!r}",
            )
        self._check_references(name, m)
        self.put_manifest(name, m, None if ":" in ref else ref)
        headers = {
            "Location": f"/v2/{name}/manifests/{m.digest}",
            "Docker-Content-Digest": str(m.digest),
            "Content-Length": "0",
        }
        if (
            self.referrers_api
            and isinstance(body.get("subject"), dict)
            and "digest" in body["subject"]
        ):
            headers["OCI-Subject"] = str(body["subject"]["digest"])
        return web.Response(status=201, headers=headers)

    async def _manifest_delete(
        self, request: web.Request, name: str, ref: str
    ) -> web.StreamResponse:
        self._authorize(request, name, {"delete"})
        with self._lock:
            if ":" not in ref:
                if self.tags.get(name, {}).pop(ref, None) is None:
                    raise RegistryFault(
                        404,
                        "MANIFEST_UNKNOWN",
                        "manifest unknown",
                        detail={"Name": name, "Revision": ref},
                    )
                return web.Response(status=202)
            m = self._manifest_or_404(name, ref)
            del self.manifests[name][m.digest]
            for tag, d in list(self.tags.get(name, {}).items()):
                if d == m.digest:
                    del self.tags[name][tag]
        return web.Response(status=202)

    # -- tags, referrers ----------------------------------------------------------------------------------------

    async def _tags_get(self, request: web.Request, name: str) -> web.StreamResponse:
        self._authorize(request, name, {"pull"})
        with self._lock:
            if name not in self.tags and name not in self.manifests:
                raise RegistryFault(
                    404,
                    "NAME_UNKNOWN",
                    "repository name not known to registry",
                    detail={"name": name},
                )
            tags = sorted(self.tags.get(name, {}))
        last = request.query.get("last")
        if last is not None:
            tags = [t for t in tags if t > last]
        n_text = request.query.get("n")
        n = int(n_text) if n_text is not None and n_text.isdigit() else None
        if self.tags_page_size is not None:
            n = min(n, self.tags_page_size) if n is not None else self.tags_page_size
        headers = {}
        if n is not None and len(tags) > n:
            tags = tags[:n]
            if tags:
                headers["Link"] = f'</v2/{name}/tags/list?n={n}&last={tags[-1]}>; rel="next"'
        return web.json_response({"name": name, "tags": tags}, headers=headers)

    async def _referrers_get(
        self, request: web.Request, name: str, digest: str
    ) -> web.StreamResponse:
        if not self.referrers_api:
            return web.Response(status=404, text="404 page not found\n")
        self._authorize(request, name, {"pull"})
        self._parse_digest(digest, "DIGEST_INVALID")
        artifact_type = request.query.get("artifactType")
        body = {
            "schemaVersion": 2,
            "mediaType": mediatype.OCI_INDEX,
            "manifests": self.referrers(name, digest, artifact_type),
        }
        headers = {"Content-Type": mediatype.OCI_INDEX}
        if artifact_type is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
        return web.Response(status=200, body=json.dumps(body).encode(), headers=headers)


def _serve_bytes(request: web.Request, data: bytes, headers: dict[str, str]) -> web.Response:
    """200 with ``data``, or 206 for a single ``Range: bytes=a-b``."""
    hdrs = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", **headers}
    rng = request.headers.get("Range")
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip()) if rng else None
    if m:
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        if start > end:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        hdrs["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return web.Response(status=206, body=data[start : end + 1], headers=hdrs)
    return web.Response(status=200, body=data, headers=hdrs)


def start_fake_registry(**options: Any) -> FakeRegistry:
    """Create and start a FakeRegistry with ``options`` (see its constructor)."""
    return FakeRegistry(**options).start()
