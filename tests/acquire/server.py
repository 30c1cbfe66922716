"""A real HTTP server on 127.0.0.1 for the fetcher's tests and benchmark.

Each path has a :class:`Route`: status, headers (a list, so a header may repeat), body, and behaviours such as
"answer 429 twice, then 200", a slow body, a body shorter than its Content-Length, a redirect, or huge
headers. Static bodies honour ``Range`` and ``If-Range`` (against the route's ETag) like a real file server.
The server counts requests per path and keeps their headers, so tests can assert what was asked.

Run it as a program to serve in another process (the benchmark does, so the fetcher's CPU time is its own)::

    python tests/acquire/server.py --files 64:65536 --files 8:33554432
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SENDFILE_BYTES = 1024 * 1024  # bodies this large are sent with sendfile(2) by the fast server


def fake_mp4(size: int, seed: int = 0) -> bytes:
    """A well-formed ISO BMFF box sequence (``ftyp``, then one ``mdat`` filling the rest), deterministic
    per ``seed``: it sniffs as MP4 and C2PA readers parse it (it has no manifest)."""
    size = max(size, 32)
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + struct.pack(">I", size - 24) + b"mdat"
    block = hashlib.sha256(f"clipfactory-test-{seed}".encode()).digest() * 2048
    body = bytearray(head)
    while len(body) < size:
        body += block
    return bytes(body[:size])


@dataclass
class Route:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = "video/mp4"
    fail_times: int = 0  # answer fail_status this many times first
    fail_status: int = 429
    fail_headers: list[tuple[str, str]] = field(default_factory=list)
    redirect: str | None = None  # Location for a 3xx status
    delay_s: float = 0.0  # before the status line
    chunk_delay_s: float = 0.0  # between body chunks
    chunk_size: int = 64 * 1024
    truncate_at: int | None = None  # send only this many body bytes, then close
    truncate_times: int = 1_000_000  # ... on this many requests
    huge_headers: int = 0  # add this many bytes of junk headers
    ranges: bool = True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: TestServer.HTTPServer  # type: ignore[name-defined]

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_HEAD(self):  # noqa: N802
        self._serve(head=True)

    def do_GET(self):  # noqa: N802
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner: TestServer = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        with owner.lock:
            owner.hits[path] += 1
            n = owner.hits[path]
            owner.requests.append((path, dict(self.headers.items())))
            owner.times.append((path, time.monotonic()))
        route = owner.routes.get(path)
        if route is None:
            self._simple(404, b"not found")
            return
        if route.delay_s:
            time.sleep(route.delay_s)
        if n <= route.fail_times:
            self._simple(route.fail_status, b"busy", route.fail_headers)
            return
        if route.redirect is not None:
            self._simple(
                route.status if 300 <= route.status < 400 else 302, b"", [("Location", route.redirect)]
            )
            return
        headers = list(route.headers)
        if route.etag:
            headers.append(("ETag", route.etag))
        if route.last_modified:
            headers.append(("Last-Modified", route.last_modified))
        if route.huge_headers:
            chunk = "x" * 4000
            for i in range(route.huge_headers // 4000 + 1):
                headers.append((f"X-Padding-{i}", chunk))
        status, body, extra = route.status, route.body, []
        inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        if route.status == 200 and (
            (inm is not None and inm == route.etag) or (inm is None and ims and ims == route.last_modified)
        ):
            self.send_response(304)
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            return
        if route.status == 200 and route.ranges:
            headers.append(("Accept-Ranges", "bytes"))
            rng = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if (
                rng
                and rng.startswith("bytes=")
                and (if_range is None or if_range in (route.etag, route.last_modified))
            ):
                start_s, _, end_s = rng[6:].partition("-")
                start = int(start_s)
                end = int(end_s) if end_s else len(body) - 1
                if start >= len(body):
                    self._simple(416, b"", [("Content-Range", f"bytes */{len(body)}")])
                    return
                extra = [("Content-Range", f"bytes {start}-{end}/{len(body)}")]
                status, body = 206, body[start : end + 1]
        if not 200 <= status < 300 and not body:
            body = b"error"
        self.send_response(status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers + extra:
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        limit = len(body)
        if route.truncate_at is not None and n - route.fail_times <= route.truncate_times:
            limit = min(limit, route.truncate_at)
        try:
            if route.chunk_delay_s:
                for i in range(0, limit, route.chunk_size):
                    self.wfile.write(body[i : min(i + route.chunk_size, limit)])
                    self.wfile.flush()
                    time.sleep(route.chunk_delay_s)
            else:
                self.wfile.write(memoryview(body)[:limit])
            if limit < len(body):
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _simple(self, status: int, body: bytes, headers: list[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class TestServer:
    """A threaded HTTP/1.1 server bound to 127.0.0.1 on a free port."""

    __test__ = False  # not a pytest test class

    class HTTPServer(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

        def handle_error(self, request, client_address):  # clients hanging up are expected here
            pass

    def __init__(self, host: str = "127.0.0.1"):
        assert host.startswith("127."), "tests only serve on loopback"
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.times: list[tuple[str, float]] = []
        self.lock = threading.Lock()
        self.httpd = self.HTTPServer((host, 0), _Handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.host, self.port = self.httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def add(self, path: str, route: Route | None = None, **kw) -> str:
        self.routes[path] = route or Route(**kw)
        return self.url(path)

    def robots(self, text: str, status: int = 200) -> None:
        self.routes["/robots.txt"] = Route(status=status, body=text.encode(), content_type="text/plain")

    def tdmrep(self, body: str | list, status: int = 200) -> None:
        data = body if isinstance(body, str) else json.dumps(body)
        self.routes["/.well-known/tdmrep.json"] = Route(
            status=status, body=data.encode(), content_type="application/json"
        )

    def times_of(self, path: str) -> list[float]:
        with self.lock:
            return [t for p, t in self.times if p == path]

    def headers_of(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [h for p, h in self.requests if p == path]

    def start(self) -> TestServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class FastServer:
    """A minimal asyncio HTTP/1.1 server (keep-alive, GET, static routes, no Range) for the benchmark, where
    a thread per connection would make the server, not the client, the thing measured. Runs in a thread."""

    def __init__(self, routes: dict[str, Route], host: str = "127.0.0.1"):
        assert host.startswith("127."), "benchmarks only serve on loopback"
        self.routes = routes
        self.hits: Counter[str] = Counter()
        self._ready = threading.Event()
        self._host = host
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        # Large bodies go out with sendfile(2) from files, so the server spends as little of the shared CPU
        # as a production file server would, and the benchmark measures the client.
        self._dir = tempfile.mkdtemp(
            prefix="cf-fast-server-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
        )
        self._files: dict[str, str] = {}
        for path, route in routes.items():
            if len(route.body) >= SENDFILE_BYTES:
                fn = os.path.join(self._dir, f"{len(self._files)}.bin")
                with open(fn, "wb") as fh:
                    fh.write(route.body)
                self._files[path] = fn

    @property
    def origin(self) -> str:
        return f"http://{self._host}:{self.port}"

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def start(self) -> FastServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        import asyncio

        loop: asyncio.AbstractEventLoop

        async def handle(reader, writer):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    path = head.split(b" ", 2)[1].decode().split("?", 1)[0]
                    self.hits[path] += 1
                    route = self.routes.get(path)
                    if route is None:
                        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    else:
                        lines = [f"HTTP/1.1 {route.status} OK", f"Content-Type: {route.content_type}"]
                        lines.append(f"Content-Length: {len(route.body)}")
                        lines += [f"{k}: {v}" for k, v in route.headers]
                        if route.etag:
                            lines.append(f"ETag: {route.etag}")
                        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
                        fn = self._files.get(path)
                        if fn is None:
                            writer.write(route.body)
                        else:
                            await writer.drain()
                            with open(fn, "rb") as fh:
                                await loop.sendfile(writer.transport, fh)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        async def main():
            nonlocal loop
            loop = asyncio.get_running_loop()
            server = await asyncio.start_server(handle, self._host, 0, backlog=512)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            async with server:
                await server.serve_forever()

        asyncio.run(main())


def main(argv: list[str] | None = None) -> None:
    """Serve synthetic MP4 files (``--files N:SIZE`` → /f/<size>/<i>.mp4) and optional media files."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", action="append", default=[], help="COUNT:SIZE synthetic files")
    ap.add_argument("--media", action="append", default=[], help="a real file served as /m/<name>")
    ap.add_argument("--robots", default="User-agent: *\nAllow: /\n")
    ap.add_argument("--fast", action="store_true", help="the asyncio server (no Range, no behaviours)")
    args = ap.parse_args(argv)
    srv = TestServer()
    srv.robots(args.robots)
    srv.tdmrep([{"location": "/private/*", "tdm-reservation": 1}])
    for spec in args.files:
        count, size = (int(x) for x in spec.split(":"))
        for i in range(count):
            srv.add(f"/f/{size}/{i}.mp4", body=fake_mp4(size, i), etag=f'"{size}-{i}"')
    for m in args.media:
        p = Path(m)
        srv.add(f"/m/{p.name}", body=p.read_bytes(), etag=f'"{p.stat().st_size}"')
    if args.fast:
        srv.httpd.server_close()
        srv = FastServer(srv.routes)
    srv.start()
    sys.stdout.write(json.dumps({"origin": srv.origin}) + "\n")
    sys.stdout.flush()
    try:
        for _line in sys.stdin:  # serve until stdin closes
            if _line.strip() == "hits":
                sys.stdout.write(json.dumps(dict(srv.hits)) + "\n")
                sys.stdout.flush()
    finally:
        if isinstance(srv, TestServer):
            srv.stop()
        else:
            srv.close()


if __name__ == "__main__":
    main()
