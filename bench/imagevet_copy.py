"""imagevet's copy engine over every tag of several repositories, in one process (bench driver).

    python bench/imagevet_copy.py SRC_HOST DST_HOST JOBS REPO...

Copies SRC_HOST/REPO:* to DST_HOST/mirror/REPO:* with one CopySession (blobs deduplicated,
``JOBS`` concurrent transfers), four images at a time, as ``imagevet copy --all-tags`` does.
"""

from __future__ import annotations

import asyncio
import sys

from imagevet.digest import is_digest_tag
from imagevet.engine.copy import CopyOptions, CopySession
from imagevet.reference import Reference
from imagevet.registry import RegistryClient


async def main(src_host: str, dst_host: str, jobs: int, repos: list[str]) -> int:
    failed = 0
    async with RegistryClient() as client:
        session = CopySession(client, client, CopyOptions(jobs=jobs))
        gate = asyncio.Semaphore(4)

        async def one(src: Reference, dst: Reference) -> None:
            nonlocal failed
            async with gate:
                try:
                    await session.copy(src, dst)
                except Exception as e:  # report and go on, like sync does
                    failed += 1
                    print(f"{src}: {e}", file=sys.stderr)

        jobs_list = []
        for repo in repos:
            src_repo = Reference.parse(f"{src_host}/{repo}")
            dst_repo = Reference.parse(f"{dst_host}/mirror/{repo}")
            for tag in await client.list_tags(src_repo):
                if not is_digest_tag(tag):
                    jobs_list.append(one(src_repo.with_tag(tag), dst_repo.with_tag(tag)))
        await asyncio.gather(*jobs_list)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:])))
