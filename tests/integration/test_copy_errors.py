"""A failed copy keeps its typed cause: the engine and the CLI can tell a digest mismatch, an
unauthorized push, a missing image and a rate limit apart, while the text stays as it was."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from imagevet.digest import Digest
from imagevet.engine.copy import CopySession
from imagevet.errors import (
    CopyError,
    DigestMismatchError,
    ImagevetError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from imagevet.plan import Copy, Observed, Plan
from imagevet.reference import Reference
from imagevet.registry import Credential, RegistryClient, RetryPolicy, StaticCredentials
from imagevet.sync import apply_plan
from tests.support.images import make_image

RETRY = RetryPolicy.no_wait(2)
REPO = "lib/app"


def ref(registry: Any, tag: str) -> Reference:
    return Reference.parse(f"{registry.host}/{REPO}:{tag}")


async def failed_copy(source: Any, target: Any, tag: str = "v1", **client: Any) -> CopyError:
    async with RegistryClient(retry=RETRY, **client) as c:
        with pytest.raises(CopyError) as info:
            await CopySession(c, c).copy(ref(source, tag), ref(target, tag))
    return info.value


def assert_text_as_before(err: CopyError, cause: type[ImagevetError]) -> None:
    """The typed cause is kept, and the text is what it always was: ``copy S -> T: <cause>``."""
    assert isinstance(err.cause, cause)
    assert err.__cause__ is err.cause
    assert err.reason == str(err.cause)
    assert str(err) == f"copy {err.source} -> {err.target}: {err.cause}"


async def test_digest_mismatch(fake_registry_factory: Any, fault_proxy: Any) -> None:
    source = fake_registry_factory()
    image = make_image(seed="errors-mismatch", layer_sizes=(4096,))
    source.seed(REPO, image, "v1")
    proxy = fault_proxy(source)
    layer = image.top.json["layers"][-1]["digest"]
    proxy.corrupt(path_contains=f"/blobs/{layer}", offset=100, times=None)
    err = await failed_copy(proxy, fake_registry_factory())
    assert_text_as_before(err, DigestMismatchError)


async def test_not_found(fake_registry_factory: Any) -> None:
    err = await failed_copy(fake_registry_factory(), fake_registry_factory(), "absent")
    assert_text_as_before(err, NotFoundError)


async def test_unauthorized(fake_registry_factory: Any) -> None:
    source = fake_registry_factory()
    source.seed(REPO, make_image(seed="errors-unauthorized"), "v1")
    target = fake_registry_factory(require_auth=("alice", "right-pw"))
    creds = StaticCredentials({target.host: Credential("alice", "wrong-pw")})
    err = await failed_copy(source, target, credentials=creds)
    assert_text_as_before(err, UnauthorizedError)


async def test_rate_limited(fake_registry_factory: Any, fault_proxy: Any) -> None:
    source = fake_registry_factory()
    source.seed(REPO, make_image(seed="errors-ratelimited"), "v1")
    proxy = fault_proxy(source)
    proxy.fail(None, 429, retry_after="21600", path_contains="/manifests/")
    err = await failed_copy(proxy, fake_registry_factory())
    assert_text_as_before(err, RateLimitedError)


async def test_sync_apply_keeps_the_typed_error_of_a_failed_copy(
    fake_registry_factory: Any,
) -> None:
    """A failed image in a sync run: its outcome carries the CopyError (and so its typed cause)
    beside the message, which is the error's text as before."""
    source, target = fake_registry_factory(), fake_registry_factory()
    absent = Digest.of(b"no such manifest")
    action = Copy("app", ref(source, "v1").with_digest(absent), ref(target, "v1"), absent)
    async with RegistryClient(retry=RETRY) as client:
        report = await apply_plan(client, client, Plan((action,), datetime.now(UTC)), Observed())
    [outcome] = report.outcomes
    assert outcome.status == "failed"
    assert isinstance(outcome.error, CopyError)
    assert isinstance(outcome.error.cause, NotFoundError)
    assert outcome.message == str(outcome.error)
