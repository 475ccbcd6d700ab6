"""Round trips of one copy: what is attached to an image is looked for (the source's tag
listing, a referrers request per manifest) while its manifests and blobs are copied, not after;
what is attached is still written only after the image it refers to, and its tags last.

Overlap is shown by the order of events (:class:`RecordingStore`), never by wall time: the
target's blob uploads are held until the source's first referrers request starts; a copy that
looks for attachments only after its blobs makes them wait in vain.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from imagevet.engine.copy import copy_image
from imagevet.reference import Reference
from imagevet.registry import RegistryClient, RetryPolicy
from tests.support.images import cosign_tag, make_cosign_signature, make_multiarch
from tests.support.pusher import push_image
from tests.support.recording_store import Event, RecordingStore
from tests.support.registry_process import RunningRegistry


def _client() -> RegistryClient:
    return RegistryClient(retry=RetryPolicy.no_wait(attempts=2))


async def test_attachments_are_looked_for_while_the_blobs_are_copied(
    plain_registry: RunningRegistry, unique_repo: str
) -> None:
    image = make_multiarch(seed="overlap", platforms=("linux/amd64", "linux/arm64"))
    sig = make_cosign_signature(image.top, seed="overlap")
    await push_image(plain_registry, f"{unique_repo}/src", image, "v1")
    await push_image(plain_registry, f"{unique_repo}/src", sig, cosign_tag(image.digest, "sig"))
    src = Reference.parse(f"{plain_registry.host}/{unique_repo}/src:v1")
    dst = Reference.parse(f"{plain_registry.host}/{unique_repo}/dst:v1")
    log: list[Event] = []
    referrers_asked = asyncio.Event()

    async with _client() as source_client, _client() as target_client:
        source = RecordingStore(source_client, "source", log)
        target = RecordingStore(target_client, "target", log)
        source.signal("referrers", referrers_asked)
        target.hold("push_blob", until=referrers_asked)
        result = await copy_image(source, target, src, dst)

    assert result.digest == image.digest and not result.noop
    assert result.digest_tags == [cosign_tag(image.digest, "sig")]
    assert ("target", "push_blob", "held in vain") not in log, log
    # the tag listing and the first referrers request went out before any blob upload ended
    first_upload_done = log.index(("target", "push_blob", "end"))
    assert log.index(("source", "list_tags", "end")) < first_upload_done
    assert log.index(("source", "referrers", "start")) < first_upload_done
    # no more requests than one after the other: one listing, one referrers request per
    # manifest of the image (the index, its two platform manifests) and one for the signature
    starts = Counter((name, op) for name, op, what in log if what == "start")
    assert starts[("source", "list_tags")] == 1
    assert starts[("source", "referrers")] == 4
    # writes keep their order: the image's manifests, then the signature, the tags last
    base = f"{plain_registry.host}/{unique_repo}/dst"
    puts = target.puts
    assert puts[-1] == f"{base}:v1"
    assert puts.index(f"{base}@{image.digest}") < puts.index(f"{base}@{sig.digest}")
    assert puts.index(f"{base}@{sig.digest}") < puts.index(f"{base}:{cosign_tag(image.digest, 'sig')}")
    for child in image.top.children():
        assert puts.index(f"{base}@{child.digest}") < puts.index(f"{base}@{image.digest}")
