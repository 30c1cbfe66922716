"""The HTTP(S) fetcher: polite, resumable, consent-checking downloads into the blob store.

One :class:`Fetcher` owns one ``httpx.AsyncClient`` (HTTP/1.1, bounded connection pool, no proxies from the
environment, redirects followed by hand so that policy and consent are re-checked on every host a redirect
lands on). Per origin it keeps a semaphore (concurrent connections), a token bucket (requests per second,
lowered by a robots.txt ``Crawl-delay``), a pause set by ``Retry-After`` (waited out up to
``max_retry_after_s``; a longer one closes the origin until then, and is recorded so that later runs honour it
too), and the cached robots.txt and tdmrep.json with their TTLs.

A download streams into ``<store>/incoming/<key>.partial`` while it is hashed; a ``.partial.json`` beside it
keeps the URL and the validators (ETag, Last-Modified). An interrupted download resumes on the next
attempt or the next run with ``Range`` plus ``If-Range``, so a changed file starts over. Only a complete,
verified, consented file is renamed into the store under its hash (:meth:`BlobStore.adopt`); a denied
download is deleted, and its bytes are never kept.

What we never do: rotate addresses or proxies, solve captchas, or work around DRM or paywalls. A 429 or 403
pauses and is recorded; it is never a reason to try another route.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import contextlib
import email.utils
import errno
import hashlib
import json
import logging
import mmap
import os
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field

from .. import __version__
from ..errors import ClipfactoryError, ConfigError, MissingExtraError
from ..records import Result, SourceRecord
from ..stage import StageConfig
from ..storage import BlobStore, atomic_write
from . import consent as c

if TYPE_CHECKING:
    from .spawning import SpawningRegistry

log = logging.getLogger(__name__)

#: ``(platform, host, source_id) -> (ok, reason)``; the default asks the policy gate.
PlatformCheck = Callable[[str | None, str | None, str | None], tuple[bool, str | None]]

_REDIRECTS = {301, 302, 303, 307, 308}
_MAX_HEADER_VALUE = 2000
_MAX_HEADERS = 60
_SNIFF_BYTES = 512
_HTML_HEAD_BYTES = 64 * 1024
#: Host documents by kind (the ``kind`` column of ``host_documents``).
HOST_DOCUMENT_PATHS = {"robots.txt": "/robots.txt", "tdmrep.json": "/.well-known/tdmrep.json"}


class FetchOptions(StageConfig):
    """Options of the ``acquire.http`` stage (``[acquire.http]`` in clipfactory.toml)."""

    agent_token: str = Field(
        "clipfactory", description="Our robots.txt agent token; X-Robots-Tag scopes use it"
    )
    contact_url: str = Field(
        "https://example.org/clipfactory-bot",
        description="A page that explains the crawler and how to reach its operator; sent in the User-Agent",
    )
    user_agent: str | None = Field(
        None, description="Full User-Agent; default '<agent_token>/<version> (+<contact_url>)'"
    )
    max_connections: int = Field(64, description="Connections open at once, over all hosts")
    pool_shards: int = Field(
        8,
        description="Connection pools the connections are spread over (a pool is scanned on every request, "
        "so several small pools cost less CPU than one large one)",
    )
    per_host_connections: int = Field(8, description="Connections open at once to one origin")
    per_host_rate: float = Field(
        10.0, description="Requests per second to one origin (0 = no limit); a Crawl-delay lowers it"
    )
    per_host_burst: int = Field(10, description="Requests one origin may receive back to back")
    connect_timeout_s: float = Field(10.0, description="Seconds to open a connection")
    read_timeout_s: float = Field(30.0, description="Seconds without a byte before a read times out")
    total_timeout_s: float = Field(600.0, description="Seconds one request (headers and body) may take")
    max_bytes: int = Field(4 * 1024**3, description="Largest file accepted, in bytes")
    max_redirects: int = Field(5, description="Redirects followed per URL; each target host is re-checked")
    max_attempts: int = Field(4, description="Attempts per URL on 429, 5xx, timeouts and truncated bodies")
    backoff_base_s: float = Field(1.0, description="First backoff delay; doubles per attempt, with jitter")
    backoff_max_s: float = Field(60.0, description="Longest backoff delay between attempts")
    max_retry_after_s: float = Field(
        300.0,
        description="Longest Retry-After waited out; a longer one fails the item at once (fetch.rate_limited) "
        "and sends its origin no request before the time it asked for, in this and later runs",
    )
    robots_ttl_s: float = Field(86400.0, description="How long a fetched robots.txt is trusted, in seconds")
    tdmrep_ttl_s: float = Field(86400.0, description="How long a fetched tdmrep.json is trusted, in seconds")
    unreachable_ttl_s: float = Field(
        300.0, description="How long an unreachable robots.txt (5xx, 429, network error) blocks its host"
    )
    host_document_max_bytes: int = Field(512 * 1024, description="Bytes of robots.txt/tdmrep.json read")
    blocked_directives: list[str] = Field(
        default_factory=lambda: list(c.DEFAULT_BLOCKED_DIRECTIVES),
        description="X-Robots-Tag directives that deny (img2dataset also blocks noindex and noimageindex)",
    )
    content_usage_category: Literal["train-ai", "train-genai"] = Field(
        "train-genai", description="Content-Usage category our use falls under (inherits train-ai, then bots)"
    )
    tdmrep_prefetch_deny: bool = Field(
        True,
        description="A reservation in tdmrep.json denies before any request; false asks the server and "
        "lets a tdm-reservation header lift it (the spec's priority), reading no body when reserved",
    )
    c2pa: Literal["auto", "require", "off"] = Field(
        "auto", description="C2PA training-mining check: auto (when c2pa-python is installed), require, off"
    )
    spawning_api_key_env: str = Field(
        "CLIPFACTORY_SPAWNING_API_KEY",
        description="Environment variable holding a Spawning API key; without one the Do-Not-Train "
        "registry is recorded as not checked",
    )
    spawning_api_url: str = Field(
        c.SPAWNING_API_URL, description="The Spawning Do-Not-Train registry's bulk URL query endpoint"
    )
    spawning_batch_size: int = Field(
        1000, ge=1, description="URLs per query to the Spawning registry (one query per batch of sources)"
    )
    spawning_concurrency: int = Field(4, ge=1, description="Queries to the Spawning registry at once")
    spawning_timeout_s: float = Field(30.0, description="Seconds one Spawning registry query may take")
    spawning_on_error: Literal["fail", "proceed"] = Field(
        "fail",
        description="When the Spawning registry gives no answer: fail (the source fails as transient, "
        "fetch.spawning_unavailable, and a later run asks again) or proceed (record verdict error, go on)",
    )
    chunk_size: int = Field(2 * 1024 * 1024, description="Bytes handed to the writer thread at a time")
    inline_bytes: int = Field(
        1024 * 1024, description="Bodies up to this size are hashed and written on the event loop"
    )
    fsync: bool = Field(True, description="fsync each file before it is renamed into the store")
    direct_io: bool = Field(
        True,
        description="Write large bodies with O_DIRECT where the OS and filesystem allow (Linux), bypassing "
        "the page cache; elsewhere ordinary writes with early writeback",
    )
    io_threads: int = Field(
        8, ge=1, description="Worker threads that fsync, check and store downloaded files"
    )
    write_threads: int = Field(
        2,
        ge=1,
        description="Worker threads that hash and write large bodies while they stream (more than the "
        "free cores only adds contention with the event loop)",
    )
    allow_private_addresses: bool = Field(
        False,
        description="Fetch from private, loopback, link-local and reserved addresses; off, a manifest cannot "
        "point the fetcher at your own network (checked on the name's addresses and on each connection)",
    )
    read_bytes: int = Field(
        256 * 1024,
        ge=0,
        description="Bytes read from a connection per call (0: httpx's 64 KiB); larger reads cost the "
        "event loop less per byte",
    )
    write_queue_bytes: int = Field(
        8 * 1024 * 1024,
        description="Bytes of one large download that may wait for its writer before reading pauses",
    )
    partial_max_age_s: float = Field(7 * 86400.0, description="Older interrupted downloads start over")


def user_agent(options: FetchOptions) -> str:
    if options.user_agent:
        return options.user_agent
    return f"{options.agent_token}/{__version__} (+{options.contact_url})"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- content sniffing ------------------------------------------------------------------------------------
def sniff_container(head: bytes) -> str | None:
    """The video container named by the first bytes, or ``None``."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        return "quicktime" if brand == b"qt  " else "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "quicktime"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in head[:64] else "matroska"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if head[:4] == b"FLV\x01":
        return "flv"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x00\x00\x01\xba":
        return "mpeg-ps"
    if head[:8] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11":
        return "asf"
    if head[:1] == b"\x47" and (len(head) < 189 or head[188:189] == b"\x47"):
        if len(head) >= 189 or len(head) == 188:
            return "mpeg-ts"
    if len(head) >= 193 and head[4:5] == b"\x47" and head[196:197] == b"\x47":
        return "mpeg-ts"
    return None


def looks_like_html(head: bytes, content_type: str | None) -> bool:
    if content_type and "html" in content_type.lower():
        return True
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<meta", b"<?xml"))


# -- retry timing ----------------------------------------------------------------------------------------
def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: half fixed, half random, so retries of many items spread out."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay / 2 + random.uniform(0, delay / 2)


class TokenBucket:
    """Requests per second with a burst, reserving ahead: each caller learns how long to wait."""

    def __init__(self, rate: float, burst: int):
        self.rate = float(rate)
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def reserve(self) -> float:
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def slow_down(self, rate: float) -> None:
        if rate > 0 and (self.rate <= 0 or rate < self.rate):
            self.rate = rate
            self.capacity = 1.0
            self.tokens = min(self.tokens, 1.0)


@dataclass
class _CachedDoc:
    doc: Any
    expires: float  # monotonic


class OriginPaused(Exception):
    """An origin asked us (``Retry-After``) to wait longer than ``max_retry_after_s``: it is not asked again
    before :attr:`until` (epoch seconds); items of that origin fail at once as ``fetch.rate_limited``."""

    def __init__(self, origin: str, until: float, why: str | None, max_wait: float):
        self.origin = origin
        self.until = until
        self.why = why
        super().__init__(
            f"{origin} asked us to wait ({why or 'Retry-After'}): it is not asked again before "
            f"{iso_utc(until)}, longer than max_retry_after_s ({max_wait:g}s) allows a fetch to wait; "
            "run again after that time (a later run skips the origin until then)"
        )


def iso_utc(epoch: float, timespec: str = "seconds") -> str:
    """Epoch seconds as ``2026-12-08T06:20:00Z`` (rounded up to ``timespec``: never earlier than asked)."""
    step = 1.0 if timespec == "seconds" else 0.001
    epoch = -(-epoch // step) * step
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


class HostState:
    """Politeness state of one origin (scheme, host and port).

    With ``shared`` (a :class:`clipfactory.limits.SharedLimits` or a client of one that every worker of the
    run uses), the connection slots and the request rate are counted over all workers; without, over this
    process only.

    A ``Retry-After`` pauses the origin. A pause of up to ``max_retry_after_s`` is waited out (and logged);
    a longer one *closes* the origin until then: every request for it fails at once with
    :class:`OriginPaused` instead of waiting."""

    def __init__(self, origin: str, options: FetchOptions, shared: Any = None):
        self.origin = origin
        self.connections = max(1, options.per_host_connections)
        self.sem = asyncio.Semaphore(self.connections)
        self.bucket = TokenBucket(options.per_host_rate, options.per_host_burst)
        self.shared = shared
        self.max_wait = float(options.max_retry_after_s)
        self._tasks: set[asyncio.Future] = set()
        self.not_before = 0.0  # monotonic time before which no request goes out (Retry-After)
        self.closed_until = 0.0  # monotonic: before it, requests fail at once (Retry-After too long to wait)
        self.closed_until_wall = 0.0  # the same, epoch seconds
        self.closed_why: str | None = None
        self.docs: dict[str, _CachedDoc] = {}
        self.doc_locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def slot(self):
        """One of the origin's connection slots, for one request."""
        if self.shared is None:
            async with self.sem:
                yield
            return
        await self.shared.acquire(self.origin, self.connections)
        try:
            yield
        finally:
            await self.shared.release(self.origin)

    def check_open(self) -> None:
        """Raise :class:`OriginPaused` while the origin is closed by a long ``Retry-After``."""
        if self.closed_until > time.monotonic():
            raise OriginPaused(self.origin, self.closed_until_wall, self.closed_why, self.max_wait)

    async def wait_pause(self) -> None:
        logged = False
        while True:
            self.check_open()
            wait = self.not_before - time.monotonic()
            if wait <= 0:
                return
            if not logged and wait >= 1.0:
                log.info("%s asked us to wait (Retry-After): waiting %.1fs", self.origin, wait)
                logged = True
            await asyncio.sleep(wait)

    async def turn(self) -> None:
        await self.wait_pause()
        if self.shared is not None:
            delay = await self.shared.reserve(self.origin, self.bucket.rate, int(self.bucket.capacity))
            if delay > self.max_wait:  # another worker of the run was told to wait this long
                self._close(delay, self.closed_why or "Retry-After, seen by another worker")
                self.check_open()
        else:
            delay = self.bucket.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    def _close(self, seconds: float, why: str | None) -> None:
        until = time.monotonic() + seconds
        if until > self.closed_until:
            self.closed_until = until
            self.closed_until_wall = time.time() + seconds
            self.closed_why = why

    def pause(self, seconds: float, why: str | None = None, *, wait: bool | None = None) -> None:
        """No request for ``seconds``. ``wait`` (default: ``seconds <= max_retry_after_s``) says whether
        requests wait the pause out or fail at once."""
        if wait is None:
            wait = seconds <= self.max_wait
        if wait:
            self.not_before = max(self.not_before, time.monotonic() + seconds)
        else:
            self._close(seconds, why)
        if self.shared is not None:  # every worker waits, not only this one
            task = asyncio.ensure_future(self.shared.pause(self.origin, seconds))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def origin_of(url: str) -> tuple[str, str]:
    """``(origin, host)``: ``http://example.org:8080`` and ``example.org``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{host}:{port}", host


# -- outcomes and evidence -------------------------------------------------------------------------------
@dataclass
class Evidence:
    """What one source's fetch left as evidence; it travels in ``Result.detail``."""

    source_id: str
    url: str
    attempts: list[dict[str, Any]] = field(default_factory=list)
    consent: list[dict[str, Any]] = field(default_factory=list)
    host_documents: list[dict[str, Any]] = field(default_factory=list)
    #: ``Retry-After`` pauses this source's requests set on their origin (kept in ``host_pauses``)
    host_pauses: list[dict[str, Any]] = field(default_factory=list)

    def add_checks(self, url: str, phase: str, checks: Iterable[c.Check]) -> None:
        at = now_iso()
        for ch in checks:
            self.consent.append({"url": url, "phase": phase, "checked_at": at, **ch.to_dict()})

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "attempts": self.attempts,
            "consent": self.consent,
            "host_documents": self.host_documents,
            **({"host_pauses": self.host_pauses} if self.host_pauses else {}),
        }


@dataclass
class FetchOutcome:
    """The end of one source's fetch: kept with a blob, dropped with a reason, or failed."""

    source_id: str
    status: str  # kept | dropped | failed
    reason: str | None = None
    error_kind: str | None = None
    error: str | None = None
    blob_uri: str | None = None
    content_sha256: str | None = None
    size_bytes: int | None = None
    acquired_at: str | None = None
    final_url: str | None = None
    container: str | None = None
    http_status: int | None = None
    validators: dict[str, str] = field(default_factory=dict)
    content_changed: bool | None = None
    evidence: Evidence | None = None

    def detail(self) -> dict[str, Any]:
        d: dict[str, Any] = {"fetch": self.evidence.to_dict() if self.evidence else {}}
        d["fetch"].update(
            {
                "final_url": self.final_url,
                "container": self.container,
                "http_status": self.http_status,
                "validators": self.validators,
            }
        )
        if self.status != Result.KEPT and self.error:
            d["why"] = self.error  # the words behind the reason, with the fix where there is one
        return d

    def to_result(self, source: SourceRecord) -> Result:
        detail = json.dumps(self.detail(), sort_keys=True, default=str)
        if self.status == Result.KEPT:
            rec = source.replace(
                blob_uri=self.blob_uri,
                content_sha256=self.content_sha256,
                size_bytes=self.size_bytes,
                acquired_at=self.acquired_at,
            )
            return Result.kept(source.source_id, rec, detail=detail)
        return self.not_kept_result(source.source_id, detail)

    def not_kept_result(self, item_id: str, detail: str) -> Result:
        """The result of a dropped or failed outcome, with ``detail`` (a JSON document)."""
        if self.status == Result.DROPPED:
            return Result.dropped(item_id, self.reason or "fetch.unknown", detail=detail)
        # Failures name their reason too, so counts and reports group them like drops.
        return Result(
            item_id,
            Result.FAILED,
            reason=self.reason,
            error_kind=self.error_kind or "terminal",
            error=self.error or self.reason,
            detail=detail,
        )


# Reasons whose failure may clear up later (retried on the next run; resume skips only kept/dropped).
TRANSIENT_REASONS = {
    "fetch.storage_error",
    "fetch.rate_limited",
    "fetch.timeout",
    "fetch.truncated",
    "fetch.connect_error",
    "fetch.robots_unreachable",
    "fetch.protocol_error",
    "fetch.spawning_unavailable",
}


class _Step:
    """The result of one request: final, a redirect, or worth retrying."""

    __slots__ = ("kind", "outcome", "location", "reason", "retry_after", "host_wide", "message")

    def __init__(
        self,
        kind: str,
        outcome: FetchOutcome | None = None,
        *,
        location: str | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
        host_wide: bool = False,
        message: str | None = None,
    ):
        self.kind = kind  # final | redirect | retry
        self.outcome = outcome
        self.location = location
        self.reason = reason
        self.retry_after = retry_after
        self.host_wide = host_wide
        self.message = message


# -- partial downloads -----------------------------------------------------------------------------------
@dataclass
class _Partial:
    path: Path
    meta_path: Path
    size: int
    etag: str | None
    last_modified: str | None
    total: int | None

    @property
    def validator(self) -> str | None:
        # A strong ETag is the safe If-Range validator; Last-Modified is the fallback (RFC 9110 §13.1.5).
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


def _partial_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


class _FileSink:
    """Writes a file front to back through a file descriptor.

    With ``direct`` (Linux ``O_DIRECT``) the bytes go from an aligned buffer straight to the disk, bypassing
    the page cache: no second copy into kernel pages, no dirty pages to write back later, and no cache
    evicted by terabytes of downloads nobody reads again soon. Only whole 4 KiB blocks are written that way;
    the last partial block is written normally when the file is finished. A filesystem that refuses
    ``O_DIRECT`` (tmpfs, some network filesystems) gets ordinary writes, with writeback started every few
    MiB so the fsync before the rename has little left to do.
    """

    ALIGN = 4096

    def __init__(self, path: Path, append: bool, direct: bool, writeback: bool, buffer_bytes: int):
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        self.fd = -1
        self.direct = False
        o_direct = getattr(os, "O_DIRECT", 0)
        if direct and o_direct and not append:
            try:
                self.fd = os.open(path, flags | o_direct, 0o644)
                self.direct = True
            except OSError:
                self.fd = -1
        if self.fd < 0:
            self.fd = os.open(path, flags, 0o644)
        self.buf: mmap.mmap | None = None
        self.fill = 0
        if self.direct:
            size = max(self.ALIGN, -(-buffer_bytes // self.ALIGN) * self.ALIGN)
            self.buf = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT needs
        self.writeback = writeback and hasattr(os, "posix_fadvise")
        self.written = 0  # bytes handed to the kernel
        self._synced = 0

    def write(self, chunks: list[bytes]) -> None:
        if self.buf is None:
            self.written += writev_all(self.fd, chunks)
            self._start_writeback()
            return
        buf = self.buf
        for chunk in chunks:
            mv = memoryview(chunk)
            pos = 0
            while pos < len(mv):
                n = min(len(mv) - pos, len(buf) - self.fill)
                buf[self.fill : self.fill + n] = mv[pos : pos + n]
                self.fill += n
                pos += n
                if self.fill == len(buf):
                    self._write_blocks()
        self._write_blocks()

    def _write_blocks(self) -> None:
        """Write the whole blocks of the buffer; keep the rest at its start."""
        assert self.buf is not None
        n = self.fill - self.fill % self.ALIGN
        if not n:
            return
        view = memoryview(self.buf)
        try:
            self._write_all(view[:n])
        except OSError as exc:
            if exc.errno != errno.EINVAL or not self.direct:
                raise
            self._leave_direct()  # the filesystem opened the file but refuses O_DIRECT writes
            self._write_all(view[:n])
        finally:
            view.release()
        rest = self.fill - n
        if rest:
            self.buf.move(0, n, rest)
        self.fill = rest

    def _write_all(self, data: memoryview) -> None:
        while len(data):
            k = os.write(self.fd, data)
            self.written += k
            data = data[k:]

    def _leave_direct(self) -> None:
        if self.direct:
            import fcntl

            fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
            self.direct = False

    def _start_writeback(self) -> None:
        """Ask the kernel to start writing the bytes written since the last call (does not wait)."""
        if not self.writeback or self.written - self._synced < _WRITEBACK_BYTES:
            return
        with contextlib.suppress(OSError):
            # On Linux, POSIX_FADV_DONTNEED starts writeback of the range's dirty pages without waiting for
            # the disk (pages still dirty or under writeback are not dropped). Only the new range is named,
            # so each call costs the same however large the file has grown.
            os.posix_fadvise(self.fd, self._synced, self.written - self._synced, os.POSIX_FADV_DONTNEED)
        self._synced = self.written

    def _write_tail(self) -> None:
        """The last partial block, written through the page cache (O_DIRECT needs whole blocks)."""
        if self.buf is not None and self.fill:
            self._leave_direct()
            view = memoryview(self.buf)
            try:
                self._write_all(view[: self.fill])
            finally:
                view.release()
            self.fill = 0

    def finish(self, fsync: bool) -> None:
        self._write_tail()
        if fsync:
            os.fsync(self.fd)
        self.close()

    def close(self) -> None:
        """Write what is buffered (best effort) and close; safe to call twice."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                self._write_tail()
            os.close(self.fd)
            self.fd = -1
        if self.buf is not None:
            self.buf.close()
            self.buf = None


class _BodyWriter:
    """Hashes and stores a body.

    Small bodies stay in memory and reach the disk in one write on a worker thread. Large ones are queued
    for a worker thread batch by batch and written in order; the event loop keeps reading until
    ``high_water`` bytes are queued for this file, so a writer that is briefly slow (another file's fsync,
    the disk) does not stall the connection. One worker at a time drains a file's queue, and it gives its
    thread back every few batches, so many large downloads share a few threads fairly.
    """

    _BATCHES_PER_TURN = 4

    def __init__(
        self,
        path: Path,
        append: bool,
        hasher: Any,
        pool: cf.ThreadPoolExecutor,
        in_memory: bool,
        high_water: int = 8 * 1024 * 1024,
        writeback: bool = False,
        direct: bool = False,
        buffer_bytes: int = 2 * 1024 * 1024,
    ):
        self.path = path
        self.append = append
        self.hasher = hasher
        self.pool = pool
        self.high_water = high_water
        self.mem: bytearray | None = bytearray() if in_memory else None
        self.fh: Any = None  # the in-memory body's file
        self.sink: _FileSink | None = None  # the streamed body's file
        self._direct = direct
        self._buffer_bytes = buffer_bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._queue: collections.deque[list[bytes]] = collections.deque()
        self._queued = 0  # bytes queued and not yet written
        self._running = False  # a worker is draining the queue
        self._error: BaseException | None = None
        self._waiter: asyncio.Future | None = None  # the event loop waits for space or for the end
        self._idle = threading.Event()
        self._idle.set()
        # Start writing back to disk while the download goes on, so the final fsync has little left to do.
        self._writeback = writeback

    def _open(self) -> _FileSink:
        if self.sink is None:
            self.sink = _FileSink(self.path, self.append, self._direct, self._writeback, self._buffer_bytes)
        return self.sink

    def _write(self, data: bytes) -> None:
        if self.mem is not None:  # hashed by to_disk, on a worker thread
            self.mem += data
            return
        self._write_batch([data])

    def _write_batch(self, chunks: list[bytes]) -> None:
        """Hash each chunk and write the batch (no joined copy)."""
        update = self.hasher.update
        for chunk in chunks:
            update(chunk)
        self._open().write(chunks)

    # -- worker side -------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Worker thread: write queued batches in order; hand the thread back after a few."""
        for _ in range(self._BATCHES_PER_TURN):
            with self._lock:
                if not self._queue or self._error is not None:
                    self._running = False
                    self._idle.set()
                    self._wake()
                    return
                chunks = self._queue.popleft()
            try:
                self._write_batch(chunks)
            except BaseException as exc:  # reported to the event loop by the next write or drain
                with self._lock:
                    self._error = exc
                    self._queue.clear()
                    self._queued = 0
                    self._running = False
                    self._idle.set()
                    self._wake()
                return
            with self._lock:
                self._queued -= sum(map(len, chunks))
                if self._queued <= self.high_water:
                    self._wake()
        self.pool.submit(self._drain)  # more to do: queue behind the other files

    def _wake(self) -> None:
        """Called with the lock held: resolve the event loop's waiter, if any."""
        fut, self._waiter = self._waiter, None
        if fut is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(_resolve, fut)

    # -- event-loop side ---------------------------------------------------------------------------
    async def write(self, data: bytes) -> None:
        if self.mem is not None:
            self._write(data)
            return
        await self.write_chunks([data])

    async def write_chunks(self, chunks: list[bytes]) -> None:
        """Queue chunks for the worker (no copy); waits only while more than ``high_water`` bytes are queued."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        with self._lock:
            if self._error is not None:
                raise self._error
            self._queue.append(chunks)
            self._queued += sum(map(len, chunks))
            start = not self._running
            if start:
                self._running = True
                self._idle.clear()
        if start:
            self.pool.submit(self._drain)
        await self._wait(lambda: self._queued <= self.high_water)

    async def drain(self) -> None:
        """Wait until everything queued is written; raise what the worker met."""
        await self._wait(lambda: not self._running)
        if self._error is not None:
            raise self._error

    async def _wait(self, done: Callable[[], bool]) -> None:
        while True:
            with self._lock:
                if done() or self._error is not None:
                    return
                fut = self._waiter = self._loop.create_future() if self._loop else None
            if fut is None:
                return
            await fut

    def to_disk(self, fsync: bool) -> str:
        """Make the complete body a closed file at ``path``; its sha256 (worker thread)."""
        if self.mem is not None:
            self.hasher.update(self.mem)
            # A resumed download appends its last bytes to the partial file.
            self.fh = open(self.path, "ab" if self.append else "wb")  # noqa: SIM115 - closed below
            self.fh.write(self.mem)
            self.mem = None
            self.fh.flush()
            if fsync:
                os.fsync(self.fh.fileno())
            self.fh.close()
        else:
            self._open().finish(fsync)
        return self.hasher.hexdigest()

    def close(self, tail: bytes = b"") -> None:
        """Synchronous cleanup, safe after a cancellation: waits for the worker, writes ``tail``, closes."""
        self._idle.wait()
        if tail and self.mem is None and self._error is None:
            with contextlib.suppress(OSError):
                self._write(tail)
        if self.sink is not None:
            with contextlib.suppress(OSError):
                self.sink.close()
        if self.fh is not None and not self.fh.closed:
            with contextlib.suppress(OSError):
                self.fh.flush()
            self.fh.close()


_WRITEBACK_BYTES = 4 * 1024 * 1024


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


_IOV_MAX = (os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 0) or 1024


def writev_all(fd: int, buffers: list[bytes]) -> int:
    """Write every buffer in order with as few ``writev`` calls as the kernel allows; the bytes written."""
    total = 0
    view: list[Any] = [b for b in buffers if b]
    while view:
        n = os.writev(fd, view[:_IOV_MAX])
        total += n
        while view and n >= len(view[0]):
            n -= len(view[0])
            view.pop(0)
        if n:
            view[0] = memoryview(view[0])[n:]
    return total


def _scan_partials(incoming: Path) -> set[str]:
    """Keys of the partial downloads in ``incoming`` (one directory listing per fetcher); stray
    ``.partial.json`` files without their ``.partial`` are removed."""
    parts: set[str] = set()
    metas: set[str] = set()
    try:
        with os.scandir(incoming) as it:
            for entry in it:
                if entry.name.endswith(".partial"):
                    parts.add(entry.name[: -len(".partial")])
                elif entry.name.endswith(".partial.json"):
                    metas.add(entry.name[: -len(".partial.json")])
    except FileNotFoundError:
        return set()
    for key in metas - parts:
        with contextlib.suppress(OSError):
            os.unlink(incoming / f"{key}.partial.json")
    return parts


def _hash_file(path: Path, hasher: Any) -> None:
    with open(path, "rb") as fh:
        while True:
            buf = fh.read(1 << 20)
            if not buf:
                break
            hasher.update(buf)


def _headers_evidence(headers: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in headers.multi_items():
        k = k.lower()
        if len(out) >= _MAX_HEADERS and k not in out:
            continue
        v = v if len(v) <= _MAX_HEADER_VALUE else v[:_MAX_HEADER_VALUE] + "…"
        if k in out:
            out[k] = (out[k] if isinstance(out[k], list) else [out[k]]) + [v]
        else:
            out[k] = v
    return out


def default_platform_check(settings: Any = None) -> PlatformCheck:
    """Platform terms through the policy gate: refuses platforms whose terms forbid downloading."""
    try:
        from ..policy.gate import acquisition_check
    except ImportError as exc:
        raise ConfigError(
            "the policy gate (clipfactory.policy.gate) is missing, so platform terms cannot be checked",
            item="acquire.http",
            fix="install a clipfactory with the policy gate",
        ) from exc

    def check(
        platform: str | None, host: str | None, source_id: str | None = None
    ) -> tuple[bool, str | None]:
        return acquisition_check(platform, host, settings=settings, source_id=source_id)

    return check


# -- the fetcher -----------------------------------------------------------------------------------------
class Fetcher:
    """Fetches sources with consent checks. Use inside one event loop: ``async with Fetcher(...) as f``."""

    def __init__(
        self,
        options: FetchOptions | None = None,
        store: BlobStore | None = None,
        *,
        platform_check: PlatformCheck | None = None,
        transport: Any = None,
        shared_limits: Any = None,
    ):
        self.options = options or FetchOptions()
        self.store = store
        #: per-origin limits counted over every worker of the run (see :class:`HostState`)
        self.shared_limits = shared_limits
        self.platform_check = platform_check
        self.evaluator = c.ConsentEvaluator(
            c.ConsentRules(
                self.options.agent_token,
                tuple(self.options.blocked_directives),
                self.options.content_usage_category,
            )
        )
        self.user_agent = user_agent(self.options)
        self.hosts: dict[str, HostState] = {}
        self.stats: Counter[str] = Counter()
        self._transport = transport
        self._client: Any = None
        self._clients: list[Any] = []
        self._rr = 0
        self._pool: cf.ThreadPoolExecutor | None = None
        self._write_pool: cf.ThreadPoolExecutor | None = None
        self._url_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._primed: list[tuple[str, str, float, Any]] = []
        self._primed_pauses: list[tuple[str, float, str | None]] = []
        self._c2pa_state: str | None = None
        self._incoming_dir: Path | None = None
        self._addresses: dict[str, str | None] = {}  # host → a non-public address it resolves to
        self._partial_keys: set[str] | None = None  # downloads that may have a partial to resume
        #: The Spawning Do-Not-Train registry client; set by :meth:`open` when an API key is configured.
        self.spawning: SpawningRegistry | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    async def __aenter__(self) -> Fetcher:
        await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def open(self) -> None:
        import httpx

        from .transport import make_transport

        o = self.options
        shards = max(1, min(o.pool_shards, o.max_connections))
        ssl_context = _ssl_context()  # one context for every pool: loading the CA bundle is slow
        per_shard = -(-o.max_connections // shards)
        limits = httpx.Limits(
            max_connections=per_shard, max_keepalive_connections=per_shard, keepalive_expiry=30.0
        )
        self._clients = [
            httpx.AsyncClient(
                http1=True,
                http2=False,
                follow_redirects=False,
                trust_env=False,  # never pick up a proxy from the environment
                timeout=httpx.Timeout(
                    connect=o.connect_timeout_s, read=o.read_timeout_s, write=o.read_timeout_s, pool=None
                ),
                limits=limits,
                headers={"User-Agent": self.user_agent, "Accept-Encoding": "identity"},
                transport=self._transport
                or make_transport(ssl_context, limits, o.read_bytes, o.allow_private_addresses),
                verify=ssl_context,
            )
            for _ in range(shards)
        ]
        self._client = self._clients[0]
        self._pool = cf.ThreadPoolExecutor(max_workers=o.io_threads, thread_name_prefix="cf-fetch-io")
        self._write_pool = cf.ThreadPoolExecutor(
            max_workers=o.write_threads, thread_name_prefix="cf-fetch-write"
        )
        for origin, kind, expires, doc in self._primed:
            self._host(origin).docs[kind] = _CachedDoc(doc, expires)
        self._primed.clear()
        for origin, until, why in self._primed_pauses:
            left = until - time.time()
            if left > 0:
                self._host(origin).pause(left, why)
        self._primed_pauses.clear()
        key = os.environ.get(o.spawning_api_key_env)
        if key:
            from .spawning import SpawningRegistry

            self.spawning = SpawningRegistry(
                self._client,
                key,
                api_url=o.spawning_api_url,
                batch_size=o.spawning_batch_size,
                concurrency=o.spawning_concurrency,
                timeout_s=o.spawning_timeout_s,
                max_attempts=o.max_attempts,
                backoff_base_s=o.backoff_base_s,
                backoff_max_s=o.backoff_max_s,
                max_retry_after_s=o.max_retry_after_s,
                stats=self.stats,
            )

    def _next_client(self) -> Any:
        self._rr += 1
        return self._clients[self._rr % len(self._clients)]

    async def aclose(self) -> None:
        self.spawning = None
        for client in self._clients:
            await client.aclose()
        self._clients = []
        if self._client is not None:
            self._client = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._write_pool is not None:
            self._write_pool.shutdown(wait=True)
            self._write_pool = None

    def prime_host_document(self, origin: str, kind: str, age_s: float, status_code: int | None, body: bytes):
        """Reuse a robots.txt or tdmrep.json fetched earlier (for example by a previous run) for its TTL."""
        ttl = self.options.robots_ttl_s if kind == "robots.txt" else self.options.tdmrep_ttl_s
        if age_s >= ttl:
            return
        doc = (
            c.RobotsDoc.from_response(status_code, body, max_bytes=self.options.host_document_max_bytes)
            if kind == "robots.txt"
            else c.TdmRepDoc.from_response(status_code, body)
        )
        if getattr(doc, "state", None) == "unreachable":
            return
        expires = time.monotonic() + (ttl - age_s)
        if self._client is not None:
            self._host(origin).docs[kind] = _CachedDoc(doc, expires)
        else:
            self._primed.append((origin, kind, expires, doc))

    def _record_pause(
        self,
        host: HostState,
        seconds: float,
        why: str | None,
        url: str,
        ev: Evidence | None = None,
        *,
        wait: bool | None = None,
    ) -> dict[str, Any]:
        """Pause ``host`` for a ``Retry-After`` of ``seconds`` and return the record kept in the catalog's
        ``host_pauses`` (appended to ``ev`` when given), so later commands and runs honour it too."""
        host.pause(seconds, why, wait=wait)
        self.stats["host_pauses"] += 1
        record = {
            "host": host.origin,
            "url": url,
            "why": why,
            "set_at": now_iso(),
            "not_before": iso_utc(time.time() + seconds, "milliseconds"),
            "seconds": seconds,
        }
        if ev is not None:
            ev.host_pauses.append(record)
        return record

    def prime_pause(self, origin: str, until: float, why: str | None) -> None:
        """Honour a ``Retry-After`` pause recorded by an earlier command or run (``until``: epoch seconds)."""
        left = until - time.time()
        if left <= 0:
            return
        if self._client is not None:
            self._host(origin).pause(left, why)
        else:
            self._primed_pauses.append((origin, until, why))

    def _host(self, origin: str) -> HostState:
        state = self.hosts.get(origin)
        if state is None:
            state = self.hosts[origin] = HostState(origin, self.options, self.shared_limits)
        return state

    # -- public entry points ---------------------------------------------------------------------------
    async def fetch_many(self, sources: list[SourceRecord]) -> list[FetchOutcome]:
        await self.prefetch_spawning(s.url for s in sources)
        return list(await asyncio.gather(*(self.fetch(s) for s in sources)))

    async def prefetch_spawning(self, urls: Iterable[str | None]) -> None:
        """Ask the Spawning registry about many URLs in batches, so that each fetch finds its answer cached
        (no-op without an API key)."""
        if self.spawning is None:
            return
        todo = [u for u in urls if u and urlsplit(u).hostname]
        if not self.options.allow_private_addresses:  # never send a URL of a private network to Spawning
            hosts = {origin_of(u)[1] for u in todo}
            await asyncio.gather(*(self._non_public_address(h) for h in hosts))
            todo = [u for u in todo if self._addresses.get(origin_of(u)[1]) is None]
        await self.spawning.prefetch(todo)

    async def fetch(self, source: SourceRecord) -> FetchOutcome:
        """Fetch one source; never raises (a bug becomes a failed outcome of kind ``bug``)."""
        return await self._guarded(source, "fetch", {})

    async def revalidate(
        self, source: SourceRecord, validators: dict[str, str] | None = None
    ) -> FetchOutcome:
        """Re-check availability and consent with a conditional request; the body is never read.

        ``validators`` holds ``etag``/``last_modified`` from the earlier download. The outcome is kept (alive,
        ``http_status`` 304 or 200, ``content_changed`` set), dropped (gone or opted out) or failed.
        """
        return await self._guarded(source, "revalidate", validators or {})

    async def _guarded(self, source: SourceRecord, mode: str, validators: dict[str, str]) -> FetchOutcome:
        url = source.url or ""
        ev = Evidence(source.source_id, url)
        try:
            out = await self._resolve(source, ev, mode, validators)
        except OriginPaused as exc:  # asked to wait longer than max_retry_after_s: not asked before then
            self.stats["paused_skips"] += 1
            out = FetchOutcome(
                source.source_id, Result.FAILED, "fetch.rate_limited", "transient", str(exc), final_url=url
            )
        except MissingExtraError as exc:
            out = FetchOutcome(source.source_id, Result.FAILED, "fetch.missing_extra", "terminal", str(exc))
        except ClipfactoryError as exc:
            kind = "transient" if exc.transient else "terminal"
            out = FetchOutcome(source.source_id, Result.FAILED, "fetch.error", kind, str(exc))
        except OSError as exc:  # the network's errors arrive as httpx exceptions: this is the local disk
            where = exc.filename or (self.store.root if self.store is not None else "the blob store")
            out = FetchOutcome(
                source.source_id,
                Result.FAILED,
                "fetch.storage_error",
                "transient",
                f"{exc.strerror or exc} ({where}): free space or fix the blob store's permissions, then run "
                "again; the partial download, if any, is resumed",
            )
        except Exception as exc:
            log.exception("fetch of %s failed", source.source_id)
            out = FetchOutcome(
                source.source_id, Result.FAILED, "fetch.bug", "bug", f"{type(exc).__name__}: {exc}"
            )
        out.evidence = ev
        self.stats[f"outcome.{out.status}"] += 1
        return out

    # -- one source: hops, checks, retries -------------------------------------------------------------
    async def _resolve(
        self, source: SourceRecord, ev: Evidence, mode: str, validators: dict[str, str]
    ) -> FetchOutcome:
        sid = source.source_id
        url = source.url
        if not url or urlsplit(url).scheme.lower() not in ("http", "https") or not urlsplit(url).hostname:
            return FetchOutcome(sid, Result.DROPPED, "fetch.bad_url", error=f"not an http(s) URL: {url!r}")
        for hop in range(self.options.max_redirects + 1):
            origin, host = origin_of(url)
            self._host(origin).check_open()  # an origin that asked us to come back later gets nothing now
            if (
                not self.options.allow_private_addresses
            ):  # first: such a URL goes nowhere, not even to Spawning
                where = await self._non_public_address(host)
                if where is not None:
                    return FetchOutcome(
                        sid,
                        Result.DROPPED,
                        "fetch.private_address",
                        error=f"{host} resolves to {where}, which is not a public address (set "
                        "acquire.http.allow_private_addresses = true to fetch from your own network)",
                        final_url=url,
                    )
            stopped = await self._spawning(source, url, ev, first=hop == 0)
            if stopped is not None:
                return stopped
            denied = self._check_platform(source, host, url, ev)
            if denied is not None:
                return denied
            robots = await self._host_doc(origin, "robots.txt", ev)
            if robots.state == "unreachable":
                ev.add_checks(url, "before_fetch", [robots.check(url, self.options.agent_token)])
                return FetchOutcome(
                    sid,
                    Result.FAILED,
                    "fetch.robots_unreachable",
                    "transient",
                    f"robots.txt of {origin} is unreachable ({robots.note}); RFC 9309 says assume disallow",
                )
            delay = robots.crawl_delay(self.options.agent_token)
            if delay:
                self._host(origin).bucket.slow_down(1.0 / delay)
            tdmrep = await self._host_doc(origin, "tdmrep.json", ev)
            checks = self.evaluator.before_fetch(url, robots, tdmrep)
            tdm_file = tdmrep.lookup(url)
            if not self.options.tdmrep_prefetch_deny and tdm_file is not None:
                # The header may still lift the file's reservation: decide on the response headers.
                checks = [ch for ch in checks if ch.signal != "tdmrep"]
            ev.add_checks(url, "before_fetch", checks)
            denial = c.first_denial(checks)
            if denial is not None:
                return FetchOutcome(sid, Result.DROPPED, denial.reason, error=denial.value, final_url=url)
            step = await self._with_retries(source, url, origin, ev, mode, validators, tdm_file)
            if step.kind == "redirect":
                assert step.location is not None
                url = step.location
                continue
            assert step.outcome is not None
            return step.outcome
        return FetchOutcome(
            sid,
            Result.DROPPED,
            "fetch.too_many_redirects",
            error=f"more than {self.options.max_redirects} redirects",
            final_url=url,
        )

    async def _spawning(
        self, source: SourceRecord, url: str, ev: Evidence, *, first: bool = True
    ) -> FetchOutcome | None:
        """The Spawning Do-Not-Train registry for the source URL and every redirect target, before any request
        for it: a denial drops the source; no answer fails it (``spawning_on_error = "fail"``) or is recorded."""
        if self.spawning is None:
            if first:
                detail = {"why": "no Spawning API key configured"}
                ev.add_checks(
                    url, "before_fetch", [c.Check("spawning", c.NOT_CHECKED, None, evidence=detail)]
                )
            return None
        check = await self.spawning.check(url)
        ev.add_checks(url, "before_fetch", [check])
        if check.denied:
            return FetchOutcome(
                source.source_id, Result.DROPPED, check.reason, error=check.value, final_url=url
            )
        if check.verdict == c.ERROR and self.options.spawning_on_error == "fail":
            return FetchOutcome(
                source.source_id,
                Result.FAILED,
                "fetch.spawning_unavailable",
                "transient",
                f"the Spawning Do-Not-Train registry gave no answer: {check.evidence.get('error')}",
                final_url=url,
            )
        return None

    async def _non_public_address(self, host: str) -> str | None:
        """The first non-public address ``host`` resolves to, or None (cached per host). The transport checks
        the address actually connected to as well, so a name that changes its answer is still caught."""
        if host in self._addresses:
            return self._addresses[host]
        import ipaddress

        from .transport import is_public_address

        literal = host.strip("[]")
        try:
            try:
                ipaddress.ip_address(literal.split("%", 1)[0])
                ips = [literal]
            except ValueError:  # a name: ask the resolver
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
                ips = [str(info[4][0]) for info in infos]
            found = next((ip for ip in ips if not is_public_address(ip)), None)
        except OSError:
            found = None  # unresolvable: the connection attempt will say so (fetch.connect_error)
        self._addresses[host] = found
        return found

    def _check_platform(self, source: SourceRecord, host: str, url: str, ev: Evidence) -> FetchOutcome | None:
        if self.platform_check is None:
            self.platform_check = default_platform_check()
        ok, reason = self.platform_check(source.platform, host, source.source_id)
        platform = source.platform or "web"
        if ok:
            ev.add_checks(url, "before_fetch", [c.Check("platform", c.ALLOW, f"{platform} @ {host}")])
            return None
        if not reason or not reason.startswith("policy."):
            detail = reason
            reason = f"policy.platform_terms_no_permission:{platform}"
        else:
            detail = None
        ev.add_checks(
            url,
            "before_fetch",
            [
                c.Check(
                    "platform", c.DENY, f"{platform} @ {host}", reason, {"detail": detail} if detail else {}
                )
            ],
        )
        return FetchOutcome(source.source_id, Result.DROPPED, reason, error=detail, final_url=url)

    async def _with_retries(
        self,
        source: SourceRecord,
        url: str,
        origin: str,
        ev: Evidence,
        mode: str,
        validators: dict[str, str],
        tdm_file: c.TdmStatement | None,
    ) -> _Step:
        host = self._host(origin)
        lock, users = self._url_locks.get(url) or (asyncio.Lock(), 0)
        self._url_locks[url] = (lock, users + 1)
        try:
            return await self._locked_attempts(source, url, host, ev, mode, validators, tdm_file, lock)
        finally:
            lock, users = self._url_locks[url]
            if users <= 1:
                del self._url_locks[url]
            else:
                self._url_locks[url] = (lock, users - 1)

    async def _locked_attempts(
        self,
        source: SourceRecord,
        url: str,
        host: HostState,
        ev: Evidence,
        mode: str,
        validators: dict[str, str],
        tdm_file: c.TdmStatement | None,
        lock: asyncio.Lock,
    ) -> _Step:
        o = self.options
        async with lock:
            attempt = 0
            while True:
                attempt += 1
                await host.turn()
                async with host.slot():
                    await host.wait_pause()  # a 429 may have arrived while this request queued for a slot
                    step = await self._timed_request(source, url, ev, mode, validators, tdm_file)
                if step.kind != "retry":
                    break
                too_long = step.retry_after is not None and step.retry_after > o.max_retry_after_s
                if step.retry_after is not None:
                    # Every Retry-After is recorded (a later command honours what is left of it); one too
                    # long to wait closes the origin until then, so its other items fail at once.
                    self._record_pause(host, step.retry_after, step.message, url, ev, wait=not too_long)
                if attempt >= o.max_attempts or too_long:
                    msg = step.message or step.reason
                    if too_long:
                        msg = (
                            f"{msg}: Retry-After {step.retry_after:.0f}s is longer than max_retry_after_s "
                            f"({o.max_retry_after_s:g}s); {host.origin} is not asked again before "
                            f"{iso_utc(host.closed_until_wall)}"
                        )
                    step = _Step(
                        "final",
                        FetchOutcome(
                            source.source_id,
                            Result.FAILED,
                            step.reason,
                            "transient",
                            f"{msg} (after {attempt} attempt(s))",
                            final_url=url,
                        ),
                    )
                    break
                delay = (
                    step.retry_after + random.uniform(0, min(1.0, 0.1 * step.retry_after))
                    if step.retry_after is not None
                    else backoff_delay(attempt, o.backoff_base_s, o.backoff_max_s)
                )
                self.stats["retries"] += 1
                if step.host_wide:
                    host.pause(delay, wait=True)  # a 429 slows every request to the host, not just this one
                else:
                    await asyncio.sleep(delay)
        return step

    async def _timed_request(
        self,
        source: SourceRecord,
        url: str,
        ev: Evidence,
        mode: str,
        validators: dict[str, str],
        tdm_file: c.TdmStatement | None,
    ) -> _Step:
        import httpx

        attempt: dict[str, Any] = {"url": url, "started_at": now_iso(), "status_code": None}
        ev.attempts.append(attempt)
        self.stats["requests"] += 1
        try:
            async with asyncio.timeout(self.options.total_timeout_s):
                step = await self._request(source, url, ev, mode, validators, tdm_file, attempt)
        except TimeoutError:
            step = _Step(
                "retry", reason="fetch.timeout", message=f"no answer within {self.options.total_timeout_s}s"
            )
        except httpx.TimeoutException as exc:
            step = _Step("retry", reason="fetch.timeout", message=f"{type(exc).__name__}: {exc}")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            from .transport import PrivateAddressError

            if isinstance(exc.__cause__, PrivateAddressError):
                step = _Step(
                    "final",
                    FetchOutcome(
                        source.source_id,
                        Result.DROPPED,
                        "fetch.private_address",
                        error=str(exc),
                        final_url=url,
                    ),
                )
            else:
                step = _Step("retry", reason="fetch.connect_error", message=f"{type(exc).__name__}: {exc}")
        except httpx.RemoteProtocolError as exc:
            text = str(exc)
            if "too long" in text.lower() or "too large" in text.lower():
                step = _Step(
                    "final",
                    FetchOutcome(
                        source.source_id, Result.DROPPED, "fetch.header_too_large", error=text, final_url=url
                    ),
                )
            else:
                step = _Step("retry", reason="fetch.protocol_error", message=text)
        except (httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
            step = _Step("retry", reason="fetch.connect_error", message=f"{type(exc).__name__}: {exc}")
        attempt["finished_at"] = now_iso()
        if step.kind == "retry":
            attempt.setdefault("outcome", "retry")
            attempt.setdefault("reason", step.reason)
        elif step.kind == "redirect":
            attempt["outcome"] = "redirect"
            attempt["final_url"] = step.location
        elif step.outcome is not None:
            attempt.setdefault("outcome", step.outcome.status)
            attempt.setdefault("reason", step.outcome.reason)
        return step

    # -- one request -----------------------------------------------------------------------------------
    async def _request(
        self,
        source: SourceRecord,
        url: str,
        ev: Evidence,
        mode: str,
        validators: dict[str, str],
        tdm_file: c.TdmStatement | None,
        attempt: dict[str, Any],
    ) -> _Step:
        sid = source.source_id
        headers: dict[str, str] = {}
        partial = self._load_partial(url) if mode == "fetch" else None
        if partial is not None and partial.size > 0 and partial.validator:
            headers["Range"] = f"bytes={partial.size}-"
            headers["If-Range"] = partial.validator
            attempt["range_start"] = partial.size
        if mode == "revalidate":
            if validators.get("etag"):
                headers["If-None-Match"] = validators["etag"]
            if validators.get("last_modified"):
                headers["If-Modified-Since"] = validators["last_modified"]
        client = self._next_client()
        request = client.build_request("GET", url, headers=headers)
        response = await client.send(request, stream=True)
        try:
            status = response.status_code
            attempt["status_code"] = status
            attempt["response_headers"] = _headers_evidence(response.headers)
            if status in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    return self._final(
                        sid, Result.DROPPED, f"fetch.http_{status}", url, status, "redirect without Location"
                    )
                target = urljoin(url, location)
                if urlsplit(target).scheme.lower() not in ("http", "https"):
                    return self._final(
                        sid, Result.DROPPED, "fetch.bad_url", url, status, f"redirect to {target!r}"
                    )
                return _Step("redirect", location=target)
            if status == 429 or status == 503:
                ra = parse_retry_after(response.headers.get("retry-after"))
                reason = "fetch.rate_limited" if status == 429 else "fetch.http_503"
                raw = response.headers.get("retry-after")
                msg = f"HTTP {status}" + (f" with Retry-After: {raw[:100]}" if raw else "")
                return _Step("retry", reason=reason, retry_after=ra, host_wide=True, message=msg)
            if status >= 500:
                return _Step("retry", reason=f"fetch.http_{status}", message=f"HTTP {status}")
            if status == 416 and partial is not None:
                self._drop_partial(partial)
                return _Step("retry", reason="fetch.range_not_satisfiable", message="HTTP 416; starting over")
            if status in (404, 410):
                return self._final(sid, Result.DROPPED, f"fetch.http_{status}", url, status)
            if status in (401, 403):
                # Recorded and not retried: access control is never worked around.
                return self._final(sid, Result.FAILED, f"fetch.http_{status}", url, status, kind="terminal")
            if mode == "revalidate" and status == 304:
                return self._after_headers_revalidate(sid, url, response, ev, tdm_file, validators)
            if status not in (200, 206):
                return self._final(sid, Result.DROPPED, f"fetch.http_{status}", url, status)
            checks = self.evaluator.on_headers(url, response.headers, tdm_file)
            ev.add_checks(url, "headers", checks)
            denial = c.first_denial(checks)
            if denial is not None:
                if partial is not None:
                    self._drop_partial(partial)
                attempt["outcome"] = "denied"
                return self._final(sid, Result.DROPPED, denial.reason, url, status, denial.value)
            if mode == "revalidate":
                return self._after_headers_revalidate(sid, url, response, ev, tdm_file, validators)
            return await self._download(source, url, response, ev, partial, tdm_file, attempt)
        finally:
            await response.aclose()

    def _final(
        self,
        sid: str,
        status: str,
        reason: str,
        url: str,
        http_status: int | None = None,
        error: str | None = None,
        *,
        kind: str | None = None,
    ) -> _Step:
        return _Step(
            "final",
            FetchOutcome(
                sid,
                status,
                reason,
                kind if status == Result.FAILED else None,
                error,
                final_url=url,
                http_status=http_status,
            ),
        )

    def _after_headers_revalidate(
        self, sid: str, url: str, response: Any, ev: Evidence, tdm_file: Any, validators: dict[str, str]
    ) -> _Step:
        status = response.status_code
        if status == 304:
            checks = self.evaluator.on_headers(url, response.headers, tdm_file)
            ev.add_checks(url, "headers", checks)
            denial = c.first_denial(checks)
            if denial is not None:
                return self._final(sid, Result.DROPPED, denial.reason, url, status, denial.value)
        new = _validators(response.headers)
        changed = False if status == 304 else _changed(validators, new)
        out = FetchOutcome(sid, Result.KEPT, None, final_url=url, http_status=status, validators=new)
        out.content_changed = changed
        return _Step("final", out)

    async def _download(
        self,
        source: SourceRecord,
        url: str,
        response: Any,
        ev: Evidence,
        partial: _Partial | None,
        tdm_file: c.TdmStatement | None,
        attempt: dict[str, Any],
    ) -> _Step:
        import httpx

        sid = source.source_id
        o = self.options
        status = response.status_code
        vals = _validators(response.headers)
        offset = 0
        total: int | None = None
        if status == 206 and partial is not None:
            start, end, full = _content_range(response.headers.get("content-range"))
            if start != partial.size:
                self._drop_partial(partial)
                return _Step(
                    "retry",
                    reason="fetch.range_mismatch",
                    message="Content-Range does not continue the partial",
                )
            offset, total = partial.size, full
        elif status == 206:
            # A range we did not ask for: start over without one.
            return _Step("retry", reason="fetch.range_mismatch", message="unexpected 206")
        else:
            if partial is not None:
                self._drop_partial(partial)  # the file changed (If-Range failed) or ranges are unsupported
                partial = None
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and total > o.max_bytes:
            return self._final(
                sid,
                Result.DROPPED,
                "fetch.too_large",
                url,
                status,
                f"{total} bytes > max_bytes {o.max_bytes}",
            )
        key = _partial_key(url)
        inc = self._incoming()
        path = inc / f"{key}.partial"
        meta_path = inc / f"{key}.partial.json"
        hasher = hashlib.sha256()
        if offset:
            await asyncio.get_running_loop().run_in_executor(self._pool, _hash_file, path, hasher)
        threaded = total is None or total - offset > o.inline_bytes
        # Small bodies are not worth resuming; large ones need a validator so If-Range can detect a change.
        resumable = threaded and (
            bool(vals.get("etag") and not vals["etag"].startswith("W/")) or bool(vals.get("last_modified"))
        )
        if resumable and self._partial_keys is not None:
            self._partial_keys.add(key)  # a later attempt or run may resume this file
        if resumable and not offset:
            with atomic_write(meta_path, "w") as fh:
                json.dump({"url": url, **vals, "total": total, "created_at": time.time()}, fh)
        writer = _BodyWriter(
            path,
            bool(offset),
            hasher,
            self._pool,
            in_memory=not threaded,
            high_water=o.write_queue_bytes,
            writeback=o.fsync,
            direct=o.direct_io,
            buffer_bytes=o.chunk_size,
        )
        received = offset
        head = b""
        pending: list[bytes] = []  # chunks collected for the writer thread
        pending_n = 0
        container: str | None = None
        keep_partial = False
        truncated: str | None = None
        try:
            chunks = response.aiter_raw()
            try:
                async for chunk in chunks:
                    if not chunk:
                        continue
                    received += len(chunk)
                    if received > o.max_bytes:
                        return self._final(
                            sid,
                            Result.DROPPED,
                            "fetch.too_large",
                            url,
                            status,
                            f"more than {o.max_bytes} bytes",
                        )
                    if container is None and not offset:
                        head += chunk
                        if len(head) < _SNIFF_BYTES:
                            continue
                        decided = await self._sniff(sid, url, response, head, tdm_file, ev, attempt, chunks)
                        if decided is not None:
                            return decided
                        container = sniff_container(head)
                        chunk, head = head, b""
                    if threaded:
                        pending.append(chunk)
                        pending_n += len(chunk)
                        if pending_n >= o.chunk_size:
                            await writer.write_chunks(pending)
                            pending, pending_n = [], 0
                    else:
                        await writer.write(chunk)
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                truncated = f"{type(exc).__name__}: {exc}"
            if head:  # a body shorter than the sniff window, or cut off inside it
                decided = await self._sniff(sid, url, response, head, tdm_file, ev, attempt, None)
                if decided is not None:
                    return decided
                container = sniff_container(head)
                pending.append(head)
                head = b""
            if pending:
                if threaded:
                    await writer.write_chunks(pending)
                else:
                    await writer.write(b"".join(pending))
                pending, pending_n = [], 0
            if truncated is None and total is not None and received != total:
                truncated = "body shorter than Content-Length"
            if truncated is not None:
                keep_partial = resumable
                attempt["bytes"] = received - offset
                return _Step(
                    "retry",
                    reason="fetch.truncated",
                    message=f"body ended after {received} of {total if total is not None else '?'} bytes "
                    f"({truncated})",
                )
            await writer.drain()
            keep_partial = True  # complete: the worker adopts it or deletes it
            checks, uri, container, sha = await asyncio.get_running_loop().run_in_executor(
                self._pool,
                self._complete,
                writer,
                meta_path,
                container,
                (tdm_file, c.tdm_header(response.headers)),
            )
        except BaseException:
            # Interrupted (a total timeout, a cancelled run): keep what passed the sniff, to resume with Range.
            keep_partial = resumable and (container is not None or offset > 0)
            raise
        finally:
            writer.close(b"".join(pending) if keep_partial else b"")
            attempt.setdefault("bytes", received - offset)
            if not keep_partial:
                path.unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
        ev.add_checks(url, "content", checks)
        if uri is None:
            denial = c.first_denial(checks)
            assert denial is not None
            return self._final(sid, Result.DROPPED, denial.reason or c.REASON_C2PA, url, status, denial.value)
        attempt["content_sha256"] = sha
        self.stats["bytes"] += received
        out = FetchOutcome(
            sid,
            Result.KEPT,
            blob_uri=uri,
            content_sha256=sha,
            size_bytes=received,
            acquired_at=now_iso(),
            final_url=url,
            container=container,
            http_status=status,
            validators=vals,
        )
        return _Step("final", out)

    async def _sniff(
        self,
        sid: str,
        url: str,
        response: Any,
        head: bytes,
        tdm_file: c.TdmStatement | None,
        ev: Evidence,
        attempt: dict[str, Any],
        chunks: Any,
    ) -> _Step | None:
        """Reject what is not video. HTML is read a little further for ``<meta name="tdm-reservation">``."""
        if sniff_container(head) is not None:
            return None
        ctype = response.headers.get("content-type")
        if looks_like_html(head, ctype):
            if chunks is not None:
                with contextlib.suppress(Exception):
                    async for more in chunks:
                        head += more
                        if len(head) >= _HTML_HEAD_BYTES:
                            break
            check = self.evaluator.on_html(head[:_HTML_HEAD_BYTES], tdm_file, c.tdm_header(response.headers))
            ev.add_checks(url, "content", [check])
            if check.denied:
                attempt["outcome"] = "denied"
                return self._final(
                    sid, Result.DROPPED, check.reason or c.REASON_TDM, url, response.status_code, check.value
                )
        return self._final(
            sid,
            Result.DROPPED,
            "fetch.not_video",
            url,
            response.status_code,
            f"content-type {ctype!r}, first bytes {head[:16]!r}",
        )

    def _complete(
        self,
        writer: _BodyWriter,
        meta_path: Path,
        container: str | None,
        tdm_prior: tuple[c.TdmStatement | None, c.TdmStatement | None] = (None, None),
    ) -> tuple[list[c.Check], str | None, str | None, str]:
        """Worker thread: put the body on disk, check what the file itself says (C2PA, TDMRep in its XMP),
        adopt it under its hash or delete it."""
        sha = writer.to_disk(self.options.fsync)
        path = writer.path
        if container is None:
            with open(path, "rb") as fh:
                container = sniff_container(fh.read(_SNIFF_BYTES))
        try:
            scan = None
            if container in ("mp4", "quicktime"):
                try:
                    scan = c.bmff_scan(str(path))
                except OSError:
                    scan = None
            checks = [self._c2pa(path, container, scan)]
            xmp = self.evaluator.on_media_xmp(scan.xmp, *tdm_prior) if scan is not None else None
            if xmp is not None:
                checks.append(xmp)
        except BaseException:
            path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            raise
        if c.first_denial(checks) is not None:  # the bytes of a denied file are never kept
            path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            return checks, None, container, sha
        uri = self._store().adopt(path, sha)
        meta_path.unlink(missing_ok=True)
        return checks, uri, container, sha

    def _c2pa(self, path: Path, container: str | None, scan: c.BmffScan | None = None) -> c.Check:
        mode = self.options.c2pa
        if mode == "off":
            return c.Check("c2pa", c.NOT_CHECKED, None, evidence={"why": "disabled in config"})
        mime = c.C2PA_MIME.get(container or "")
        if mime is None:
            return c.Check("c2pa", c.NOT_CHECKED, None, evidence={"why": f"c2pa cannot read {container}"})
        if self._c2pa_state is None:
            try:
                import c2pa  # noqa: F401

                self._c2pa_state = "ok"
            except ImportError:
                self._c2pa_state = "missing"
        if self._c2pa_state == "missing":
            if mode == "require":
                raise MissingExtraError("c2pa-python", "c2pa", feature="the C2PA training-mining check")
            return c.Check("c2pa", c.NOT_CHECKED, None, evidence={"why": "c2pa-python is not installed"})
        if scan is not None and scan.c2pa is False:
            # No top-level C2PA box: no manifest store can be embedded, so c2pa-python need not open it.
            check = c.check_c2pa(None)
            check.evidence["read"] = "top-level boxes: no C2PA uuid box"
            return check
        try:
            manifest = c.read_c2pa_manifest(str(path), mime)
        except MissingExtraError:
            raise
        except Exception as exc:  # an unreadable manifest is recorded, not fatal
            return c.Check("c2pa", c.ERROR, None, evidence={"error": f"{type(exc).__name__}: {exc}"})
        return c.check_c2pa(manifest)

    def _incoming(self) -> Path:
        if self._incoming_dir is None:
            self._incoming_dir = self._store().incoming()
        return self._incoming_dir

    # -- partial files ---------------------------------------------------------------------------------
    def _store(self) -> BlobStore:
        if self.store is None:
            raise ConfigError("the HTTP fetcher needs a blob store", fix="set [store] root or --store")
        return self.store

    def _load_partial(self, url: str) -> _Partial | None:
        if self.store is None:
            return None
        inc = self.store.root / "incoming"
        key = _partial_key(url)
        if self._partial_keys is None:
            self._partial_keys = _scan_partials(inc)
        if key not in self._partial_keys:  # no file system call for the common case: nothing to resume
            return None
        self._partial_keys.discard(key)  # added back if this download leaves a partial again
        path, meta_path = inc / f"{key}.partial", inc / f"{key}.partial.json"
        if not path.exists():
            meta_path.unlink(missing_ok=True)
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            return None
        part = _Partial(
            path,
            meta_path,
            path.stat().st_size,
            meta.get("etag"),
            meta.get("last_modified"),
            meta.get("total"),
        )
        if (
            meta.get("url") != url
            or time.time() - float(meta.get("created_at", 0)) > self.options.partial_max_age_s
        ):
            self._drop_partial(part)
            return None
        return part

    @staticmethod
    def _drop_partial(partial: _Partial) -> None:
        partial.path.unlink(missing_ok=True)
        partial.meta_path.unlink(missing_ok=True)

    # -- host documents --------------------------------------------------------------------------------
    async def _host_doc(self, origin: str, kind: str, ev: Evidence) -> Any:
        """robots.txt or tdmrep.json of an origin, fetched once per TTL (concurrent callers share one fetch)."""
        state = self._host(origin)
        cached = state.docs.get(kind)
        if cached is not None and cached.expires > time.monotonic():
            return cached.doc
        lock = state.doc_locks.setdefault(kind, asyncio.Lock())
        async with lock:
            cached = state.docs.get(kind)
            if cached is not None and cached.expires > time.monotonic():
                return cached.doc
            doc, record = await self._fetch_host_doc(state, kind)
            if getattr(doc, "state", None) == "unreachable":
                ttl = self.options.unreachable_ttl_s
            else:
                ttl = self.options.robots_ttl_s if kind == "robots.txt" else self.options.tdmrep_ttl_s
            state.docs[kind] = _CachedDoc(doc, time.monotonic() + ttl)
            ev.host_pauses += record.pop("pauses", [])
            ev.host_documents.append(record)
            self.stats[f"host_doc.{kind}"] += 1
            return doc

    async def _fetch_host_doc(self, state: HostState, kind: str) -> tuple[Any, dict[str, Any]]:
        import httpx

        url = state.origin + HOST_DOCUMENT_PATHS[kind]
        o = self.options
        fetched_at = now_iso()
        status: int | None = None
        body = b""
        error: str | None = None
        final_url = url
        pauses: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(o.connect_timeout_s + o.read_timeout_s):
                for _ in range(5):  # RFC 9309 §2.3.1.2: follow at least five redirects
                    await state.turn()
                    async with state.slot():
                        await state.wait_pause()
                        self.stats["requests"] += 1
                        async with self._next_client().stream("GET", final_url) as resp:
                            status = resp.status_code
                            if status in _REDIRECTS and resp.headers.get("location"):
                                final_url = urljoin(final_url, resp.headers["location"])
                                continue
                            if status in (429, 503):
                                raw = resp.headers.get("retry-after")
                                ra = parse_retry_after(raw)
                                if ra is not None:
                                    why = f"HTTP {status} with Retry-After: {raw[:100]}"
                                    pauses.append(self._record_pause(state, ra, why, final_url))
                            if 200 <= status < 300:
                                buf = bytearray()
                                async for chunk in resp.aiter_raw():
                                    buf += chunk
                                    if len(buf) >= o.host_document_max_bytes:
                                        break
                                body = bytes(buf[: o.host_document_max_bytes])
                            break
                else:
                    status, error = None, "too many redirects"
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        if kind == "robots.txt":
            doc: Any = c.RobotsDoc.from_response(
                status, body, max_bytes=o.host_document_max_bytes, error=error
            )
        else:
            doc = c.TdmRepDoc.from_response(status, body, error=error)
        record: dict[str, Any] = {
            "host": state.origin,
            "kind": kind,
            "url": final_url,
            "fetched_at": fetched_at,
            "status_code": status,
            "state": doc.state,
            "note": doc.note,
            "body_sha256": None,
            "body_uri": None,
        }
        if pauses:
            record["pauses"] = pauses  # moved to the evidence's host_pauses by _host_doc
        if body and self.store is not None:
            record["body_uri"] = self.store.put_bytes(body)
            record["body_sha256"] = hashlib.sha256(body).hexdigest()
        return doc, record


_SSL_CONTEXT: Any = None


def _ssl_context() -> Any:
    """The default TLS context (system defaults, certifi's CA bundle), built once per process."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        import ssl

        try:
            import certifi  # httpx's own CA bundle (a dependency of httpx)

            _SSL_CONTEXT = ssl.create_default_context(cafile=certifi.where())
        except ImportError:
            _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


def _validators(headers: Any) -> dict[str, str]:
    out = {}
    if headers.get("etag"):
        out["etag"] = headers["etag"]
    if headers.get("last-modified"):
        out["last_modified"] = headers["last-modified"]
    if headers.get("content-length"):
        out["content_length"] = headers["content-length"]
    return out


def _changed(old: dict[str, str], new: dict[str, str]) -> bool | None:
    for key in ("etag", "last_modified", "content_length"):
        if old.get(key) and new.get(key):
            return old[key] != new[key]
    return None


def _content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """``bytes 100-199/1000`` → ``(100, 199, 1000)``; ``*`` totals are ``None``."""
    if not value or not value.lower().startswith("bytes "):
        return None, None, None
    try:
        span, _, full = value[6:].partition("/")
        start, _, end = span.partition("-")
        return int(start), int(end), (int(full) if full.strip().isdigit() else None)
    except ValueError:
        return None, None, None


# -- running coroutines from synchronous code ------------------------------------------------------------
class LoopThread:
    """An event loop in a daemon thread, so a synchronous stage can keep one client (and its connection pool,
    token buckets and host caches) across batches."""

    def __init__(self, name: str = "cf-fetch-loop"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


__all__ = [
    "FetchOptions",
    "FetchOutcome",
    "Fetcher",
    "Evidence",
    "LoopThread",
    "OriginPaused",
    "TokenBucket",
    "backoff_delay",
    "default_platform_check",
    "looks_like_html",
    "origin_of",
    "parse_retry_after",
    "sniff_container",
    "user_agent",
    "TRANSIENT_REASONS",
]
