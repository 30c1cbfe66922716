"""The text of each source and clip, from what the catalog holds about it.

A source's text joins its title, the labels its datasets give it (``abseiling``, ``Video game``;
underscores read as spaces, a parenthesised negation such as "(not gaming)" left out) and up to
``max_captions`` distinct captions of its manifest spans, in that order, separated by ". ". A clip of a manifest span that has a caption of its own gets that caption as
its text; a clip with captions from ``caption.vlm`` or a transcript from ``signals.speech`` gets those
too (captions, then the words spoken). Items without any text get none: the categories call them
``other`` with zero confidence.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from .store import has_table

#: A label's parenthesised negation, "(not gaming)", "(not on a tie)": it names what the content is *not*,
#: and a sentence model reads the word it negates as present ("using remote controller (not gaming)" lands
#: near video games), so the text of a label leaves it out.
NEGATION = r"\s*\((not|except) [^)]*\)"
_LABEL_SQL = (f"coalesce(nullif(trim(regexp_replace(replace(label, '_', ' '), '{NEGATION}', '', 'gi')), ''), "
              "trim(replace(label, '_', ' ')))")


def label_text(label: str) -> str:
    """A manifest label as it enters a source's text: underscores read as spaces, negations left out."""
    return re.sub(NEGATION, "", label.replace("_", " "), flags=re.IGNORECASE).strip() or label.replace("_", " ").strip()


def source_texts(con, source_ids: list[str] | None = None, *, max_captions: int = 3) -> dict[str, str]:
    """source_id → text (an empty string when the catalog holds no text for it)."""
    con.register(
        "_sem_ids",
        pa.table({"source_id": pa.array(sorted(set(source_ids or [])), pa.string())}),
    )
    try:
        subset = "WHERE s.source_id IN (SELECT source_id FROM _sem_ids)" if source_ids is not None else ""
        labels = (
            f"""(SELECT source_id, string_agg(DISTINCT {_LABEL_SQL}, '. ' ORDER BY {_LABEL_SQL}) AS labels
                FROM memberships WHERE label IS NOT NULL AND trim(label) <> '' GROUP BY source_id)"""
            if has_table(con, "memberships")
            else "(SELECT NULL::VARCHAR AS source_id, NULL::VARCHAR AS labels WHERE false)"
        )
        captions = (
            f"""(SELECT source_id, string_agg(caption, '. ' ORDER BY caption) AS captions FROM (
                    SELECT source_id, caption, row_number() OVER (PARTITION BY source_id ORDER BY caption) AS rn
                    FROM (SELECT DISTINCT source_id, trim(caption) AS caption FROM clip_spans
                          WHERE caption IS NOT NULL AND trim(caption) <> '')
                ) WHERE rn <= {int(max_captions)} GROUP BY source_id)"""
            if has_table(con, "clip_spans")
            else "(SELECT NULL::VARCHAR AS source_id, NULL::VARCHAR AS captions WHERE false)"
        )
        rows = con.execute(
            f"""SELECT s.source_id, concat_ws('. ', nullif(trim(s.title), ''), l.labels, c.captions) AS text
                FROM sources s LEFT JOIN {labels} l ON l.source_id = s.source_id
                LEFT JOIN {captions} c ON c.source_id = s.source_id {subset}"""
        ).fetchall()
    finally:
        con.unregister("_sem_ids")
    return {sid: (text or "") for sid, text in rows}


def clip_texts(con, source_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Clips with text of their own (a manifest span's caption, VLM captions, a transcript): dicts of
    clip_id, source_id, text, by clip_id."""
    out = {c["clip_id"]: c for c in _span_texts(con, source_ids)}
    for c in _annotated_texts(con, source_ids):
        have = out.get(c["clip_id"])
        if have is None:
            out[c["clip_id"]] = c
        else:
            have["text"] = ". ".join(dict.fromkeys([have["text"], *c["parts"]]))
    return [{k: c[k] for k in ("clip_id", "source_id", "text")} for _, c in sorted(out.items())]



def vlm_captions(captions: str | None) -> list[str]:
    """The non-empty captions a VLM wrote, in order, from a clip's ``captions`` JSON (bad JSON: none)."""
    try:
        caps = json.loads(captions) if captions else []
    except ValueError:
        return []
    return [
        str(c["caption"]).strip()
        for c in (caps if isinstance(caps, list) else [])
        if isinstance(c, dict) and c.get("origin") == "vlm" and str(c.get("caption") or "").strip()
    ]

def _annotated_texts(con, source_ids: list[str] | None) -> list[dict[str, Any]]:
    """Clips with VLM captions or a transcript in the clips table (older catalogs have neither column)."""
    cols = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'clips'"
        ).fetchall()
    }
    if not {"transcript", "captions"} <= cols:
        return []
    con.register("_sem_ids", pa.table({"source_id": pa.array(sorted(set(source_ids or [])), pa.string())}))
    try:
        subset = "AND source_id IN (SELECT source_id FROM _sem_ids)" if source_ids is not None else ""
        rows = con.execute(
            f"""SELECT clip_id, source_id, captions, transcript FROM clips
                WHERE (nullif(trim(transcript), '') IS NOT NULL OR captions LIKE '%"vlm"%') {subset}
                ORDER BY clip_id"""
        ).fetchall()
    finally:
        con.unregister("_sem_ids")
    out = []
    for clip_id, source_id, captions, transcript in rows:
        parts: list[str] = vlm_captions(captions)
        if transcript and transcript.strip():
            parts.append(transcript.strip())
        if parts:
            parts = list(dict.fromkeys(parts))
            out.append({"clip_id": clip_id, "source_id": source_id, "text": ". ".join(parts), "parts": parts})
    return out


def _span_texts(con, source_ids: list[str] | None) -> list[dict[str, Any]]:
    if not has_table(con, "clip_spans"):
        return []
    con.register("_sem_ids", pa.table({"source_id": pa.array(sorted(set(source_ids or [])), pa.string())}))
    try:
        subset = "AND source_id IN (SELECT source_id FROM _sem_ids)" if source_ids is not None else ""
        spans = f"""SELECT clip_id AS span_id, any_value(source_id) AS source_id, any_value(start_ms) AS b,
                       any_value(end_ms) AS e, string_agg(DISTINCT trim(caption), '. ' ORDER BY trim(caption)) AS text
                FROM clip_spans WHERE clip_id IS NOT NULL AND caption IS NOT NULL AND trim(caption) <> '' {subset}
                GROUP BY clip_id"""
        if has_table(con, "clips"):
            # The cut clip of a span may start a frame or a keyframe later than the manifest said, and so have
            # another id: a span's text goes to the clip of its source that covers most of it (at least half).
            rows = con.execute(
                f"""WITH s AS ({spans}),
                    m AS (SELECT s.span_id, c.clip_id, row_number() OVER (
                              PARTITION BY s.span_id
                              ORDER BY least(c.end_ms, s.e) - greatest(c.start_ms, s.b) DESC, c.clip_id) AS rn
                          FROM s JOIN clips c ON c.source_id = s.source_id AND c.start_ms < s.e AND c.end_ms > s.b
                          WHERE 2 * (least(c.end_ms, s.e) - greatest(c.start_ms, s.b)) >= s.e - s.b)
                    SELECT coalesce(m.clip_id, s.span_id) AS clip_id, any_value(s.source_id),
                           string_agg(DISTINCT s.text, '. ' ORDER BY s.text)
                    FROM s LEFT JOIN m ON m.span_id = s.span_id AND m.rn = 1
                    GROUP BY 1 ORDER BY 1"""
            ).fetchall()
        else:
            rows = con.execute(f"SELECT span_id, source_id, text FROM ({spans}) ORDER BY span_id").fetchall()
    finally:
        con.unregister("_sem_ids")
    return [{"clip_id": c, "source_id": s, "text": t} for c, s, t in rows]
