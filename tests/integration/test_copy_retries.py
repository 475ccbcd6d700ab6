"""One retry layer per request: how many times the copy sends a failing blob request.

The rule a user can count on: a request the client may send again (a blob GET, the upload's
POST) is retried by the client's retry policy, ``RetryPolicy.attempts`` sends in all; what the
client cannot send again (a body that broke after its answer came, the one-shot upload PUT) is
restarted by the copy, ``BLOB_ATTEMPTS`` transfers in all.  Never both for one failure, and a
failure whose retries are spent is the session's answer: the next image of the run that needs
the same blob gets it at once, without sending the requests again.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from imagevet.engine.copy import BLOB_ATTEMPTS, CopySession
from imagevet.errors import CopyError
from imagevet.reference import Reference
from imagevet.registry import RegistryClient, RetryPolicy
from tests.support.images import Image, make_image

RETRY = RetryPolicy.no_wait(5)
REPO = "lib/app"


def ref(registry: Any, tag: str) -> Reference:
    return Reference.parse(f"{registry.host}/{REPO}:{tag}")


SHARED = b"one layer both images list " * 64
SHARED_HEX = hashlib.sha256(SHARED).hexdigest()


def two_images_sharing_a_layer(fake_registry_factory: Any) -> tuple[Any, str]:
    """A fake source holding ``v1`` and ``v2``, two images with one layer in common; returns
    the source and the blob path of that layer."""
    source = fake_registry_factory()
    for tag in ("v1", "v2"):
        source.seed(REPO, _image(tag), tag)
    return source, f"/v2/{REPO}/blobs/sha256:{SHARED_HEX}"


def _image(tag: str) -> Image:
    return make_image(seed=f"retries-{tag}", layer_sizes=(512,), shared_layers=(SHARED,))


async def copy_both(proxy: Any, target: Any) -> list[CopyError]:
    """Copy ``v1`` then ``v2`` in one session (the second starts after the first failed)."""
    errors = []
    async with RegistryClient(retry=RETRY) as client:
        session = CopySession(client, client)
        for tag in ("v1", "v2"):
            with pytest.raises(CopyError) as info:
                await session.copy(ref(proxy, tag), ref(target, tag))
            errors.append(info.value)
    return errors


async def test_blob_get_answered_503_every_time_is_sent_retry_attempts_times(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    """(a) The layer's GET is answered 503 every time: the client sends it RetryPolicy.attempts
    (5) times and gives up; the copy does not restart it, and the second image, which needs the
    same layer, fails with the same reason without another GET: 5 GETs for the whole run."""
    source, path = two_images_sharing_a_layer(fake_registry_factory)
    proxy = fault_proxy(source)
    proxy.fail(None, 503, method="GET", path_contains=path)
    errors = await copy_both(proxy, fake_registry_factory())
    assert all("HTTP 503" in str(e) for e in errors)
    assert proxy.count("GET", path) == RETRY.attempts == 5


async def test_body_cut_every_time_is_restarted_blob_attempts_times_for_the_whole_run(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    """(b) The layer's body is cut after 100 bytes every time: the answer came, so the client
    cannot retry it; the copy restarts the transfer, BLOB_ATTEMPTS (3) GETs, then gives up for
    the session: the second image fails with the same reason without another GET (it used to
    send 3 more, and so on for every image of a sync that lists the layer)."""
    source, path = two_images_sharing_a_layer(fake_registry_factory)
    proxy = fault_proxy(source)
    proxy.cut(path, after_bytes=100, times=None)
    errors = await copy_both(proxy, fake_registry_factory())
    assert str(errors[0]).split(": ", 1)[1] == str(errors[1]).split(": ", 1)[1]
    assert proxy.count("GET", path) == BLOB_ATTEMPTS == 3


async def test_body_cut_once_then_503_every_time_is_one_restart_then_the_client_retries(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    """The first body is cut (the copy restarts the transfer), then every GET is answered 503
    (the client retries it, 5 sends, and gives up): 1 + 5 GETs, and no restart after that."""
    source, path = two_images_sharing_a_layer(fake_registry_factory)
    proxy = fault_proxy(source)
    proxy.cut(path, after_bytes=100, times=1)
    proxy.fail(None, 503, method="GET", path_contains=path, skip=1)
    errors = await copy_both(proxy, fake_registry_factory())
    assert all("HTTP 503" in str(e) for e in errors)
    assert proxy.count("GET", path) == 1 + RETRY.attempts


async def test_upload_answered_503_every_time_is_restarted_blob_attempts_times(
    fake_registry_factory: Any, fault_proxy: Any
) -> None:
    """The target answers the upload's PUT (a one-shot stream: the client sends it once) with
    503 every time: the copy restarts the transfer from the source, BLOB_ATTEMPTS (3) PUTs and
    3 GETs of the layer for the whole run."""
    source, path = two_images_sharing_a_layer(fake_registry_factory)
    proxy = fault_proxy(source)
    target = fault_proxy(fake_registry_factory())
    hex_ = path.rsplit(":", 1)[1]
    target.fail(None, 503, method="PUT", path_contains="/blobs/uploads/")
    errors = await copy_both(proxy, target)
    assert all("HTTP 503" in str(e) for e in errors)
    puts = [r for r in target.find(method="PUT", path_contains="/blobs/uploads/") if hex_ in r.query]
    assert len(puts) == BLOB_ATTEMPTS
    assert proxy.count("GET", path) == BLOB_ATTEMPTS
