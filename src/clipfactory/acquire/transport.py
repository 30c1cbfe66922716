"""The fetcher's httpx transport: httpx's own, with larger socket reads.

httpcore reads at most 64 KiB from a connection per call (``AsyncHTTP11Connection.READ_NUM_BYTES``), and each
read passes through h11, httpcore and httpx in Python. asyncio already reads up to 256 KiB from the socket at a
time, so asking for more per call moves the same bytes with a quarter of the Python work on the event loop,
which is the fetcher's busiest thread. Reading more than one response's worth is safe: h11 keeps the bytes
after a response for the next one on the connection. The streams also answer the pool's "is this idle
connection readable?" question (asked of every idle connection on every request) without rebuilding anyio's
socket-attribute dict each time.

The read size is set through httpcore's public network-backend interface (a backend that wraps
:class:`httpcore.AnyIOBackend`). httpx builds its connection pool inside ``AsyncHTTPTransport``; where a
future httpx builds it differently, :func:`make_transport` keeps httpx's pool and its 64 KiB reads
(:func:`uses_large_reads` says which, and a test watches it).
"""

from __future__ import annotations

import ipaddress
import select
import ssl
from typing import Any

import httpcore
import httpx

READ_BYTES = 256 * 1024  # asyncio's own largest socket read (selector transports, max_size)


class PrivateAddressError(httpcore.ConnectError):
    """A connection reached an address that is not public (private, loopback, link-local, reserved)."""


def is_public_address(ip: str) -> bool:
    """Whether an IP address is globally routable (an IPv4-mapped IPv6 address counts as its IPv4)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global


def _readable(sock: Any) -> bool:
    """Whether a read would return at once (data, or the b"" of a closed connection), without reading."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        return bool(select.select([fd], [], [], 0)[0])
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(0))


class _LargeReadStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, read_bytes: int):
        self._inner = inner
        self._read_bytes = read_bytes
        self._sock: Any = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max(max_bytes, self._read_bytes), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _LargeReadStream(tls, self._read_bytes)

    def get_extra_info(self, info: str) -> Any:
        # The pool asks every idle connection "is_readable" on each request; anyio answers through a dict of
        # all socket attributes (a getpeername call each time), so the socket is looked up once here.
        if info == "is_readable":
            if self._sock is None:
                self._sock = self._inner.get_extra_info("socket")
            return _readable(self._sock)
        return self._inner.get_extra_info(info)


class LargeReadBackend(httpcore.AsyncNetworkBackend):
    """A network backend whose streams read up to ``read_bytes`` per call (asyncio only).

    Unless ``allow_private``, a connection whose peer is not a public address is closed before any byte is
    sent and :class:`PrivateAddressError` raised: checking the address actually connected to, not a DNS
    answer, also stops a name that resolves to a public address once and a private one the next time.
    """

    def __init__(
        self,
        read_bytes: int = READ_BYTES,
        inner: httpcore.AsyncNetworkBackend | None = None,
        allow_private: bool = True,
    ):
        self.read_bytes = read_bytes
        self.allow_private = allow_private
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        if not self.allow_private:
            peer = stream.get_extra_info("server_addr")
            ip = str(peer[0]) if peer else ""
            if not ip or not is_public_address(ip):
                await stream.aclose()
                raise PrivateAddressError(f"{host} is at {ip or 'an unknown address'}, which is not public")
        return _LargeReadStream(stream, self.read_bytes)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        if not self.allow_private:
            raise PrivateAddressError(f"unix socket {path} is not a public address")
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return _LargeReadStream(stream, self.read_bytes)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def make_transport(
    ssl_context: ssl.SSLContext,
    limits: httpx.Limits,
    read_bytes: int = READ_BYTES,
    allow_private: bool = True,
) -> httpx.AsyncHTTPTransport:
    """An HTTP/1.1 transport with no proxy (never one from the environment), ``read_bytes`` reads, and
    connections to non-public addresses refused unless ``allow_private``."""
    transport = httpx.AsyncHTTPTransport(
        verify=ssl_context, trust_env=False, http1=True, http2=False, limits=limits
    )
    if read_bytes <= 0 and allow_private:
        return transport
    if type(getattr(transport, "_pool", None)) is not httpcore.AsyncConnectionPool:
        if not allow_private:  # never fetch unscreened when screening was asked for
            raise RuntimeError(
                f"httpx {httpx.__version__} builds its connection pool differently; clipfactory cannot "
                "screen addresses with it: pin httpx<0.29 or set acquire.http.allow_private_addresses = true"
            )
        return transport
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=LargeReadBackend(max(read_bytes, 0), allow_private=allow_private),
    )
    return transport


def uses_large_reads(transport: Any) -> bool:
    pool = getattr(transport, "_pool", None)
    return isinstance(getattr(pool, "_network_backend", None), LargeReadBackend)
