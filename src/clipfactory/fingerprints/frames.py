"""The per-frame fingerprint blob: PDQ hashes sampled about once per second by the analysis pass.

One Parquet blob per source with columns ``frame_index`` (int64), ``time_ms`` (int64), ``pdq`` (64 hex
chars, 256 bits) and ``quality`` (int32, 0-100). The analysis stage writes it; the fingerprint index,
dedup, lookup and takedown read it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from ..storage import BlobStore

FRAME_HASH_SCHEMA = pa.schema(
    [("frame_index", pa.int64()), ("time_ms", pa.int64()), ("pdq", pa.string()), ("quality", pa.int32())]
)


def frame_hash_table(rows: Iterable[tuple[int, int, str, int]]) -> pa.Table:
    rows = list(rows)
    return pa.table(
        {
            "frame_index": pa.array([r[0] for r in rows], pa.int64()),
            "time_ms": pa.array([r[1] for r in rows], pa.int64()),
            "pdq": pa.array([r[2] for r in rows], pa.string()),
            "quality": pa.array([r[3] for r in rows], pa.int32()),
        },
        schema=FRAME_HASH_SCHEMA,
    )


def write_frame_hashes(store: BlobStore, rows: Iterable[tuple[int, int, str, int]]) -> str:
    """Store ``(frame_index, time_ms, pdq_hex, quality)`` rows as a blob; returns its URI."""
    buf = io.BytesIO()
    pq.write_table(frame_hash_table(rows), buf)
    return store.put_bytes(buf.getvalue())


def read_frame_hashes(store: BlobStore, uri: str) -> pa.Table:
    return pq.read_table(store.path_of(uri))
