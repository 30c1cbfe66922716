"""Deterministic identifiers.

* ``source_id`` comes from the canonical platform id (``youtube:dQw4w9WgXcQ``), from a platform's own
  id (``shutterstock:1234``), from a hash of a normalised URL (``url:<hash>``) or, for owned files, from
  the content hash (``sha256:<hex>``).
* ``clip_id`` comes from ``(source_id, start_ms, end_ms)``.

Re-runs, resume, executor parity and takedown all depend on these being stable. The YouTube pattern
is written so that Python's ``re`` and DuckDB's RE2 accept the same text: vectorised ingest uses
:data:`YOUTUBE_URL_RE` inside SQL and the tests prove both agree.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit, urlunsplit

YOUTUBE_ID_CHARS = r"[A-Za-z0-9_-]"
YOUTUBE_BARE_RE = r"^([A-Za-z0-9_-]{11})$"
YOUTUBE_URL_RE = (
    r"^(?:[Hh][Tt][Tt][Pp][Ss]?://)?(?:(?:[Ww][Ww][Ww]|[Mm]|[Mm][Uu][Ss][Ii][Cc])\.)?"
    r"(?:[Yy][Oo][Uu][Tt][Uu][Bb][Ee](?:-[Nn][Oo][Cc][Oo][Oo][Kk][Ii][Ee])?\.[Cc][Oo][Mm]/"
    r"(?:watch/?\?(?:[^#]*&)?v=|shorts/|embed/|v/|live/)"
    r"|[Yy][Oo][Uu][Tt][Uu]\.[Bb][Ee]/)"
    r"([A-Za-z0-9_-]{11})(?:[^A-Za-z0-9_-].*)?$"
)
_bare = re.compile(YOUTUBE_BARE_RE)
_url = re.compile(YOUTUBE_URL_RE)

CLIP_ID_LEN = 20


def youtube_id(text: str | None) -> str | None:
    """Return the 11-character YouTube id in any common spelling, or ``None`` if there is none.

    Accepts ``watch?v=``, ``youtu.be/``, ``shorts/``, ``embed/``, ``v/``, ``live/``, with or without
    ``&t=`` and other parameters, with or without scheme and ``www.``/``m.``, and a bare id.
    """
    if not text:
        return None
    text = text.strip()
    m = _bare.match(text) or _url.match(text)
    return m.group(1) if m else None


def youtube_source_id(text: str) -> str | None:
    vid = youtube_id(text)
    return f"youtube:{vid}" if vid else None


def canonical_youtube_url(video_id: str) -> str:
    return f"https://www.youtube.com/watch?v={video_id}"


def normalise_url(url: str) -> str:
    """Lower-case the scheme and host, drop the fragment and default ports."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), host, parts.path or "/", parts.query, ""))


def url_source_id(url: str) -> str:
    """A source id for a web URL that is not a known platform: ``url:<24 hex of sha256>``."""
    yt = youtube_source_id(url)
    if yt:
        return yt
    return "url:" + hashlib.sha256(normalise_url(url).encode()).hexdigest()[:24]


def platform_source_id(platform: str, platform_id: str) -> str:
    platform = platform.strip().lower()
    platform_id = platform_id.strip()
    if not platform or not platform_id:
        raise ValueError("platform and platform_id must be non-empty")
    if platform == "youtube":
        vid = youtube_id(platform_id)
        if vid is None:
            raise ValueError(f"not a valid YouTube id: {platform_id!r}")
        platform_id = vid
    return f"{platform}:{platform_id}"


def content_source_id(sha256_hex: str) -> str:
    """Owned files are identified by their content hash."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256_hex):
        raise ValueError(f"not a sha256 hex digest: {sha256_hex!r}")
    return f"sha256:{sha256_hex}"


def clip_id(source_id: str, start_ms: int, end_ms: int) -> str:
    """Deterministic clip id. The SQL twin is :data:`CLIP_ID_SQL`."""
    return hashlib.sha256(f"{source_id}|{int(start_ms)}|{int(end_ms)}".encode()).hexdigest()[:CLIP_ID_LEN]


#: DuckDB expression computing :func:`clip_id` from columns ``source_id``, ``start_ms``, ``end_ms``.
CLIP_ID_SQL = f"substr(sha256(source_id || '|' || CAST(start_ms AS BIGINT) || '|' || CAST(end_ms AS BIGINT)), 1, {CLIP_ID_LEN})"


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            buf = fh.read(chunk)
            if not buf:
                break
            h.update(buf)
    return h.hexdigest()
