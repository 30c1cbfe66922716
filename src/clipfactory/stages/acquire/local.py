"""``acquire.local``: copy owned media from a local path or an fsspec URL into the blob store."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field

from ... import ids
from ...errors import NotFoundError, TerminalError, TransientError, require
from ...records import Result, SourceRecord
from ...registry import register
from ...resources import Resources
from ...stage import Stage, StageConfig

#: Fields a re-acquisition keeps from the catalog row of the same content (they describe the bytes).
_MEDIA_FIELDS = (
    "duration_ms",
    "container",
    "video_codec",
    "audio_codec",
    "width",
    "height",
    "fps",
    "variable_fps",
    "rotation",
    "n_audio_streams",
    "analysis_uri",
    "fingerprint_uri",
)


def local_path(uri: str) -> str | None:
    """The filesystem path of ``uri`` when it is a plain path or a ``file://`` URL, else ``None``."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if "://" in uri:
        return None
    return uri


def open_uri(uri: str):
    """Open ``uri`` for binary reading: a local path directly, anything else through fsspec."""
    path = local_path(uri)
    if path is not None:
        return open(path, "rb")
    fsspec = require("fsspec", "s3", feature=f"reading {uri.split('://')[0]}:// URLs")
    try:
        return fsspec.open(uri, "rb").open()
    except ImportError as exc:  # e.g. s3fs missing for s3://
        raise TerminalError(
            f"no fsspec driver for this URL ({exc})", item=uri, fix="pip install 'clipfactory[s3]'"
        ) from exc


def stream_into_store(store, fh) -> tuple[str, str, int]:
    """Stream an open binary file into the store (temp file in ``incoming/``, then rename).

    Returns ``(uri, sha256, size)``. A crash leaves at most a ``.part`` file that
    :meth:`BlobStore.clean_incoming` removes.
    """
    return store.put_stream(fh, ".acquire.")


@register
class LocalAcquireStage(Stage):
    """Acquire owned media into the content-addressed blob store.

    Reads: a :class:`SourceRecord` planned by :func:`clipfactory.factory.add.plan_owned` (the owned-media scan):
    ``source_id = sha256:<hex>`` of the content, ``origin_uri`` (a local path, a ``file://`` URL or another
    fsspec URL; ``s3://`` needs the ``s3`` extra) and the declared ``content_license``, ``rights_holder`` and
    ``title``. The item id is the source id plus a hash of that declared provenance, so a changed licence
    is recorded again while unchanged content is skipped on resume.

    Writes: the :class:`SourceRecord` with ``platform = "owned"``, ``blob_uri``, ``content_sha256``,
    ``size_bytes`` and ``acquired_at``. Media fields already in the catalog for the same content are kept.

    Drops: ``acquire.empty_file`` (zero bytes); ``takedown.tombstoned:<id>`` when the content was taken down
    before (checked by source id before reading and by content hash after; the bytes are not kept). Fails: ``terminal`` when the origin is missing or
    unreadable, or when its content no longer matches the planned hash (``acquire.content_changed``);
    ``transient`` for I/O errors worth retrying.

    Resources: one CPU (hashing), I/O bound.
    """

    name = "acquire.local"
    version = 1
    resources = Resources(cpus=1, memory_gb=0.5)
    batch_size = 16
    input_type = SourceRecord
    output_type = SourceRecord

    class Config(StageConfig):
        allow_empty: bool = Field(False, description="Accept zero-byte files instead of dropping them.")

    def process_batch(self, items: list) -> list[Result]:
        from ...fingerprints.guard import TombstoneGuard

        self._guard = TombstoneGuard(self.context.catalog_path)  # one catalog read per batch
        return super().process_batch(items)

    def _tombstoned(self, **keys) -> str | None:
        guard = getattr(self, "_guard", None)
        return guard.check(**keys) if guard else None

    def item_id(self, item: SourceRecord) -> str:
        declared = json.dumps([item.origin_uri, item.content_license, item.rights_holder, item.title])
        return f"{item.source_id}@{hashlib.sha256(declared.encode()).hexdigest()[:12]}"

    def _existing(self, source_id: str) -> dict | None:
        """The catalog row of the same content, if any (read-only)."""
        if not self.context.catalog_path or not Path(self.context.catalog_path).exists():
            return None
        from ...catalog import Catalog

        rows = Catalog(self.context.catalog_path).query(
            "SELECT * FROM sources WHERE source_id = ?", [source_id]
        )
        return rows[0] if rows else None

    def process(self, item: SourceRecord) -> Result:
        item_id = self.item_id(item)
        uri = item.origin_uri
        if not uri:
            return Result.failed(item_id, "terminal", "acquire.no_origin: the record has no origin_uri")
        refused = self._tombstoned(source_id=item.source_id, sha256=item.content_sha256)
        if refused:  # taken down before: the bytes are not copied
            return Result.dropped(item_id, refused, {"origin_uri": uri})
        store = self.context.store()
        path = local_path(uri)
        if path is not None and not Path(path).is_file():
            raise NotFoundError("file not found", item=uri, fix="check the path given to `clipfactory add`")
        try:
            with open_uri(uri) as fh:
                blob, sha, size = stream_into_store(store, fh)
        except FileNotFoundError as exc:
            raise NotFoundError("file not found", item=uri) from exc
        except (TimeoutError, ConnectionError) as exc:
            raise TransientError(f"reading failed: {exc}", item=uri) from exc
        refused = self._tombstoned(source_id=ids.content_source_id(sha), sha256=sha)
        if refused:
            store.delete(blob)
            return Result.dropped(item_id, refused, {"origin_uri": uri, "sha256": sha})
        if size == 0 and not self.config.allow_empty:
            return Result.dropped(item_id, "acquire.empty_file", {"origin_uri": uri})
        planned = item.content_sha256 or (
            item.source_id[7:] if item.source_id.startswith("sha256:") else None
        )
        if planned and planned != sha:
            return Result.failed(
                item_id,
                "terminal",
                f"acquire.content_changed: {uri} changed since it was listed "
                f"(sha256 {sha[:12]}, listed as {planned[:12]}); add it again",
            )
        kept = {}
        old = self._existing(ids.content_source_id(sha))
        if old:
            kept = {k: old[k] for k in _MEDIA_FIELDS if old.get(k) is not None}
        rec = SourceRecord(
            source_id=ids.content_source_id(sha),
            platform="owned",
            platform_id=item.platform_id,
            url=item.url,
            content_sha256=sha,
            blob_uri=blob,
            origin_uri=uri,
            content_license=item.content_license,
            rights_holder=item.rights_holder,
            uploader=item.uploader,
            title=item.title,
            size_bytes=size,
            acquired_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **kept,
        )
        return Result.kept(item_id, rec, detail={"origin_uri": uri, "size_bytes": size})
