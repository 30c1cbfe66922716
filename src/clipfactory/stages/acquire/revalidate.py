"""``acquire.revalidate``: ask again whether fetched web sources are still there and still consented to.

Reads
    :class:`~clipfactory.records.SourceRecord` rows with a ``url`` and a blob (the copy we hold), and, from
    the catalog (read-only), the ``ETag``/``Last-Modified`` of the response that copy came from.
Writes
    nothing new: each source is ``kept`` with no output record when its link is alive (a ``304``, or a
    ``200`` whose validators changed: ``content_changed``), ``dropped`` when it is gone or its owner opted
    out, ``failed`` when it could not be checked. ``Result.detail`` carries the evidence (every request with
    its status and headers, every consent check, robots.txt/tdmrep.json fetched on the way), the link's
    ``http_status``, ``content_changed`` and the held copy; :func:`clipfactory.acquire.revalidate.load_revalidation`
    turns it into evidence rows, ``link_status`` and the takedown queue.
Drop reasons
    those of ``acquire.http`` a link can still give: ``fetch.http_404``, ``fetch.http_410`` (and other 4xx),
    ``consent.robots_disallow``, ``consent.x_robots_noai``, ``consent.tdm_reserved``,
    ``consent.content_usage_train_ai_n``, ``consent.spawning_opt_out`` (with a Spawning API key),
    ``policy.platform_terms_no_permission:<platform>``, ``fetch.private_address``, ``fetch.bad_url``, ...
Failures (each names its reason)
    ``fetch.rate_limited``, ``fetch.timeout``, ``fetch.http_5xx``, ``fetch.connect_error``,
    ``fetch.robots_unreachable``, ``fetch.spawning_unavailable``, ``fetch.http_401``, ``fetch.http_403``.
Resources
    about one CPU (one event loop); the body of a response is never read.

The options are those of ``acquire.http`` (the ``clipfactory sources revalidate`` driver reads
``[acquire.http]`` and lets ``[acquire.revalidate]`` override it). Unlike a fetch, robots.txt and
tdmrep.json are asked again rather than taken from the catalog, and every source is checked on every run
(the stage is not resumed). Each batch asks the Spawning registry once for all of its URLs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from ...acquire.evidence import utcnow
from ...records import Record, Result, SourceRecord
from ...registry import register
from .http import HttpFetchStage

log = logging.getLogger(__name__)


@register
class RevalidateStage(HttpFetchStage):
    name = "acquire.revalidate"
    version = 1
    batch_size = 1000  # resources, input and output types: those of acquire.http
    #: every source is checked again on each run: a link alive yesterday may be gone today
    resume = False

    class Config(HttpFetchStage.Config):
        pass

    def _prime_from_catalog(self) -> None:
        """A revalidation asks robots.txt and tdmrep.json again: an owner may have changed them."""

    def process_batch(self, items: list[Record]) -> list[Result]:
        if not items:
            return []
        from ...acquire.revalidate import held_validators

        fetcher = self.fetcher
        assert self._loop is not None
        started = time.monotonic()
        sources = self.as_sources(items)
        validators = held_validators(self.context.catalog_path, sources)

        async def check():
            await fetcher.prefetch_spawning(s.url for s in sources if s.url)  # one query for the batch
            return await asyncio.gather(
                *(fetcher.revalidate(s, validators.get(s.source_id)) for s in sources)
            )

        outcomes = self._loop.run(check())
        checked_at = utcnow().isoformat()
        log.info("acquire.revalidate: %d items in %.2fs", len(items), time.monotonic() - started)
        return [_result(s, out, checked_at) for s, out in zip(sources, outcomes, strict=True)]


def _result(source: SourceRecord, out: Any, checked_at: str) -> Result:
    info = {
        "revalidate": {
            **(out.evidence.to_dict() if out.evidence else {"url": source.url}),
            "final_url": out.final_url,
            "http_status": out.http_status,
            "content_changed": out.content_changed,
            "checked_at": checked_at,  # every check is a new observation, recorded even when nothing changed
            "held": {"blob_uri": source.blob_uri, "content_sha256": source.content_sha256},
        }
    }
    detail = json.dumps(info, sort_keys=True, default=str)
    if out.status == Result.KEPT:  # alive; no output record: the source row is not rewritten
        return Result.kept(source.source_id, detail=detail)
    return out.not_kept_result(source.source_id, detail)
