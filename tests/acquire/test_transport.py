"""The fetcher's transport: httpx's own, reading up to 256 KiB per call."""

from __future__ import annotations

import asyncio

import httpcore
import httpx
from cf_acquire_server import fake_mp4

from clipfactory.acquire.http import Fetcher, FetchOptions
from clipfactory.acquire.transport import READ_BYTES, LargeReadBackend, make_transport, uses_large_reads
from clipfactory.storage import BlobStore


class _Recording(httpcore.AsyncNetworkStream):
    def __init__(self):
        self.asked: list[int] = []

    async def read(self, max_bytes, timeout=None):
        self.asked.append(max_bytes)
        return b""


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self):
        self.stream = _Recording()

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        return self.stream


def test_reads_ask_for_at_least_read_bytes():
    inner = _Backend()
    backend = LargeReadBackend(300_000, inner=inner)

    async def go():
        s = await backend.connect_tcp("127.0.0.1", 1)
        await s.read(65536)
        await s.read(1_000_000)

    asyncio.run(go())
    assert inner.stream.asked == [300_000, 1_000_000]


def test_make_transport_uses_the_large_read_backend():
    import ssl

    t = make_transport(ssl.create_default_context(), httpx.Limits(max_connections=4))
    assert uses_large_reads(t)  # fails if a new httpx builds its pool differently: see transport.py
    assert not uses_large_reads(make_transport(ssl.create_default_context(), httpx.Limits(), read_bytes=0))


def test_fetcher_clients_read_large_and_download(server, tmp_path):
    body = fake_mp4(2_000_000, 3)
    url = server.add("/big.mp4", body=body, etag='"b"')

    async def go():
        async with Fetcher(
            FetchOptions(per_host_rate=0, allow_private_addresses=True), BlobStore(tmp_path / "s")
        ) as f:
            assert all(uses_large_reads(c._transport) for c in f._clients)
            from clipfactory.records import SourceRecord

            return await f.fetch(SourceRecord(source_id="u:1", platform="web", url=url))

    out = asyncio.run(go())
    assert out.status == "kept" and out.size_bytes == len(body)
    assert READ_BYTES == 256 * 1024


def test_is_readable_tells_an_idle_socket_from_one_with_data_or_closed():
    import socket

    from clipfactory.acquire.transport import _LargeReadStream

    a, b = socket.socketpair()

    class Inner(_Recording):
        def get_extra_info(self, info):
            return a if info == "socket" else None

    s = _LargeReadStream(Inner(), 1024)
    assert s.get_extra_info("is_readable") is False
    b.send(b"x")
    assert s.get_extra_info("is_readable") is True
    a.recv(1)
    b.close()
    assert s.get_extra_info("is_readable") is True  # the peer hung up: recv would return b""
    a.close()
    assert s.get_extra_info("is_readable") is True  # no socket left


def test_writev_all_finishes_partial_writes(tmp_path, monkeypatch):
    import os

    from clipfactory.acquire import http

    real = os.writev
    calls = []

    def short(fd, bufs):  # the kernel may write less than asked: at most 5 bytes here
        calls.append(len(bufs))
        data = b"".join(bytes(b) for b in bufs)[:5]
        return real(fd, [data])

    monkeypatch.setattr(os, "writev", short)
    p = tmp_path / "f"
    with open(p, "wb") as fh:
        n = http.writev_all(fh.fileno(), [b"abc", b"", b"defgh", b"ijklmnopq"])
    assert n == 17 and p.read_bytes() == b"abcdefghijklmnopq"
    assert len(calls) == 4
