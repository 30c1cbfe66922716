"""Facts the catalog keeps about itself, in the ``catalog_meta`` key/value table.

The one fact so far is the blob store its runs use (:func:`record_store`, called by every
:class:`~clipfactory.pipelines.Run`): a catalog names sources, clips and builds, but their media and
fingerprint blobs live in the store, so a command given only ``--catalog`` (``clipfactory lookup``) reads
the store from here (:func:`recorded_store`). Local stores are recorded as absolute paths.

Each function takes a :class:`~clipfactory.catalog.Catalog` (it opens its own connection) or an open
DuckDB connection of one (it runs inside the caller's transaction).
"""

from __future__ import annotations

import os
from typing import Any

import duckdb

from .db import Catalog
from .outcomes import now as _now

STORE_KEY = "store"
CATALOG_ID_KEY = "catalog_id"
PARTS_KEY = "parts_locations"


def store_location(store_root: Any) -> str:
    """How a store is recorded: an absolute path, or a URL as given (``s3://...``)."""
    from ..storage import BlobStore

    root = store_root.root if isinstance(store_root, BlobStore) else store_root
    text = os.fspath(root) if isinstance(root, os.PathLike) else str(root)
    if "://" in text:
        return text
    return os.path.abspath(os.path.expanduser(text))


def get_value(con_or_catalog: Catalog | duckdb.DuckDBPyConnection, key: str) -> str | None:
    """The value recorded under ``key``, or ``None``. A catalog file that does not exist yet has none
    (and is not created)."""
    if isinstance(con_or_catalog, Catalog):
        if not con_or_catalog.path.exists():
            return None
        with con_or_catalog.read() as con:
            return get_value(con, key)
    try:
        row = con_or_catalog.execute("SELECT value FROM catalog_meta WHERE key = ?", [key]).fetchone()
    except duckdb.CatalogException:  # a connection to a catalog from before catalog_meta
        return None
    return row[0] if row else None


def set_value(con_or_catalog: Catalog | duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    """Record ``value`` under ``key`` (replacing an earlier value)."""
    if isinstance(con_or_catalog, Catalog):
        with con_or_catalog.write() as con:
            set_value(con, key, value)
        return
    con_or_catalog.execute("INSERT OR REPLACE INTO catalog_meta VALUES (?, ?, ?)", [key, value, _now()])


def record_store(con_or_catalog: Catalog | duckdb.DuckDBPyConnection, store_root: Any) -> str:
    """Record ``store_root`` (a path, URL or :class:`~clipfactory.storage.BlobStore`) as the catalog's blob
    store; returns the recorded location. A catalog whose store is already recorded is not written."""
    value = store_location(store_root)
    if get_value(con_or_catalog, STORE_KEY) != value:
        set_value(con_or_catalog, STORE_KEY, value)
    return value


def recorded_store(con_or_catalog: Catalog | duckdb.DuckDBPyConnection) -> str | None:
    """The blob store the catalog's runs used, or ``None`` when none is recorded."""
    return get_value(con_or_catalog, STORE_KEY)


def catalog_id(catalog: Catalog) -> str:
    """The catalog's own random id, made and recorded on first use: it names the catalog's folder under a
    shared ``parts`` location, so catalogs that share a bucket prefix never load each other's parts."""
    found = get_value(catalog, CATALOG_ID_KEY)
    if found:
        return found
    import uuid

    with catalog.write() as con:
        found = get_value(con, CATALOG_ID_KEY)  # another process may have made it meanwhile
        if not found:
            found = uuid.uuid4().hex
            set_value(con, CATALOG_ID_KEY, found)
    return found


def parts_locations(catalog: Catalog) -> list[tuple[str, str | None]]:
    """Where this catalog's executors have put Parquet parts that may still wait to be loaded: ``(root,
    setting)`` pairs, the root being the folder or URL the parts are under and the setting the ``parts``
    value that gave it (``None`` for the default beside the catalog)."""
    import json

    raw = get_value(catalog, PARTS_KEY)
    return [(r, s) for r, s in json.loads(raw)] if raw else []


def set_parts_locations(catalog: Catalog, locations: list[tuple[str, str | None]]) -> None:
    import json

    set_value(catalog, PARTS_KEY, json.dumps([list(x) for x in locations]))


__all__ = ["CATALOG_ID_KEY", "PARTS_KEY", "STORE_KEY", "catalog_id", "parts_locations", "set_parts_locations", "get_value", "record_store", "recorded_store", "set_value", "store_location"]
