from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import httpx
import pytest

_spec = importlib.util.spec_from_file_location("cf_acquire_server", Path(__file__).with_name("server.py"))
server_mod = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("cf_acquire_server", server_mod)
_spec.loader.exec_module(server_mod)

TestServer = server_mod.TestServer
Route = server_mod.Route
fake_mp4 = server_mod.fake_mp4


class LoopbackOnly(httpx.AsyncHTTPTransport):
    """A transport that refuses any host but 127.0.0.1, so no test can reach another machine."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.refused: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "127.0.0.1":
            self.refused.append(str(request.url))
            raise httpx.ConnectError(f"tests only talk to 127.0.0.1, not {request.url.host}", request=request)
        return await super().handle_async_request(request)


def allow_all(platform, host, source_id=None):
    return True, None


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


FAST = {"backoff_base_s": 0.02, "backoff_max_s": 0.2, "connect_timeout_s": 2.0, "read_timeout_s": 5.0}


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


def leftovers(store) -> list[str]:
    """Files under incoming/ (partial downloads and temporaries)."""
    d = Path(store.root) / "incoming"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []
