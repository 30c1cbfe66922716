"""``acquire.http``: download web sources over HTTP(S) into the blob store, with consent checks.

Reads
    :class:`~clipfactory.records.SourceRecord` rows with a ``url``.
Writes
    the same record with ``blob_uri``, ``content_sha256``, ``size_bytes`` and ``acquired_at`` set; the bytes go
    to the content-addressed blob store. ``Result.detail`` carries the evidence (every request with its
    status and headers, every consent check, robots.txt/tdmrep.json fetched on the way), which
    :func:`clipfactory.acquire.evidence.load_fetch_evidence` loads into the catalog's evidence tables.
Drop reasons
    ``consent.robots_disallow``, ``consent.x_robots_noai``, ``consent.x_robots_noindex``,
    ``consent.tdm_reserved``, ``consent.content_usage_train_ai_n``, ``consent.c2pa_training_not_allowed``,
    ``consent.spawning_opt_out`` (with a Spawning API key),
    ``policy.platform_terms_no_permission:<platform>``, ``fetch.http_404``, ``fetch.http_410`` (and other 4xx),
    ``fetch.not_video``, ``fetch.private_address``, ``fetch.too_large``, ``fetch.too_many_redirects``, ``fetch.header_too_large``,
    ``fetch.bad_url``, ``takedown.tombstoned:<id>`` (taken down before: refused by source id before any
    request, or by content hash after the download, whose bytes are then deleted).
Failures (retried on a later run; each names its reason too)
    transient: ``fetch.rate_limited`` (a 429 or 503 after ``max_attempts``, or a ``Retry-After`` longer than
    ``max_retry_after_s``: the origin then gets no request before that time, in later runs too, see
    ``host_pauses``), ``fetch.timeout``, ``fetch.truncated`` (the partial file is kept and
    resumed with ``Range``), ``fetch.http_5xx``, ``fetch.connect_error``, ``fetch.robots_unreachable``,
    ``fetch.spawning_unavailable`` (the registry did not answer), ``fetch.storage_error`` (the local disk:
    full, or not writable);
    terminal: ``fetch.http_401``, ``fetch.http_403`` (never worked around).
Resources
    about one CPU (one event loop; hashing and writing on a few worker threads), little memory: bodies
    stream to disk. Run in several workers (the Ray executor), the workers share one set of per-host
    limits (``per_host_connections``, ``per_host_rate``, ``per_host_burst``): see
    :mod:`clipfactory.limits`.

The whole batch runs concurrently on one event loop that lives in a thread for the stage's lifetime, so
connections, per-host rate limits and the robots.txt/tdmrep.json caches carry across batches. The stage
retries 429/5xx/timeouts itself (honouring ``Retry-After``); run it with executor ``retries=1``.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from ...acquire.http import (
    Fetcher,
    FetchOptions,
    LoopThread,
    default_platform_check,
    iso_utc,
    user_agent,
)
from ...records import Record, Result, SourceRecord
from ...registry import register
from ...resources import Resources
from ...stage import Stage

log = logging.getLogger(__name__)


@register
class HttpFetchStage(Stage):
    name = "acquire.http"
    version = 1
    resources = Resources(cpus=1.0, gpus=0.0, memory_gb=1.0)
    batch_size = 128
    input_type = SourceRecord
    output_type = SourceRecord
    #: per-host connections and rate hold over all the workers of a run, not per worker
    shared_limits = True

    class Config(FetchOptions):
        pass

    def __init__(self, config=None, context=None, *, platform_check=None, transport=None):
        super().__init__(config, context)
        self._platform_check = platform_check
        self._transport = transport
        self._loop: LoopThread | None = None
        self._fetcher: Fetcher | None = None
        self.last_stats: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------------------
    def setup(self) -> None:
        if self._fetcher is not None:
            return
        store = self.context.store() if self.context.store_root else None
        check = self._platform_check
        if check is None:
            policy = self.context.extras.get("policy_settings")
            check = default_platform_check(SimpleNamespace(**policy) if policy else None)
        self._fetcher = Fetcher(
            self.config,
            store,
            platform_check=check,
            transport=self._transport,
            shared_limits=self.context.extras.get("shared_limits"),
        )
        self._prime_from_catalog()
        self._prime_pauses()
        self._loop = LoopThread()
        self._loop.run(self._fetcher.open())

    def teardown(self) -> None:
        if self._fetcher is not None:
            self.last_stats = dict(self._fetcher.stats)
        if self._loop is not None and self._fetcher is not None:
            try:
                self._loop.run(self._fetcher.aclose())
            finally:
                self._loop.close()
        self._loop = None
        self._fetcher = None

    @property
    def fetcher(self) -> Fetcher:
        self.setup()
        assert self._fetcher is not None
        return self._fetcher

    def _prime_from_catalog(self) -> None:
        """Reuse robots.txt/tdmrep.json fetched by earlier runs while their TTL lasts (read-only)."""
        path = self.context.catalog_path
        if not path or self._fetcher is None or self._fetcher.store is None:
            return
        try:
            from ...acquire.evidence import recent_host_documents
            from ...catalog import Catalog

            ttl = max(self.config.robots_ttl_s, self.config.tdmrep_ttl_s)
            rows = recent_host_documents(Catalog(path), ttl)
        except Exception as exc:  # a cache, never a reason to fail a run
            log.debug("no host documents primed from the catalog: %s", exc)
            return
        now = datetime.now(UTC).replace(tzinfo=None)
        for row in rows:
            body = b""
            if row["body_uri"]:
                try:
                    body = self._fetcher.store.path_of(row["body_uri"]).read_bytes()
                except Exception:
                    continue
            age = (now - row["fetched_at"]).total_seconds()
            self._fetcher.prime_host_document(row["host"], row["kind"], age, row["status_code"], body)

    def _prime_pauses(self) -> None:
        """Honour the ``Retry-After`` pauses earlier commands and runs recorded (``host_pauses``): an origin
        that asked us to come back later gets no request before then (read-only)."""
        path = self.context.catalog_path
        if not path or self._fetcher is None:
            return
        try:
            from ...acquire.evidence import active_host_pauses
            from ...catalog import Catalog

            rows = active_host_pauses(Catalog(path))
        except Exception as exc:  # an unreadable catalog fails the run elsewhere, with its own error
            log.warning("the Retry-After pauses recorded in the catalog could not be read: %s", exc)
            return
        for row in rows:
            until = row["not_before"].replace(tzinfo=UTC).timestamp()
            self._fetcher.prime_pause(row["host"], until, row["why"])
            log.info(
                "%s: no request before %s (%s, recorded earlier)", row["host"], iso_utc(until), row["why"]
            )

    # -- work ------------------------------------------------------------------------------------------
    @staticmethod
    def as_sources(items: list[Record]) -> list[SourceRecord]:
        """The batch as source records: an item of another record type is rebuilt from its row."""
        return [i if isinstance(i, SourceRecord) else SourceRecord.from_row(i.to_row()) for i in items]

    def process_batch(self, items: list[Record]) -> list[Result]:
        if not items:
            return []
        fetcher = self.fetcher
        assert self._loop is not None
        started = time.monotonic()
        from ...fingerprints.guard import TombstoneGuard

        guard = TombstoneGuard(self.context.catalog_path)  # one catalog read per batch
        sources = self.as_sources(items)
        refused = {s.source_id: guard.check(source_id=s.source_id) for s in sources} if guard else {}
        todo = [s for s in sources if not refused.get(s.source_id)]
        fetched = dict(zip([id(s) for s in todo], self._loop.run(fetcher.fetch_many(todo)), strict=True))
        log.info("acquire.http: %d items in %.2fs", len(items), time.monotonic() - started)
        results = []
        for s in sources:
            if refused.get(s.source_id):  # taken down before: not requested again
                results.append(Result.dropped(s.source_id, refused[s.source_id], {"url": s.url}))
                continue
            r = fetched[id(s)].to_result(s)
            rec = r.records[0] if r.records else None
            again = guard.check(sha256=rec.content_sha256) if guard and rec is not None else None
            if again and rec is not None:  # the same bytes as taken-down content: not kept
                if rec.blob_uri and fetcher.store is not None:
                    fetcher.store.delete(rec.blob_uri)
                r = Result.dropped(s.source_id, again, r.detail)
            results.append(r)
        return results

    def process(self, item: Record) -> Result:
        return self.process_batch([item])[0]

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["user_agent"] = user_agent(self.config)
        return d
