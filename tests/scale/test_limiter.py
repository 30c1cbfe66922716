"""Per-host limits shared by workers (clipfactory.limits.SharedLimits), without Ray: two fetchers stand
for two workers, against a loopback server that counts requests in flight and requests per second. On its
own each fetcher keeps its limits and together they double them; sharing one SharedLimits, together they
keep them. (tests/scale/test_ray_cluster.py runs the same through the Ray executor's actor, on two
raylets.)"""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from clipfactory import ids
from clipfactory.acquire.http import Fetcher, FetchOptions
from clipfactory.limits import SharedLimits
from clipfactory.records import SourceRecord
from clipfactory.storage import BlobStore

CountingServer = sys.modules["cf_scale_counting"].CountingServer  # loaded by conftest.py

OPTIONS = {"allow_private_addresses": True, "per_host_connections": 2, "per_host_rate": 8.0, "per_host_burst": 1}


def _sources(origin: str, n: int, first: int = 0) -> list[SourceRecord]:
    urls = [f"{origin}/v/{i}.mp4" for i in range(first, first + n)]
    return [SourceRecord(ids.url_source_id(u), "web", url=u, content_license="CC-BY-4.0") for u in urls]


async def _two_workers(srv, store, shared) -> list:
    async def worker(sources):
        async with Fetcher(FetchOptions(**OPTIONS), store, shared_limits=shared) as f:
            return await f.fetch_many(sources)

    got = await asyncio.gather(worker(_sources(srv.origin, 6)), worker(_sources(srv.origin, 6, first=6)))
    return [o for outs in got for o in outs]


@pytest.mark.parametrize("shared", [False, True], ids=["each-its-own", "shared"])
def test_two_workers_keep_the_per_host_limits_only_when_they_share_them(tmp_path, shared):
    with CountingServer(delay_s=0.4) as srv:
        outs = asyncio.run(_two_workers(srv, BlobStore(tmp_path), SharedLimits() if shared else None))
    assert [o.status for o in outs] == ["kept"] * 12
    assert len(srv.starts) == 12 + 4  # the videos, robots.txt and tdmrep.json once per worker
    if shared:
        assert srv.max_active == 2  # reached, never passed
        assert srv.most_in_window(1.0) <= 9  # 8 a second, and a burst of 1
    else:  # each keeps 2 and 8/s: together they pass both, which is what sharing prevents
        assert srv.max_active > 2
        assert srv.most_in_window(1.0) > 9


def test_slots_and_turns_by_hand():
    """Slots: the third acquire waits until a release; turns: rate 4/s with burst 1 spaces requests 0.25s
    apart; a lower rate (a Crawl-delay) slows the key for everyone; a pause delays every turn."""

    async def main():
        lim = SharedLimits()
        await lim.acquire("o", 2)
        await lim.acquire("o", 2)
        third = asyncio.ensure_future(lim.acquire("o", 2))
        await asyncio.sleep(0.01)
        assert not third.done()
        await lim.release("o")
        await asyncio.wait_for(third, 1)
        assert (await lim.stats()) == {"o": 2}
        waits = [await lim.reserve("r", 4.0, 1) for _ in range(3)]
        assert waits[0] == 0 and waits[1] == pytest.approx(0.25, abs=0.02) and waits[2] == pytest.approx(0.5, abs=0.02)
        assert await lim.reserve("c", 1.0, 1) == 0
        assert await lim.reserve("c", 0.5, 1) == pytest.approx(2.0, abs=0.02)  # slowed to one per 2s
        await lim.pause("p", 3.0)
        t = time.monotonic()
        assert await lim.reserve("p", 0.0, 1) == pytest.approx(3.0 - (time.monotonic() - t), abs=0.02)

    asyncio.run(main())
