"""Tell a manifest's format from its columns (CSV, Parquet), keys (JSON Lines, JSON) or first line.

Detection reads only the first 64 KiB (already in memory from hashing) or, for Parquet, the schema.
``--format`` overrides it; a format whose columns the file lacks is an error that names the missing
columns and the format the file looks like.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ManifestError
from .adapters import ADAPTERS, YT8M_VOCABULARY, Adapter, resolve_format
from .readers import FileFacts, first_line, sniff_header, suffixes

_KIND_NAMES = {"csv": "CSV", "jsonl": "JSON Lines", "json": "one JSON document", "parquet": "Parquet"}

#: Order matters: the first adapter whose required columns the file has wins.
_TABLE_ORDER = ["panda-70m", "kinetics", "webvid-10m", "openvid-1m", "howto100m", "ego4d", "youtube-8m"]
_LINES_ORDER = ["hd-vila-100m", "internvid-10m"]
_ACAV_LINE = re.compile(r'^shard-[^,]*,[^,]*,[A-Za-z0-9_-]{11},\s*"?\[')


@dataclass(frozen=True)
class Detected:
    kind: str  # csv | jsonl | json | parquet
    columns: tuple[str, ...]  # header columns, or the keys of the first JSON line
    adapter: Adapter | None  # None when no format matched


def file_kind(facts: FileFacts) -> str:
    sfx = suffixes(facts.path)
    if sfx and sfx[-1] in (".parquet", ".pq"):
        return "parquet"
    if sfx and sfx[-1] in (".jsonl", ".ndjson"):
        return "jsonl"
    head = facts.head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        first, _, rest = head.partition(b"\n")
        try:
            json.loads(first)
        except ValueError:
            return "json"
        return "jsonl" if rest.strip() or facts.n_lines > 1 or not sfx or sfx[-1] != ".json" else "json"
    return "csv"


def _first_keys(facts: FileFacts) -> tuple[str, ...]:
    for raw in facts.head.split(b"\n"):
        if raw.strip():
            try:
                obj = json.loads(raw)
            except ValueError:
                return ()
            return tuple(obj) if isinstance(obj, dict) else ()
    return ()


def _parquet_columns(path: str) -> tuple[str, ...]:
    import pyarrow.parquet as pq

    try:
        return tuple(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise ManifestError(f"cannot read as Parquet: {exc}", item=path) from exc


def _json_adapter(facts: FileFacts) -> Adapter | None:
    text = facts.head.decode("utf-8", errors="replace")
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        if '"video"' in text and '"caption"' in text:
            return ADAPTERS["msr-vtt"]
        return None
    if '"video_uid"' in text:
        return ADAPTERS["ego4d"]
    if '"sentences"' in text or '"start time"' in text:
        return ADAPTERS["msr-vtt"]
    if '"scene_split"' in text or ('"clip"' in text and '"span"' in text):
        return ADAPTERS["hd-vg-130m"]
    return None


def yt8m_vocabulary(columns: tuple[str, ...] | list[str]) -> bool:
    cols = set(columns)
    return any(v <= cols for v in YT8M_VOCABULARY)


def detect(facts: FileFacts) -> Detected:
    kind = file_kind(facts)
    if kind == "json":
        return Detected(kind, (), _json_adapter(facts))
    if kind == "jsonl":
        keys = _first_keys(facts)
        for name in _LINES_ORDER:
            a = ADAPTERS[name]
            if set(a.required) <= set(keys):
                return Detected(kind, keys, a)
        return Detected(kind, keys, None)
    if kind == "parquet":
        cols = _parquet_columns(facts.path)
    else:
        if _ACAV_LINE.match(first_line(facts)):
            return Detected(kind, (), ADAPTERS["acav100m"])
        cols = tuple(sniff_header(facts))
    if yt8m_vocabulary(cols):
        return Detected(kind, cols, None)
    for name in _TABLE_ORDER:
        a = ADAPTERS[name]
        if kind in a.kinds and set(a.required) <= set(cols):
            return Detected(kind, cols, a)
    return Detected(kind, cols, None)


def _looks_like(det: Detected) -> str:
    if det.adapter is not None:
        return f"it looks like {det.adapter.name} (leave --format out, or give --format {det.adapter.name})"
    return "no known format matches it"


def choose(
    facts: FileFacts, format: str | None, mapping: dict[str, str] | None
) -> tuple[Adapter, Detected, str | None]:
    """The adapter to read ``facts`` with, the detection result, and a dataset implied by ``--format``."""
    det = detect(facts)
    path = facts.path
    if det.kind in ("csv", "parquet") and yt8m_vocabulary(det.columns):
        raise ManifestError(
            "this is the YouTube-8M vocabulary (label ids and names), not a list of videos: nothing to ingest",
            item=path,
            fix="ingest a CSV of YouTube-8M video ids (columns id[,youtube_id][,labels]) instead",
        )
    implied: str | None = None
    if format:
        adapter, implied = resolve_format(format)
    elif mapping:
        adapter = ADAPTERS["generic"]
    elif det.adapter is not None:
        adapter = det.adapter
    else:
        what = f"columns: {', '.join(det.columns)}" if det.columns else _KIND_NAMES[det.kind]
        raise ManifestError(
            f"cannot tell the manifest format ({what})",
            item=path,
            fix="give --format NAME, or --map id=COLUMN,... to read it with the generic adapter",
        )
    if det.kind not in adapter.kinds:
        kinds = " or ".join(_KIND_NAMES[k] for k in adapter.kinds)
        raise ManifestError(
            f"the {adapter.name} format reads {kinds}, but this file is {_KIND_NAMES[det.kind]}; {_looks_like(det)}",
            item=path,
        )
    if adapter.name == "generic":
        return adapter, det, implied
    if det.kind == "json":
        if det.adapter is not adapter:
            raise ManifestError(
                f"this JSON document does not have the keys of the {adapter.name} format; {_looks_like(det)}",
                item=path,
            )
        return adapter, det, implied
    if not adapter.header:
        if det.adapter is not None and det.adapter is not adapter:
            raise ManifestError(
                f"{adapter.name} files have no header, but this file starts with one "
                f"({', '.join(det.columns)}); {_looks_like(det)}",
                item=path,
            )
        return adapter, det, implied
    missing = [c for c in adapter.required if c not in det.columns]
    if missing:
        have = ", ".join(det.columns) if det.columns else "none"
        raise ManifestError(
            f"the {adapter.name} format needs column(s) {', '.join(missing)}, which this file lacks "
            f"(it has: {have}); {_looks_like(det)}",
            item=path,
        )
    return adapter, det, implied


def manifest_name(path: str) -> str:
    return Path(path).name
