"""The fetcher refuses private, loopback, link-local and reserved addresses unless allowed."""

from __future__ import annotations

import asyncio

import httpcore
import pytest
from cf_acquire_server import fake_mp4

from clipfactory.acquire.http import Fetcher, FetchOptions
from clipfactory.acquire.transport import LargeReadBackend, PrivateAddressError, is_public_address
from clipfactory.records import SourceRecord


def allow_all(*_a):
    return True, None


@pytest.mark.parametrize(
    "ip, public",
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata services
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_is_public_address(ip, public):
    assert is_public_address(ip) is public


def _fetch(store, url, **options):
    async def go():
        async with Fetcher(FetchOptions(**options), store, platform_check=allow_all) as f:
            return await f.fetch(SourceRecord(source_id="url:p", platform="web", url=url)), f

    return asyncio.run(go())


def test_a_private_address_is_dropped_before_any_request(server, store):
    url = server.add("/a.mp4", body=fake_mp4(5_000, 1))
    out, _ = _fetch(store, url)
    assert out.status == "dropped" and out.reason == "fetch.private_address"
    assert "127.0.0.1" in out.error and "allow_private_addresses" in out.error
    assert sum(server.hits.values()) == 0  # not even robots.txt
    out, _ = _fetch(store, url, allow_private_addresses=True, per_host_rate=0)
    assert out.status == "kept"


def test_the_connection_itself_is_checked(server, store, monkeypatch):
    # A name that resolved to a public address when asked, then connects somewhere private (DNS rebinding):
    # the transport looks at the address it actually reached and sends nothing.
    async def looks_public(self, host):
        return None

    monkeypatch.setattr(Fetcher, "_non_public_address", looks_public)
    url = server.add("/a.mp4", body=fake_mp4(5_000, 1))

    async def go():
        async with Fetcher(FetchOptions(), store, platform_check=allow_all) as f:
            origin = url.rsplit("/", 1)[0]
            f.prime_host_document(origin, "robots.txt", 0, 404, b"")
            f.prime_host_document(origin, "tdmrep.json", 0, 404, b"")
            return await f.fetch(SourceRecord(source_id="url:p", platform="web", url=url))

    out = asyncio.run(go())
    assert out.status == "dropped" and out.reason == "fetch.private_address"
    assert server.hits.get("/a.mp4", 0) == 0


def test_backend_refuses_private_peers(server):
    backend = LargeReadBackend(allow_private=False)
    host, port = server.origin.split("//")[1].split(":")

    async def go():
        await backend.connect_tcp(host, int(port), timeout=2)

    with pytest.raises(PrivateAddressError, match="not public"):
        asyncio.run(go())
    assert issubclass(PrivateAddressError, httpcore.ConnectError)


def test_private_urls_are_never_sent_to_the_spawning_registry(server, store, monkeypatch):
    from clipfactory.acquire import http

    asked: list[list[str]] = []

    class Registry:
        async def prefetch(self, urls):
            asked.append(list(urls))

        async def check(self, url):  # pragma: no cover - not reached: the private URL is dropped first
            raise AssertionError(url)

    url = server.add("/a.mp4", body=fake_mp4(5_000, 1))

    async def go():
        async with Fetcher(FetchOptions(), store, platform_check=allow_all) as f:
            f.spawning = Registry()
            return await f.fetch_many([SourceRecord(source_id="url:p", platform="web", url=url)])

    (out,) = asyncio.run(go())
    assert out.reason == "fetch.private_address"
    assert asked == [[]]
    assert http.origin_of(url)[1] == "127.0.0.1"
