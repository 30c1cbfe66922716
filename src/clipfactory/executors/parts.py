"""Where the executor's Parquet parts wait to be loaded into the catalog.

A part is one batch's outcome rows (or output records) as a Parquet file, named
``<run id>/<stage run token>-<batch>-<stage>-<kind>.parquet`` relative to the parts root (a part that a Ray
worker wrote has ``a<attempt>-<time and random token>`` for ``<batch>``), so names sort in the order parts
were written. The root is a local folder (by default ``<catalog>.parts`` beside the catalog) or an fsspec
URL (``s3://bucket/prefix``), so that results that reached the writer survive the loss of its machine's
disk: a writer started again, anywhere, with the same catalog loads them (the catalog records the
locations its parts went to).

Writes are atomic in both cases: a local part is written to a hidden temporary sibling and renamed; an
object goes up in one request or as a multipart upload that becomes an object only after its last byte
(:func:`clipfactory.storage.write_object`), so a name that is listed is a whole part. Loading reads local
copies: parts on object storage are downloaded into a temporary folder first and read from there by DuckDB.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ClipfactoryError, StorageLocationError
from ..storage import BUCKET_PROTOCOLS, LOCATION_FIX, atomic_path, is_url, location_error

T = TypeVar("T")

#: Attempts of one object-store call, and the first pause between them (doubled after each).
ATTEMPTS = 3
BACKOFF_S = 0.5


class PartsStorageError(StorageLocationError):
    """The parts location cannot be listed, written or read."""


def storage_error(url: str, what: str, exc: BaseException) -> PartsStorageError:
    return location_error(
        "parts", url, what, exc, cls=PartsStorageError, fix=f"{LOCATION_FIX} (finished work is kept)"
    )


def write_batch_parts(store: PartStore, prefix: str, run_id: str, stage, results, attempts: dict[str, int]) -> list[str]:
    """Write one batch's results as parts named ``<prefix>-records-<table>.parquet`` (one per record type)
    and ``<prefix>-outcomes.parquet``; returns their names. Records go first and outcomes last: an outcome
    part exists only once the records it names are stored."""
    from ..catalog import outcomes

    now = outcomes.now()
    rows = []
    records_by_type: dict[type, list] = {}
    for r in results:
        rows.append(
            outcomes.outcome_row(
                run_id, stage.name, stage.version, stage.config_hash, r.item_id, r.status,
                reason=r.reason, error_kind=r.error_kind, error=r.error, detail=r.detail,
                output_ids=[rec.id for rec in r.records], attempt=attempts.get(r.item_id, 1),
                recorded_at=now,
            )
        )
        for rec in r.records:
            records_by_type.setdefault(type(rec), []).append(rec)
    names = [
        store.write(f"{prefix}-records-{cls.table}.parquet", cls.to_table(recs))
        for cls, recs in records_by_type.items()
    ]
    names.append(store.write(f"{prefix}-outcomes.parquet", outcomes.outcome_table(rows)))
    return names


class PartStore:
    """Parts under one root: a local folder or an object-store URL."""

    def __init__(self, root: str | Path, setting: str | None = None):
        self.remote = is_url(str(root))
        if self.remote:
            self.url = str(root).rstrip("/")
            self.root: Path | None = None
        else:
            self.root = Path(root)
            self.url = str(self.root)
        #: The ``parts`` setting as configured (the root is the catalog's folder under it), for errors.
        self.setting = setting or self.url
        self._fs = None

    def __repr__(self) -> str:
        return f"PartStore({self.url!r})"

    @property
    def fs(self):
        if self._fs is None:
            from ..storage import filesystem

            self._fs, self._base = filesystem(self.url)
        return self._fs

    @property
    def base(self) -> str:
        self.fs  # noqa: B018 (sets _base)
        return self._base.rstrip("/")

    def _remote_path(self, name: str) -> str:
        return f"{self.base}/{name}"

    def _call(self, what: str, fn: Callable[[], T], *, absent_ok: bool = False) -> T:
        """``fn()`` against the object store, tried :data:`ATTEMPTS` times with backoff; then one error that
        names the ``parts`` setting and the fix. With ``absent_ok`` a ``FileNotFoundError`` (nothing there)
        goes to the caller as it is."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return fn()
            except ClipfactoryError:  # already one of ours (a missing extra)
                raise
            except FileNotFoundError as exc:
                if absent_ok:
                    raise
                raise storage_error(self.setting, what, exc) from exc
            except Exception as exc:
                if attempt == ATTEMPTS:
                    raise storage_error(self.setting, what, exc) from exc
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    # -- writing -----------------------------------------------------------------------------------
    def write(self, name: str, table: pa.Table) -> str:
        """Write ``table`` as the part ``name``; it is listed only once it is whole."""
        if not self.remote:
            assert self.root is not None
            with atomic_path(self.root / name) as tmp:
                pq.write_table(table, tmp)
            return name
        from ..storage import write_object

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        data = sink.getvalue().to_pybytes()
        self._call(f"write the part {name}", lambda: write_object(self.fs, self._remote_path(name), [data]))
        return name

    # -- reading -----------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The whole parts under the root, by name, sorted (hidden temporaries left by a crash are not parts)."""
        if not self.remote:
            assert self.root is not None
            if not self.root.exists():
                return []
            return sorted(
                p.relative_to(self.root).as_posix()
                for p in self.root.rglob("*.parquet")
                if not p.name.startswith(".")
            )
        base = self._call("open the parts location", lambda: self.base)

        def find():
            # Other processes (workers, another run) write here: list the store, not this client's cache.
            self.fs.invalidate_cache(base)
            return self.fs.find(base)

        try:
            found = self._call("list the parts", find, absent_ok=True)
        except FileNotFoundError as exc:
            protocol = self.url.partition("://")[0].lower()
            bucket = base.split("/", 1)[0]
            if protocol in BUCKET_PROTOCOLS and not self._call(
                "look for the bucket", lambda: self.fs.exists(bucket)
            ):
                raise storage_error(self.setting, f"find the bucket {bucket!r}", exc) from exc
            return []
        out = []
        for key in found:
            rel = key[len(base) :].lstrip("/") if key.startswith(base) else None
            if rel and rel.endswith(".parquet") and not rel.rsplit("/", 1)[-1].startswith("."):
                out.append(rel)
        return sorted(out)

    def clean_temporaries(self) -> int:
        """Remove the temporary files of part writes that a crash interrupted (local roots; an interrupted
        upload leaves no object). Returns how many were removed."""
        if self.remote or self.root is None or not self.root.exists():
            return 0
        n = 0
        for p in self.root.rglob(".*.part*"):
            p.unlink(missing_ok=True)
            n += 1
        return n

    @contextlib.contextmanager
    def local_files(self, names: list[str]) -> Iterator[dict[str, str]]:
        """``{name: local path}`` of ``names`` for DuckDB to read: the files themselves for a local root,
        downloaded copies (removed afterwards) for an object store."""
        if not self.remote:
            assert self.root is not None
            yield {n: str(self.root / n) for n in names}
            return
        tmp = Path(tempfile.mkdtemp(prefix="clipfactory-parts-"))
        try:
            local = {n: str(tmp / n) for n in names}
            for n in names:
                Path(local[n]).parent.mkdir(parents=True, exist_ok=True)
            if names:  # one call: s3fs fetches the objects concurrently
                rpaths = [self._remote_path(n) for n in names]
                self._call(f"read {len(names)} parts", lambda: self.fs.get(rpaths, [local[n] for n in names]))
            yield local
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- removing ----------------------------------------------------------------------------------
    def delete(self, names: list[str]) -> None:
        """Remove loaded parts (and, locally, a run's folder once it is empty)."""
        if not names:
            return
        if self.remote:
            rpaths = [self._remote_path(n) for n in names]
            # One call (S3: a DeleteObjects request per 1,000 keys); a part deleted by an earlier attempt is
            # no error.
            with contextlib.suppress(FileNotFoundError):
                self._call(f"delete {len(names)} parts", lambda: self.fs.rm(rpaths), absent_ok=True)
            return
        assert self.root is not None
        paths = [self.root / n for n in names]
        for p in paths:
            p.unlink(missing_ok=True)
        for d in sorted({p.parent for p in paths}, reverse=True):
            if d != self.root:
                with contextlib.suppress(OSError):
                    d.rmdir()
