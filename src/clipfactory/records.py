"""Plain, immutable, Arrow-friendly records.

Records are flat frozen dataclasses: every field is a str, int, float, bool, or None (lists of str are
allowed and become Arrow ``list<string>``). Heavy data (video bytes, frames, fingerprints, embeddings)
lives in the blob store and is referred to by URI. ``to_row``/``from_row`` round-trip through plain dicts,
and therefore through Arrow tables and Parquet, which is what lets any executor carry them.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import pyarrow as pa

R = TypeVar("R", bound="Record")

_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _base_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    return tp


@dataclass(frozen=True)
class Record:
    """Base class. Subclasses name the catalog table they live in and their id field."""

    table: ClassVar[str] = ""
    id_field: ClassVar[str] = ""

    @property
    def id(self) -> str:
        return getattr(self, self.id_field)

    def to_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _layout(type(self))[2]}

    @classmethod
    def from_row(cls: type[R], row: dict[str, Any]) -> R:
        names, tuples, _ = _layout(cls)
        kwargs = {k: v for k, v in row.items() if k in names}
        for name in tuples:
            if kwargs.get(name) is not None:
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)

    @classmethod
    def arrow_schema(cls) -> pa.Schema:
        hints = _hints(cls)
        cols = []
        for f in fields(cls):
            base = _base_type(hints[f.name])
            if base is tuple or typing.get_origin(base) is tuple:
                cols.append(pa.field(f.name, pa.list_(pa.string())))
            else:
                cols.append(pa.field(f.name, _ARROW[base]))
        return pa.schema(cols)

    @classmethod
    def to_table(cls, records: list[Record]) -> pa.Table:
        return pa.Table.from_pylist([r.to_row() for r in records], schema=cls.arrow_schema())

    @classmethod
    def from_table(cls: type[R], table: pa.Table) -> list[R]:
        return [cls.from_row(row) for row in table.to_pylist()]

    def replace(self: R, **changes: Any) -> R:
        return dataclasses.replace(self, **changes)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


_LAYOUTS: dict[type, tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]] = {}


def _layout(cls: type) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
    """A record class's field names (a set), its tuple-typed fields and its field names in order, worked
    out once per class (``from_row`` and ``to_row`` run once per catalog row, and resolving type hints per
    row cost more than building the record)."""
    if cls not in _LAYOUTS:
        hints = _hints(cls)
        fs = fields(cls)
        _LAYOUTS[cls] = (
            frozenset(f.name for f in fs),
            tuple(f.name for f in fs if _base_type(hints[f.name]) is tuple),
            tuple(f.name for f in fs),
        )
    return _LAYOUTS[cls]


@dataclass(frozen=True)
class SourceRecord(Record):
    """One source video: a platform video, a web URL, or an owned file.

    ``content_license`` is the licence of the pixels as far as we know it (an SPDX expression such as
    ``CC-BY-4.0``, or ``LicenseRef-...``); platform terms come from ``platform``. Annotation licences
    belong to datasets and live in the membership table, never here.
    """

    table: ClassVar[str] = "sources"
    id_field: ClassVar[str] = "source_id"

    source_id: str
    platform: str  # youtube | shutterstock | web | owned | ...
    platform_id: str | None = None
    url: str | None = None
    content_sha256: str | None = None
    blob_uri: str | None = None
    origin_uri: str | None = None  # where owned media was added from
    content_license: str | None = None
    rights_holder: str | None = None
    uploader: str | None = None
    title: str | None = None
    size_bytes: int | None = None
    duration_ms: int | None = None
    container: str | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    variable_fps: bool | None = None
    rotation: int | None = None
    n_audio_streams: int | None = None
    acquired_at: str | None = None  # ISO-8601 UTC
    analysis_uri: str | None = None  # blob: JSON of the single analysis pass (shots, scores)
    fingerprint_uri: str | None = None  # blob: Parquet of per-frame PDQ hashes (see fingerprints.frames)


@dataclass(frozen=True)
class ClipRecord(Record):
    """One clip: a span of a source, planned from shot boundaries, then cut into its own file."""

    table: ClassVar[str] = "clips"
    id_field: ClassVar[str] = "clip_id"

    clip_id: str
    source_id: str
    start_ms: int
    end_ms: int
    shot_index: int | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    transition_in: str | None = None  # start | cut | fade | dissolve
    transition_out: str | None = None  # cut | fade | dissolve | end
    cut_method: str | None = None  # copy | reencode
    blob_uri: str | None = None
    thumb_uri: str | None = None
    fingerprint_uri: str | None = None
    size_bytes: int | None = None
    content_sha256: str | None = None
    motion: float | None = None
    sharpness: float | None = None
    luma: float | None = None
    black_fraction: float | None = None
    static_fraction: float | None = None
    text_fraction: float | None = None
    screen_text: str | None = None  # text read on screen in the span, one line each ("" none; None: not read)
    caption: str | None = None
    captions: str | None = None  # JSON [{"dataset", "caption"}]: every dataset's caption of this span
    span_origin: str | None = None  # manifest | shots: where the clip's time range came from
    caption_origin: str | None = None  # manifest | vlm | transcript: where ``caption`` came from
    speech_ratio: float | None = None  # share of the span with voice activity (signals.speech)
    transcript: str | None = None  # words spoken in the span ("" when none; signals.speech)
    nsfw: float | None = None  # P(pornographic) of the shot thumbnail (signals.visual, Open-NSFW)
    face_count: int | None = None  # frontal faces found on the shot thumbnail (signals.visual)
    face_area: float | None = None  # largest face box as a share of the frame area (signals.visual)
    aesthetic: float | None = None  # CLIP aesthetic head score of the thumbnail (signals.visual)


@dataclass(frozen=True)
class Result:
    """The outcome of one stage for one input item. ``process_batch`` returns exactly one per input."""

    item_id: str
    status: str  # kept | dropped | failed
    records: tuple[Record, ...] = ()
    reason: str | None = None  # namespaced drop reason, e.g. "quality.too_dark"
    error_kind: str | None = None  # transient | terminal | bug
    error: str | None = None
    detail: str | None = None  # JSON evidence or explanation

    KEPT: ClassVar[str] = "kept"
    DROPPED: ClassVar[str] = "dropped"
    FAILED: ClassVar[str] = "failed"

    @classmethod
    def kept(cls, item_id: str, *records: Record, detail: Any = None) -> Result:
        return cls(item_id, cls.KEPT, tuple(records), detail=_detail(detail))

    @classmethod
    def dropped(cls, item_id: str, reason: str, detail: Any = None) -> Result:
        if "." not in reason:
            raise ValueError(f"drop reasons are namespaced like 'quality.too_dark', got {reason!r}")
        return cls(item_id, cls.DROPPED, (), reason=reason, detail=_detail(detail))

    @classmethod
    def failed(cls, item_id: str, error_kind: str, error: str, detail: Any = None) -> Result:
        if error_kind not in ("transient", "terminal", "bug"):
            raise ValueError(f"error_kind must be transient, terminal or bug, got {error_kind!r}")
        return cls(item_id, cls.FAILED, (), error_kind=error_kind, error=error, detail=_detail(detail))


def _detail(detail: Any) -> str | None:
    if detail is None or isinstance(detail, str):
        return detail
    return json.dumps(detail, sort_keys=True, default=str)


__all__ = ["Record", "SourceRecord", "ClipRecord", "Result", "field"]
