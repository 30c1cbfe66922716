"""The Spawning Do-Not-Train registry: per-URL opt-outs, asked through Spawning's API (needs a key).

The bulk query is ``POST <api>/api/v2/query/urls`` with ``Authorization: API <key>`` and a ``text/plain`` body
of URLs, one per line (UTF-8). The answer is ``{"urls": [{"url": ..., "optIn": bool, "optOut": bool}, ...]}`` in
request order. The API wants more than one URL per request, so a single URL is sent with an empty second line
(as Hugging Face's datasets-server does); batches of up to 1000 URLs are customary.

:class:`SpawningRegistry` asks through an ``httpx.AsyncClient`` it is given (the fetcher's). :meth:`prefetch`
looks many URLs up in batches, a few batches at a time; :meth:`check` answers one URL from the cache, joins a
lookup already under way, or sends a query of its own. Answers are cached per URL; failures (after retries
on 429 and 5xx, honouring ``Retry-After``) are cached briefly, so one outage does not cost a query per URL.

Verdicts: ``optOut`` → deny (``consent.spawning_opt_out``); ``optIn`` (and no ``optOut``) → allow; neither →
unstated; no usable answer → ``error`` (the fetcher then fails the source as transient with
``fetch.spawning_unavailable``, or goes on, as ``spawning_on_error`` says). The evidence names the API, the time of the query and the response entry; never the key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import consent as c
from .http import backoff_delay, now_iso, parse_retry_after

log = logging.getLogger(__name__)

SIGNAL = "spawning"
DEFAULT_BATCH_SIZE = 1000
_MAX_ENTRY_CHARS = 2000


class SpawningAPIError(Exception):
    """The registry gave no usable answer: unreachable after retries, refused, or unreadable."""

    def __init__(self, message: str, attempts: int = 1):
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class _Answer:
    """What the registry said about one URL (``entry``), or why it said nothing (``error``)."""

    queried_at: str
    entry: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 1
    expires: float = math.inf  # monotonic; 0 = not cached


def query_lines(urls: list[str]) -> list[str]:
    """The lines of one request: the URLs, with an empty line after a lone URL (the API needs two)."""
    return list(urls) + ([""] if len(urls) == 1 else [])


def parse_response(raw: bytes, lines: int, urls: int) -> list[dict[str, Any]]:
    """The entries for the first ``urls`` of ``lines`` lines sent, in request order.

    Raises :class:`SpawningAPIError` for a body that is not JSON, has no ``urls`` list, has a different number of
    entries than lines were sent (the entry of a padding line may be left out), or an entry without boolean
    ``optIn`` and ``optOut``.
    """
    try:
        data = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise SpawningAPIError(f"the response is not JSON ({exc})") from None
    entries = data.get("urls") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise SpawningAPIError(f"the response has no 'urls' list: {_clip(data)}")
    if len(entries) != lines and len(entries) != urls:
        raise SpawningAPIError(f"the response has {len(entries)} entries for {lines} lines sent")
    for i, entry in enumerate(entries[:urls]):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("optOut"), bool)
            or not isinstance(entry.get("optIn"), bool)
        ):
            raise SpawningAPIError(f"entry {i} has no boolean optIn and optOut: {_clip(entry)}")
    return entries[:urls]


def _clip(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _entry_evidence(entry: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(entry, default=str)) <= _MAX_ENTRY_CHARS:
        return entry
    short = {k: entry[k] for k in ("url", "optIn", "optOut") if k in entry}
    if isinstance(short.get("url"), str):
        short["url"] = short["url"][:_MAX_ENTRY_CHARS]
    return {**short, "truncated": True}


class SpawningRegistry:
    """Asks the Spawning Do-Not-Train registry about URLs; use inside one event loop.

    ``client`` is an ``httpx.AsyncClient`` (the fetcher's); this class never closes it. Retries reuse the
    fetcher's rules: ``max_attempts`` attempts, exponential backoff with jitter on network errors and 5xx, and a
    pause of ``Retry-After`` for every request to the API on 429 and 503 (one longer than ``max_retry_after_s``
    ends the attempts). ``timeout_s`` bounds one request, headers and body.
    """

    def __init__(
        self,
        client: Any,
        api_key: str,
        *,
        api_url: str = c.SPAWNING_API_URL,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = 4,
        timeout_s: float = 30.0,
        max_attempts: int = 4,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        max_retry_after_s: float = 300.0,
        cache_ttl_s: float = 86400.0,
        error_ttl_s: float = 60.0,
        max_cached: int = 1_000_000,
        max_response_bytes: int = 64 * 1024 * 1024,
        stats: Counter[str] | None = None,
    ):
        if not api_key:
            raise ValueError("the Spawning registry needs an API key")
        self.client = client
        self._key = api_key
        self.api_url = api_url
        self.batch_size = max(1, int(batch_size))
        self.timeout_s = float(timeout_s)
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self.cache_ttl_s = float(cache_ttl_s)
        self.error_ttl_s = float(error_ttl_s)
        self.max_cached = max(1, int(max_cached))
        self.max_response_bytes = int(max_response_bytes)
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self._sem = asyncio.Semaphore(max(1, int(concurrency)))
        self._not_before = 0.0  # monotonic time before which no request goes out (Retry-After)
        self._cache: dict[str, _Answer] = {}
        self._pending: dict[str, asyncio.Future[_Answer]] = {}

    def __repr__(self) -> str:  # never the key
        return f"SpawningRegistry({self.api_url!r}, batch_size={self.batch_size})"

    # -- public ----------------------------------------------------------------------------------------
    @staticmethod
    def queryable(url: str | None) -> bool:
        """Whether a URL can be sent: one line of the request body."""
        return bool(url) and "\n" not in url and "\r" not in url  # type: ignore[operator]

    async def prefetch(self, urls: Iterable[str | None]) -> None:
        """Look URLs up in batches of ``batch_size`` (a few at a time) and cache the answers; never raises
        for the registry's failures (they are cached briefly and reported by :meth:`check`)."""
        await self._lookup([u for u in urls if u and self.queryable(u)])

    async def check(self, url: str) -> c.Check:
        """The registry's verdict on one URL (from the cache when it was looked up already)."""
        if not self.queryable(url):
            return c.Check(
                SIGNAL,
                c.ERROR,
                None,
                evidence={
                    "api": self._scrub(self.api_url),
                    "error": "a URL with a line break cannot be asked about",
                },
            )
        answers = await self._lookup([url])
        return self._to_check(answers[url])

    # -- lookups ---------------------------------------------------------------------------------------
    async def _lookup(self, urls: list[str]) -> dict[str, _Answer]:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        answers: dict[str, _Answer] = {}
        waits: dict[str, asyncio.Future[_Answer]] = {}
        mine: dict[str, asyncio.Future[_Answer]] = {}
        for url in dict.fromkeys(urls):
            cached = self._cache.get(url)
            if cached is not None and cached.expires > now:
                answers[url] = cached
                self.stats["spawning.cache_hits"] += 1
            elif url in self._pending:
                waits[url] = self._pending[url]
            else:
                mine[url] = self._pending[url] = loop.create_future()
        if mine:
            todo = list(mine)
            chunks = [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
            try:
                await asyncio.gather(*(self._run_chunk(chunk, mine) for chunk in chunks))
            finally:
                # Cancelled part-way: whoever waits on these URLs gets an (uncached) error, never a hang.
                for url, fut in mine.items():
                    if not fut.done():
                        fut.set_result(_Answer(now_iso(), error="the lookup was interrupted", expires=0.0))
                    if self._pending.get(url) is fut:
                        del self._pending[url]
        for url, fut in {**mine, **waits}.items():
            answers[url] = await fut
        return answers

    async def _run_chunk(self, chunk: list[str], futures: dict[str, asyncio.Future[_Answer]]) -> None:
        try:
            entries, attempts = await self._query(chunk)
            error = None
        except SpawningAPIError as exc:
            entries, attempts, error = [], exc.attempts, self._scrub(str(exc))
        except Exception as exc:  # a bug must not end a run: recorded like an unreachable registry
            log.exception("Spawning registry lookup failed")
            entries, attempts, error = [], 1, self._scrub(f"{type(exc).__name__}: {exc}")
        at = now_iso()
        now = time.monotonic()
        if error is not None:
            self.stats["spawning.errors"] += 1
            log.warning("Spawning registry: no answer for %d URL(s): %s", len(chunk), error)
        for i, url in enumerate(chunk):
            if error is None:
                answer = _Answer(at, entry=entries[i], attempts=attempts, expires=now + self.cache_ttl_s)
            else:
                answer = _Answer(at, error=error, attempts=attempts, expires=now + self.error_ttl_s)
            self._remember(url, answer)
            fut = futures[url]
            if not fut.done():
                fut.set_result(answer)
            if self._pending.get(url) is fut:
                del self._pending[url]

    def _remember(self, url: str, answer: _Answer) -> None:
        if answer.expires <= time.monotonic():
            return
        self._cache.pop(url, None)
        self._cache[url] = answer
        while len(self._cache) > self.max_cached:
            del self._cache[next(iter(self._cache))]  # the oldest answer

    # -- one query, with retries -----------------------------------------------------------------------
    async def _query(self, urls: list[str]) -> tuple[list[dict[str, Any]], int]:
        """``(entries in request order, attempts)``; raises :class:`SpawningAPIError`."""
        import httpx

        lines = query_lines(urls)
        body = "\n".join(lines).encode("utf-8")
        headers = {
            "Authorization": f"API {self._key}",
            "Content-Type": "text/plain; charset=utf-8",
            "Accept": "application/json",
        }
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                status, raw, retry_after = await self._post(body, headers)
                if status == 200:
                    self.stats["spawning.urls"] += len(urls)
                    return parse_response(raw, len(lines), len(urls)), attempt
                problem = f"HTTP {status}"
                if status != 429 and status < 500:
                    hint = " (the API key was refused)" if status in (401, 403) else ""
                    raise SpawningAPIError(f"the registry answered {problem}{hint}", attempt)
            except SpawningAPIError as exc:
                exc.attempts = attempt
                raise
            except (TimeoutError, httpx.TimeoutException):
                problem = f"no answer within {self.timeout_s:g}s"
            except httpx.HTTPError as exc:  # connection refused or reset, protocol errors
                problem = f"{type(exc).__name__}: {exc}"
            if retry_after is not None and retry_after > self.max_retry_after_s:
                raise SpawningAPIError(
                    f"{problem}; Retry-After {retry_after:.0f}s is longer than max_retry_after_s", attempt
                )
            if attempt >= self.max_attempts:
                raise SpawningAPIError(f"{problem} (after {attempt} attempt(s))", attempt)
            self.stats["spawning.retries"] += 1
            if retry_after is not None:
                self._not_before = max(self._not_before, time.monotonic() + retry_after)  # every query waits
            else:
                await asyncio.sleep(backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s))

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, float | None]:
        import httpx

        await self._wait_pause()
        async with self._sem:
            await self._wait_pause()  # a 429 may have arrived while this query waited for a slot
            self.stats["spawning.requests"] += 1
            async with (
                asyncio.timeout(self.timeout_s),
                self.client.stream(
                    "POST", self.api_url, content=body, headers=headers, timeout=httpx.Timeout(self.timeout_s)
                ) as resp,
            ):
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
                if resp.status_code != 200:
                    return resp.status_code, b"", retry_after
                buf = bytearray()
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    if len(buf) > self.max_response_bytes:
                        raise SpawningAPIError(f"the response is larger than {self.max_response_bytes} bytes")
                return 200, bytes(buf), retry_after

    async def _wait_pause(self) -> None:
        while True:
            wait = self._not_before - time.monotonic()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    # -- verdicts --------------------------------------------------------------------------------------
    def _to_check(self, answer: _Answer) -> c.Check:
        ev: dict[str, Any] = {"api": self._scrub(self.api_url), "queried_at": answer.queried_at}
        if answer.error is not None or answer.entry is None:
            ev.update(error=answer.error or "no answer", attempts=answer.attempts)
            return c.Check(SIGNAL, c.ERROR, None, evidence=ev)
        entry = answer.entry
        ev["entry"] = _entry_evidence(entry)
        if entry.get("optOut") is True:
            return c.Check(SIGNAL, c.DENY, "optOut", c.REASON_SPAWNING, ev)
        if entry.get("optIn") is True:
            return c.Check(SIGNAL, c.ALLOW, "optIn", evidence=ev)
        return c.Check(SIGNAL, c.UNSTATED, None, evidence=ev)

    def _scrub(self, text: str) -> str:
        """Text for evidence and logs, with the key blanked out should it appear (in a URL, say)."""
        return text.replace(self._key, "***") if self._key in text else text


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "SIGNAL",
    "SpawningAPIError",
    "SpawningRegistry",
    "parse_response",
    "query_lines",
]
