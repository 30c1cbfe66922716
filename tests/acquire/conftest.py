from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("cf_acquire_server", Path(__file__).with_name("server.py"))
server_mod = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("cf_acquire_server", server_mod)
_spec.loader.exec_module(server_mod)

_hspec = importlib.util.spec_from_file_location(
    "cf_acquire_helpers", Path(__file__).with_name("fetch_helpers.py")
)
helpers = importlib.util.module_from_spec(_hspec)
sys.modules.setdefault("cf_acquire_helpers", helpers)
_hspec.loader.exec_module(helpers)
LoopbackOnly = helpers.LoopbackOnly
allow_all = helpers.allow_all

TestServer = server_mod.TestServer
Route = server_mod.Route
fake_mp4 = server_mod.fake_mp4


@pytest.fixture
def server():
    with TestServer() as srv:
        yield srv


@pytest.fixture
def server2():
    with TestServer() as srv:
        yield srv


@pytest.fixture
def store(tmp_path):
    from clipfactory.storage import BlobStore

    return BlobStore(tmp_path / "store")


@pytest.fixture
def transport():
    return LoopbackOnly()


# Tests serve on 127.0.0.1, which the fetcher refuses by default (allow_private_addresses).
FAST = {
    "allow_private_addresses": True,
    "backoff_base_s": 0.02,
    "backoff_max_s": 0.2,
    "connect_timeout_s": 2.0,
    "read_timeout_s": 5.0,
}


@pytest.fixture
def fetch(store, transport):
    """``fetch(urls_or_sources, **options) -> (outcomes, fetcher)`` with a fresh Fetcher per call."""
    from clipfactory.acquire.http import Fetcher, FetchOptions
    from clipfactory.records import SourceRecord

    def run(items, platform_check=allow_all, **options):
        sources = [
            i if isinstance(i, SourceRecord) else SourceRecord(source_id=f"url:{n}", platform="web", url=i)
            for n, i in enumerate(items)
        ]
        opts = FetchOptions(**{**FAST, **options})

        async def go():
            async with Fetcher(opts, store, platform_check=platform_check, transport=transport) as f:
                return await f.fetch_many(sources), f

        return asyncio.run(go())

    return run
