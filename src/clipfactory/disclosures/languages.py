"""The language of each source of a build, from the words its manifests and clips carry.

A manifest that states a language (``clip_spans.extra``: ``language`` or ``lang``) decides. Otherwise the
language is identified from the source's span captions, its clips' VLM captions and transcripts, joined,
with py3langid (a naive Bayes model over byte n-grams of 97 languages, shipped in the package): only a text
of at least :data:`MIN_CHARS` characters whose language has a probability of at least
:data:`MIN_PROBABILITY` counts; everything else stays unknown. Titles and dataset labels are left out:
they are short and mostly English whatever the video says. The transcripts of Whisper tiny.en are English
by construction (the model only writes English), so speech in another language is not identified by them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from ..catalog import table_columns
from ..semantic.texts import vlm_captions

log = logging.getLogger(__name__)

MIN_CHARS = 20
MIN_PROBABILITY = 0.9
#: captions and transcripts read per source, at most
MAX_TEXTS = 20


#: the loaded identifier, once per process (clipfactory.model_cache releases it)
_MODELS: dict[str, object] = {}


def _available() -> bool:
    import importlib.util

    return importlib.util.find_spec("py3langid") is not None


def _identifier():
    """py3langid's identifier, loaded once per process (about 0.7 s), or ``None`` without the package."""
    if "langid" not in _MODELS:
        try:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier
        except ImportError:
            return None
        _MODELS["langid"] = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _MODELS["langid"]


def source_texts(con, source_ids: list[str]) -> dict[str, list[str]]:
    """The captions and transcripts of each source (none for a source without words)."""
    out: dict[str, list[str]] = {}
    tables = table_columns(con)
    con.register("_cfl_ids", pa.table({"source_id": pa.array(source_ids, pa.string())}))
    try:
        if "clip_spans" in tables:
            for sid, cap in con.execute(
                f"""SELECT source_id, caption FROM (
                       SELECT source_id, trim(caption) AS caption,
                              row_number() OVER (PARTITION BY source_id ORDER BY trim(caption)) AS rn
                       FROM (SELECT DISTINCT source_id, caption FROM clip_spans
                             WHERE caption IS NOT NULL AND source_id IN (SELECT source_id FROM _cfl_ids)))
                    WHERE rn <= {MAX_TEXTS} AND caption <> ''"""
            ).fetchall():
                out.setdefault(sid, []).append(cap)
        if {"transcript", "captions"} <= tables.get("clips", set()):
            for sid, transcript, captions in con.execute(
                """SELECT source_id, transcript, captions FROM clips
                   WHERE source_id IN (SELECT source_id FROM _cfl_ids)
                     AND (nullif(trim(transcript), '') IS NOT NULL OR captions LIKE '%"vlm"%')"""
            ).fetchall():
                texts = out.setdefault(sid, [])
                if len(texts) >= 2 * MAX_TEXTS:
                    continue
                if transcript and transcript.strip():
                    texts.append(transcript.strip())
                texts.extend(vlm_captions(captions))
    finally:
        con.unregister("_cfl_ids")
    return out


def identify(texts: list[str], identifier=None) -> str | None:
    """The language of ``texts`` joined, or ``None`` when too short or not clear enough."""
    text = ". ".join(dict.fromkeys(t for t in texts if t))
    if len(text) < MIN_CHARS:
        return None
    idf = identifier or _identifier()
    if idf is None:
        return None
    lang, prob = idf.classify(text)
    return lang if prob >= MIN_PROBABILITY else None


def source_languages_of(catalog, index: Path) -> dict[str, str] | None:
    """Identified language per source of the build whose index is ``index`` (sources without a clear
    language are left out), or ``None`` without py3langid or an index."""
    if not _available() or not index.exists():
        return None
    ids = index_source_ids(index)
    if ids is None:
        return None
    if not ids:
        return {}
    with catalog.read() as con:
        texts = source_texts(con, ids)
    out = {}
    for sid, t in texts.items():
        lang = identify(t)
        if lang:
            out[sid] = lang
    return out


def index_source_ids(index: Path) -> list[str] | None:
    """The distinct source ids of a build's ``index.parquet`` (``None`` when it has no such column)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if "source_id" not in pq.read_schema(index).names:
        return None
    return [s for s in pc.unique(pq.read_table(index, columns=["source_id"]).column("source_id")).to_pylist() if s]
