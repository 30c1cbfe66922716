"""The web UI's guards: rate limits per address, operator sessions, CSRF tokens, security headers, and
serving a blob by hash with HTTP Range."""

from __future__ import annotations

import hmac
import os
import re
import secrets
import stat
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from starlette.responses import Response, StreamingResponse

#: Every page's Content-Security-Policy: scripts and styles from this site's files only, never inline.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: The policy of a build's report documents (the datasheet inlines its chart library): sandboxed, so its
#: scripts run in an opaque origin that can reach neither this site's cookies nor its pages.
REPORT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:"
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


class RateLimiter:
    """At most ``limit`` events per ``window_s`` seconds per key (a client address); thread-safe."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window_s = int(limit), float(window_s)
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            q = self._events.setdefault(key, deque())
            while q and q[0] <= now - self.window_s:
                q.popleft()
            if len(q) >= self.limit:
                return False
            q.append(now)
            if len(self._events) > 10_000:  # forget idle addresses
                for k in [k for k, v in self._events.items() if not v]:
                    del self._events[k]
            return True


@dataclass
class Session:
    operator: str
    csrf: str
    expires: float


class Sessions:
    """Operator sessions held in memory (a restart logs everyone out), by an unguessable cookie value."""

    def __init__(self, ttl_s: float = 8 * 3600):
        self.ttl_s = ttl_s
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, operator: str) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        s = Session(operator, secrets.token_urlsafe(32), time.monotonic() + self.ttl_s)
        with self._lock:
            self._by_id[sid] = s
        return sid, s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            s = self._by_id.get(sid)
            if s is not None and s.expires < time.monotonic():
                del self._by_id[sid]
                return None
            return s

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def add_headers(response: Response, csp: str = CSP) -> Response:
    response.headers.setdefault("Content-Security-Policy", csp)
    for k, v in HEADERS.items():
        response.headers.setdefault(k, v)
    return response


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
#: Bytes read and sent at a time.
CHUNK = 256 * 1024


def file_response(path: Path, root: Path, media_type: str, range_header: str | None) -> Response | None:
    """``path`` (inside ``root``, a regular file, not a symlink) as a response honouring one HTTP Range;
    None when the file may not be served."""
    try:
        real_root = os.path.realpath(root)
        if os.path.commonpath([os.path.realpath(path.parent), real_root]) != real_root:
            return None
        # O_NOFOLLOW: a symlink in place of the blob is refused, even one put there after any check
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return None
    fh = os.fdopen(fd, "rb")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        fh.close()
        return None
    size = st.st_size
    start, end, status = 0, size - 1, 200
    if range_header:
        m = _RANGE.match(range_header.strip())
        if not m or (not m.group(1) and not m.group(2)):
            fh.close()
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        else:
            start = max(0, size - int(m.group(2)))
        if start > end or start >= size:
            fh.close()
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206
    length = end - start + 1
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(length),
        "Cache-Control": "private, max-age=3600",
    }
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    fh.seek(start)

    def chunks(left: int = length):
        try:
            while left > 0:
                buf = fh.read(min(left, CHUNK))
                if not buf:
                    break
                left -= len(buf)
                yield buf
        finally:
            fh.close()

    return StreamingResponse(chunks(), status_code=status, media_type=media_type, headers=headers)
