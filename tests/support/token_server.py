"""A Docker/distribution token service for tests, trusted by ``docker-registry`` (distribution 2.8).

Protocol: https://distribution.github.io/distribution/spec/auth/token/ . ``GET /token?service=S&
scope=repository:NAME:pull,push&scope=...`` with optional HTTP Basic credentials answers
``{"token", "access_token", "expires_in", "issued_at"}``. The JWT is RS256-signed and carries an
``x5c`` header with the self-signed certificate that the registry trusts via ``rootcertbundle``
(distribution 2.8 verifies the chain, then the signature with the leaf key). ``aud`` is a plain
string: 2.8 does not accept an audience list. Like Docker Hub, the grant is the intersection of
what was asked and what the ACL allows; only wrong credentials give 401.

``TokenServer.handle`` is a plain aiohttp handler, so a fake Docker Hub can mount it on its own
app; ``start()`` serves it on its own port from a background thread.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.support.server_thread import ServerThread

__all__ = [
    "DEFAULT_ISSUER",
    "DEFAULT_SERVICE",
    "Acl",
    "TokenServer",
    "default_acl",
    "parse_scope",
    "start_token_server",
]

DEFAULT_SERVICE = "imagevet-test-registry"
DEFAULT_ISSUER = "imagevet-test-issuer"

Acl = Callable[[str | None, str, set[str]], set[str]]


def default_acl(user: str | None, repository: str, wanted: set[str]) -> set[str]:
    """Named users get every action they ask for; anonymous callers get ``pull`` only."""
    if user is None:
        return wanted & {"pull"}
    return set(wanted)


def parse_scope(scope: str) -> tuple[str, str, set[str]] | None:
    """Split ``type:name:a,b`` (``name`` may not hold ``:``); None when malformed."""
    head, sep, actions = scope.rpartition(":")
    kind, sep2, name = head.partition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    return kind, name, {a for a in actions.split(",") if a}


def _make_key_and_cert(common_name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


class TokenServer:
    """Issue registry tokens for ``users`` under ``acl``; log every request (never a password)."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, str] | None = None,
        acl: Acl = default_acl,
        expires_in: int = 300,
        service: str = DEFAULT_SERVICE,
        issuer: str = DEFAULT_ISSUER,
    ) -> None:
        self.service = service
        self.issuer = issuer
        self.users: dict[str, str] = dict(users or {})
        self.acl: Acl = acl
        self.expires_in = expires_in
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._lock = threading.Lock()
        self._server: ServerThread | None = None
        self._key, self._cert = _make_key_and_cert(issuer)
        workdir.mkdir(parents=True, exist_ok=True)
        self.cert_pem_path = workdir / "token-signer.crt"
        self.cert_pem_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()

    @property
    def realm(self) -> str:
        """The realm a registry sends in its Bearer challenge: ``url + "/token"``."""
        if not self.url:
            raise RuntimeError("token server not started (or mounted elsewhere: use that realm)")
        return self.url + "/token"

    def app(self) -> web.Application:
        """An aiohttp app serving ``GET /token`` and the OAuth2 ``POST /token`` password grant."""
        app = web.Application()
        app.router.add_get("/token", self.handle)
        app.router.add_post("/token", self.handle_oauth)
        return app

    def start(self) -> TokenServer:
        """Serve on a free port of 127.0.0.1 from a background thread; return self."""
        self._server = ServerThread([self.app()], name="token-server")
        (port,) = self._server.start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Stop serving; idempotent."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- issuing ----------------------------------------------------------------------------

    def grant(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        """The ``access`` claim for ``scopes``: the intersection of asked and allowed."""
        merged: dict[tuple[str, str], set[str]] = {}
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            kind, name, wanted = parsed
            if kind == "repository":
                got = set(self.acl(user, name, set(wanted)))
                if "*" in got:
                    got = set(wanted)
                got &= wanted
            else:  # e.g. registry:catalog:*
                got = set(wanted) if user is not None else set()
            merged.setdefault((kind, name), set()).update(got)
        return [
            {"type": kind, "name": name, "actions": sorted(actions)}
            for (kind, name), actions in merged.items()
            if actions
        ]

    def issue(self, user: str | None, scopes: list[str], *, audience: str | None = None) -> str:
        """Sign a JWT for ``user`` granting ``scopes`` (as allowed by the ACL)."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": audience or self.service,  # a string: distribution 2.8 rejects a list
            "exp": now + self.expires_in,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": self.grant(user, scopes),
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"x5c": [self._x5c]})

    def verify(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """Decode and check a token issued here (signature, expiry, issuer, audience)."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self._cert.public_key(),  # type: ignore[arg-type]
            algorithms=["RS256"],
            audience=audience or self.service,
            issuer=self.issuer,
            leeway=5,
        )
        return claims

    def _record(self, user: str | None, scopes: list[str], status: int, method: str) -> None:
        with self._lock:
            self.requests.append(
                {"user": user, "scopes": scopes, "status": status, "method": method}
            )

    def _check_basic(self, header: str | None) -> tuple[bool, str | None]:
        """(credentials ok, user); no header means anonymous."""
        if not header:
            return True, None
        kind, _, value = header.partition(" ")
        if kind.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        return self._check_password(user, password), user

    def _check_password(self, user: str, password: str) -> bool:
        expected = self.users.get(user)
        return expected is not None and secrets.compare_digest(expected, password)

    def _unauthorized(self) -> web.Response:
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password"}]}
        return web.json_response(
            body, status=401, headers={"WWW-Authenticate": f'Basic realm="{self.issuer}"'}
        )

    def _token_response(self, user: str | None, scopes: list[str], service: str) -> dict[str, Any]:
        token = self.issue(user, scopes, audience=service)
        issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": issued,
        }

    async def handle(self, request: web.Request) -> web.Response:
        """``GET /token``: the distribution token protocol (mountable on any aiohttp app)."""
        scopes = request.query.getall("scope", [])
        service = request.query.get("service", self.service)
        ok, user = self._check_basic(request.headers.get("Authorization"))
        if not ok:
            self._record(user, scopes, 401, "GET")
            return self._unauthorized()
        if service != self.service:
            self._record(user, scopes, 400, "GET")
            body = {"errors": [{"code": "DENIED", "message": f"unknown service {service!r}"}]}
            return web.json_response(body, status=400)
        self._record(user, scopes, 200, "GET")
        return web.json_response(self._token_response(user, scopes, service))

    async def handle_oauth(self, request: web.Request) -> web.Response:
        """``POST /token`` with ``grant_type=password`` (the OAuth2 form Docker clients also use)."""
        form = await request.post()
        scopes = [s for s in str(form.get("scope", "")).split(" ") if s]
        user = str(form.get("username", "")) or None
        if form.get("grant_type") != "password" or user is None:
            self._record(user, scopes, 400, "POST")
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if not self._check_password(user, str(form.get("password", ""))):
            self._record(user, scopes, 401, "POST")
            return self._unauthorized()
        service = str(form.get("service", self.service))
        self._record(user, scopes, 200, "POST")
        out = self._token_response(user, scopes, service)
        out["scope"] = " ".join(scopes)
        return web.json_response(out)

    def decode_unverified(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` without checking it (for assertions on grants)."""
        payload = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def start_token_server(
    workdir: Path,
    *,
    users: Mapping[str, str] | None = None,
    acl: Acl = default_acl,
    expires_in: int = 300,
    service: str = DEFAULT_SERVICE,
    issuer: str = DEFAULT_ISSUER,
) -> TokenServer:
    """Create a token server with a fresh key and certificate in ``workdir`` and start it."""
    server = TokenServer(
        workdir, users=users, acl=acl, expires_in=expires_in, service=service, issuer=issuer
    )
    return server.start()
