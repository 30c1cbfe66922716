"""One adapter per manifest format, each a SQL query over the staged file.

An adapter turns ``_cf_src`` (see :mod:`.readers`) into *pre-rows*: one row per clip span (or per source
when the format has no spans) with the columns of :data:`PRE_COLUMNS`. It does not validate ids or
spans; the ingest does that for every format at once (:mod:`.ingest`). An adapter only flags what is
specific to its format (a malformed JSON line, a Python-list string that does not parse).

Formats are documented in ``docs/ingest.md``; detection is by column names (CSV, Parquet), by keys
(JSON Lines, JSON) and, for headerless ACAV100M, by the shape of the first line.
"""

from __future__ import annotations

import ast
import logging
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from ..errors import ManifestError
from .readers import ELEMS, SRC, FileFacts, Staged
from .sql import lit

log = logging.getLogger(__name__)

#: Columns every adapter query returns, with their types.
PRE_COLUMNS: dict[str, str] = {
    "ord": "BIGINT",  # the manifest row (0-based, file order; element index for JSON documents)
    "line": "BIGINT",
    "pointer": "VARCHAR",  # JSON path of the element, for whole-document JSON
    "platform": "VARCHAR",
    "pid": "VARCHAR",  # canonical platform id, NULL when the id is bad
    "id_text": "VARCHAR",  # the id as the manifest spells it (for error messages)
    "url": "VARCHAR",
    "title": "VARCHAR",
    "duration_ms": "BIGINT",
    "duration_text": "VARCHAR",
    "start_ms": "BIGINT",
    "end_ms": "BIGINT",
    "start_text": "VARCHAR",
    "end_text": "VARCHAR",
    "caption": "VARCHAR",
    "label": "VARCHAR",
    "split": "VARCHAR",
    "extra": "VARCHAR",  # JSON text
    "error": "VARCHAR",  # a format-specific error; the ingest adds the generic ones
    "raw": "VARCHAR",  # the row as text, when the adapter has it cheaply (else taken from _cf_src)
    "content_sha256": "VARCHAR",
    "origin_uri": "VARCHAR",
    "size_bytes": "BIGINT",
    "content_license": "VARCHAR",
    "rights_holder": "VARCHAR",
    "uploader": "VARCHAR",
}


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def select_pre(**exprs: str) -> str:
    """The SELECT list of a pre-row query; columns not given are typed NULLs."""
    unknown = set(exprs) - set(PRE_COLUMNS)
    if unknown:
        raise ValueError(f"not pre-row columns: {sorted(unknown)}")
    return ",\n       ".join(
        f"CAST({exprs[c]} AS {t}) AS {c}" if c in exprs else f"NULL::{t} AS {c}"
        for c, t in PRE_COLUMNS.items()
    )


def json_elements(path: str | None = None, staged: Staged | None = None) -> str:
    """The elements of the array (or the members of the object) at JSON ``path`` of the staged document,
    as a subquery with ``json_each``'s columns ``key``, ``value``, ``fullkey``, ``type`` and ``id`` (the
    element's position). ``json_each`` over one large document takes quadratic time (14 s for MSR-VTT's
    3 MB caption file); a cast to ``JSON[]`` or ``MAP`` and ``unnest`` take linear time (20 ms). The elements
    of a top-level array were streamed by the reader (``staged.layout == 'ARRAY'``): they are read from
    there, and memory does not grow with the document."""
    if path is None and staged is not None and staged.layout == "ARRAY":
        return f"""(
        SELECT CAST(ord AS VARCHAR) AS key, v AS value, '$[' || ord || ']' AS fullkey, json_type(v) AS type,
               ord AS id
        FROM {ELEMS})"""
    x = f"d.doc->{lit(path)}" if path else "d.doc"
    prefix = lit(path or "$")
    member = (
        "CASE WHEN regexp_full_match(kv.key, '[A-Za-z][A-Za-z0-9]*') THEN '.' || kv.key "
        """ELSE '."' || replace(replace(kv.key, '\\', '\\\\'), '"', '\\"') || '"' END"""
    )
    return f"""(
        SELECT CAST(i AS VARCHAR) AS key, v AS value, {prefix} || '[' || i || ']' AS fullkey,
               json_type(v) AS type, i AS id
        FROM (SELECT unnest(CAST(x AS JSON[])) AS v, unnest(range(json_array_length(x)::BIGINT)) AS i
              FROM (SELECT {x} AS x FROM {SRC} d) WHERE json_type(x) = 'ARRAY')
        UNION ALL
        SELECT kv.key, kv.value, {prefix} || {member}, json_type(kv.value), i
        FROM (SELECT unnest(map_entries(CAST(x AS MAP(VARCHAR, JSON)))) AS kv,
                     unnest(range(len(json_keys(x))::BIGINT)) AS i
              FROM (SELECT {x} AS x FROM {SRC} d) WHERE json_type(x) = 'OBJECT')
    )"""


def youtube_ids(id_expr: str) -> dict[str, str]:
    """The identity columns of a YouTube source whose id (in any spelling) is the SQL expression ``id_expr``."""
    return {"platform": "'youtube'", "pid": f"cf_yt({id_expr})", "id_text": id_expr}


@dataclass
class Context:
    """What an adapter knows about the file it reads."""

    path: str
    facts: FileFacts
    staged: Staged
    mapping: dict[str, str] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)

    given: set[str] = field(default_factory=set)

    def select(self, **exprs: str) -> str:
        """:func:`select_pre`, remembering which columns the adapter fills (the others are NULL)."""
        self.given = set(exprs)
        return select_pre(**exprs)

    @property
    def columns(self) -> list[str]:
        return self.staged.columns

    def col(self, name: str, default: str = "NULL") -> str:
        return ident(name) if name in self.staged.columns else default

    @property
    def split_sql(self) -> str:
        """The split named by the file name, as a SQL literal, or ``NULL``."""
        hint = self.split_hint
        return lit(hint) if hint else "NULL"

    @property
    def split_hint(self) -> str | None:
        """``train``/``val``/``test`` when the file name says so (for formats without a split column)."""
        stem = Path(self.path).name.lower()
        for split, words in (
            ("train", ("train",)),
            ("val", ("val", "valid", "validation")),
            ("test", ("test",)),
        ):
            for w in words:
                if re.search(rf"(^|[^a-z]){w}([^a-z]|$)", stem):
                    return split
        return None


@dataclass(frozen=True)
class Adapter:
    name: str
    kinds: tuple[str, ...]  # the file kinds it reads: csv, jsonl, json (one document), parquet
    registry_key: str | None
    required: tuple[str, ...]
    build: Callable[[Context, duckdb.DuckDBPyConnection], str]
    description: str = ""
    header: bool = True
    names: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    default_dataset: Callable[[Context], str | None] | None = None


# -- Kinetics ---------------------------------------------------------------------------------------
#: What Kinetics' ``is_cc = 1`` means: the uploader chose YouTube's Creative Commons licence, CC BY 3.0.
YOUTUBE_CC_LICENSE = "CC-BY-3.0"


def _kinetics(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    is_cc = ctx.col("is_cc")
    extra = f"CASE WHEN cf_strip({is_cc}) = '1' THEN '{{\"is_cc\": true}}' END" if is_cc != "NULL" else "NULL"
    # ``is_cc = 1`` is the uploader's licence on the pixels: recorded as the content licence (the
    # platform's terms still decide acquisition, in the gate).
    cc = f"CASE WHEN cf_strip({is_cc}) = '1' THEN {lit(YOUTUBE_CC_LICENSE)} END" if is_cc != "NULL" else None
    split = ctx.col("split", lit(ctx.split_hint) if ctx.split_hint else "NULL")
    sel = ctx.select(
        ord="ord",
        line="line",
        **youtube_ids("youtube_id"),
        start_ms="cf_sec_ms(time_start)",
        end_ms="cf_sec_ms(time_end)",
        start_text="time_start",
        end_text="time_end",
        label=ctx.col("label"),
        split=split,
        extra=extra,
        error="CASE WHEN time_start IS NULL OR time_end IS NULL THEN 'missing time_start or time_end' END",
        **({"content_license": cc} if cc else {}),
    )
    return f"""SELECT {sel} FROM {SRC}"""


def _kinetics_dataset(ctx: Context) -> str | None:
    if "is_cc" in ctx.columns:
        return "kinetics-400"
    m = re.search(r"(?:kinetics|k)[-_ ]?(400|600|700)", Path(ctx.path).name.lower())
    if m:
        return f"kinetics-{m.group(1)}"
    return None


# -- Panda-70M --------------------------------------------------------------------------------------
_PY_STR = r"'(?:[^'\\]|\\.)*'|" + r'"(?:[^"\\]|\\.)*"'
_PY_STR_LIST = rf"\[\s*(?:(?:{_PY_STR})\s*(?:,\s*(?:{_PY_STR})\s*)*,?\s*)?\]"
_TS_PAIR = r"\[\s*['\"][0-9:.]+['\"]\s*,\s*['\"][0-9:.]+['\"]\s*\]"
_TS_LIST = rf"\[\s*(?:{_TS_PAIR}\s*(?:,\s*{_TS_PAIR}\s*)*,?\s*)?\]"
_NUM_LIST = r"\[\s*(?:[-+0-9.eE]+\s*(?:,\s*[-+0-9.eE]+\s*)*,?\s*)?\]"


def _py_strings(expr: str) -> str:
    """A Python list-of-strings literal to a VARCHAR[] (quotes stripped; rows with escapes use the fallback)."""
    return f"list_transform(regexp_extract_all({expr}, {lit(_PY_STR)}, 0), lambda s: s[2:length(s) - 1])"


#: What :func:`_literal_list` raises on text that is not a Python list literal (deep or huge ones included).
_NOT_A_LITERAL = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)


def _literal_list(text: str | None) -> list:
    if text is None or not text.strip():
        return []
    value = ast.literal_eval(text)
    if not isinstance(value, list | tuple):
        raise ValueError("not a list")
    return list(value)


def _panda(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    score = ctx.col("matching_score")
    desirable = ctx.col("desirable_filtering")
    con.execute("DROP TABLE IF EXISTS _cf_panda")
    con.execute(
        f"""CREATE TEMP TABLE _cf_panda AS
        SELECT ord, line, videoID AS vid, url,
            regexp_extract_all(timestamp, '[''"]([0-9:.]+)[''"]', 1) AS ts,
            {_py_strings("caption")} AS caps,
            list_transform(regexp_extract_all({score}, '[-+0-9.eE]+', 0), lambda x: TRY_CAST(x AS DOUBLE)) AS scores,
            {_py_strings(desirable) if desirable != "NULL" else "NULL::VARCHAR[]"} AS desirable,
            NOT (coalesce(regexp_full_match(timestamp, {lit(_TS_LIST)}), false)
                 AND coalesce(regexp_full_match(caption, {lit(_PY_STR_LIST)}), false)
                 AND NOT contains(caption, '\\')
                 AND ({score} IS NULL OR regexp_full_match({score}, {lit(_NUM_LIST)}))
                 AND ({desirable} IS NULL OR (regexp_full_match({desirable}, {lit(_PY_STR_LIST)})
                                              AND NOT contains({desirable}, '\\')))) AS fallback,
            NULL::VARCHAR AS err
        FROM {SRC}"""
    )
    # Rows the regular expressions cannot take apart (escapes, odd quoting) go through ast.literal_eval.
    score_sel = f"s.{score}" if score != "NULL" else "NULL"
    desirable_sel = f"s.{desirable}" if desirable != "NULL" else "NULL"
    rows = con.execute(
        f"SELECT p.ord, s.timestamp, s.caption, {score_sel}, {desirable_sel} "
        f"FROM _cf_panda p JOIN {SRC} s USING (ord) WHERE p.fallback ORDER BY p.ord"
    ).fetchall()
    if rows:
        out: dict[str, list] = {"ord": [], "ts": [], "caps": [], "scores": [], "desirable": [], "err": []}
        for ord_, ts_text, cap_text, score_text, des_text in rows:
            err = None
            ts: list[str] | None = None
            caps: list[str] | None = None
            scores: list[float] | None = None
            desirable_l: list[str] | None = None
            try:
                pairs = _literal_list(ts_text)
                ts = [str(x) for pair in pairs for x in pair]
                if any(len(pair) != 2 for pair in pairs):
                    raise ValueError
            except _NOT_A_LITERAL:
                err = "timestamp is not a Python list of [start, end] pairs"
            if err is None:
                try:
                    caps = [str(x) for x in _literal_list(cap_text)]
                except _NOT_A_LITERAL:
                    err = "caption is not a Python list of strings"
            if err is None and score != "NULL":
                try:
                    scores = [float(x) for x in _literal_list(score_text)]
                except _NOT_A_LITERAL:
                    err = "matching_score is not a Python list of numbers"
            if err is None and desirable != "NULL":
                try:
                    desirable_l = [str(x) for x in _literal_list(des_text)]
                except _NOT_A_LITERAL:
                    err = "desirable_filtering is not a Python list"
            out["ord"].append(ord_)
            out["ts"].append(ts)
            out["caps"].append(caps)
            out["scores"].append(scores)
            out["desirable"].append(desirable_l)
            out["err"].append(err)
        fb = pa.table(
            {
                "ord": pa.array(out["ord"], pa.int64()),
                "ts": pa.array(out["ts"], pa.list_(pa.string())),
                "caps": pa.array(out["caps"], pa.list_(pa.string())),
                "scores": pa.array(out["scores"], pa.list_(pa.float64())),
                "desirable": pa.array(out["desirable"], pa.list_(pa.string())),
                "err": pa.array(out["err"], pa.string()),
            }
        )
        con.register("_cf_panda_fb", fb)
        con.execute(
            """UPDATE _cf_panda SET ts = f.ts, caps = f.caps, scores = f.scores, desirable = f.desirable,
                   err = f.err FROM _cf_panda_fb f WHERE _cf_panda.ord = f.ord"""
        )
        con.unregister("_cf_panda_fb")
    n = "len(ts) // 2"
    sel = ctx.select(
        ord="ord",
        line="line",
        **youtube_ids("coalesce(nullif(cf_strip(vid), ''), url)"),
        url="url",
        start_ms="cf_clock_ms(ts[2 * i - 1])",
        end_ms="cf_clock_ms(ts[2 * i])",
        start_text="ts[2 * i - 1]",
        end_text="ts[2 * i]",
        caption="caps[i]",
        split=ctx.split_sql,
        extra="CASE WHEN i IS NOT NULL THEN json_object('clip', i - 1, 'matching_score', scores[i], "
        "'desirable_filtering', desirable[i]) END",
        error="bad",
    )
    return f"""
    WITH p AS (
        SELECT *, CASE WHEN err IS NOT NULL THEN err
                       WHEN len(ts) % 2 = 1 THEN 'timestamp has an odd number of times'
                       WHEN {n} <> len(caps) THEN {n} || ' timestamps but ' || len(caps) || ' captions'
                       WHEN scores IS NOT NULL AND len(scores) > 0 AND len(scores) <> {n}
                            THEN {n} || ' timestamps but ' || len(scores) || ' matching scores' END AS bad
        FROM _cf_panda),
    u AS (
        SELECT *, unnest(CASE WHEN bad IS NULL AND {n} > 0 THEN generate_series(1, {n}) ELSE [NULL] END) AS i
        FROM p)
    SELECT {sel} FROM u"""


# -- HD-VILA-100M (JSONL, one source per line, many clips) ------------------------------------------
def _hdvila(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    sel = ctx.select(
        ord="ord",
        line="line",
        **youtube_ids("coalesce(nullif(cf_strip(vid), ''), url)"),
        url="url",
        start_ms="cf_clock_ms(clip->>'$.span[0]')",
        end_ms="cf_clock_ms(clip->>'$.span[1]')",
        start_text="clip->>'$.span[0]'",
        end_text="clip->>'$.span[1]'",
        split=ctx.split_sql,
        extra="CASE WHEN clip IS NOT NULL THEN json_object('clip_id', clip->>'$.clip_id') END",
        error="coalesce(bad, CASE WHEN clip IS NOT NULL AND json_array_length(clip->'$.span') <> 2 "
        "THEN 'clip span is not [start, end]' END)",
        raw="j",
    )
    return f"""
    WITH v AS (
        SELECT ord, line, j, json_valid(j) AS ok FROM {SRC}),
    o AS (
        SELECT ord, line, j, ok,
               CASE WHEN ok THEN j->>'$.video_id' END AS vid, CASE WHEN ok THEN j->>'$.url' END AS url,
               CASE WHEN ok THEN j->'$.clip' END AS clips
        FROM v),
    c AS (
        SELECT *, CASE WHEN NOT ok THEN 'not valid JSON'
                       WHEN clips IS NOT NULL AND json_type(clips) <> 'ARRAY' THEN 'clip is not a list' END AS bad,
               unnest(CASE WHEN ok AND json_type(clips) = 'ARRAY' AND json_array_length(clips) > 0
                           THEN CAST(clips AS JSON[]) ELSE [NULL::JSON] END) AS clip
        FROM o)
    SELECT {sel} FROM c"""


# -- InternVid-10M (JSONL, one clip per line) -------------------------------------------------------
def _internvid(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    spec = (
        '{"YoutubeID": "VARCHAR", "Start_timestamp": "VARCHAR", "End_timestamp": "VARCHAR", '
        '"Caption": "VARCHAR", "Aesthetic_Score": "DOUBLE", "UMT_Score": "DOUBLE"}'
    )
    sel = ctx.select(
        ord="ord",
        line="line",
        **youtube_ids("r.YoutubeID"),
        start_ms="cf_ms(r.Start_timestamp)",
        end_ms="cf_ms(r.End_timestamp)",
        start_text="r.Start_timestamp",
        end_text="r.End_timestamp",
        caption="r.Caption",
        split=ctx.split_sql,
        extra="json_object('aesthetic_score', r.Aesthetic_Score, 'umt_score', r.UMT_Score)",
        error="CASE WHEN NOT ok THEN 'not valid JSON' END",
        raw="j",
    )
    return f"""
    WITH v AS (
        SELECT ord, line, j, json_valid(j) AS ok FROM {SRC}),
    o AS (
        SELECT ord, line, j, ok, CASE WHEN ok THEN from_json(j, {lit(spec)}) END AS r FROM v)
    SELECT {sel} FROM o"""


# -- HD-VG-130M (one JSON document per part) --------------------------------------------------------
def _hdvg(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    dup = con.execute(
        f"""SELECT k FROM (SELECT unnest(json_keys(doc)) AS k FROM {SRC} WHERE json_type(doc) = 'OBJECT')
            GROUP BY k HAVING count(*) > 1 ORDER BY k LIMIT 1"""
    ).fetchall()
    if dup:
        raise ManifestError(
            f"the document has the key {dup[0][0]!r} more than once",
            item=ctx.path,
            fix="each video id may appear once at the top level: merge its entries",
        )
    sel = ctx.select(
        ord="ord",
        pointer="CASE WHEN cpath IS NULL THEN vpath ELSE vpath || substr(cpath, 2) END",
        **youtube_ids("ytid"),
        url="CASE WHEN vtype = 'OBJECT' THEN v->>'$.url' END",
        start_ms="CASE WHEN scene IS NULL OR f0 IS NULL OR f0 <= 0 OR fps IS NULL THEN s0 "
        "ELSE s0 + CAST(round(f0 * 1000.0 / fps) AS BIGINT) END",
        end_ms="CASE WHEN scene IS NULL OR f1 IS NULL OR f1 < 0 OR fps IS NULL THEN s1 "
        "ELSE s0 + CAST(round(f1 * 1000.0 / fps) AS BIGINT) END",
        start_text="clip->>'$.span[0]'",
        end_text="clip->>'$.span[1]'",
        caption="scene->>'$.caption'",
        split=ctx.split_sql,
        extra="CASE WHEN clip IS NOT NULL THEN json_object('clip', clip_name, 'scene_clip_id', "
        "scene->>'$.clip_id', 'scene_cut', scene->'$.scene_cut', 'fps', fps) END",
        error="CASE WHEN vtype <> 'OBJECT' THEN 'video entry is not an object' "
        "WHEN clip IS NOT NULL AND json_array_length(clip->'$.span') <> 2 THEN 'clip span is not [start, end]' "
        "WHEN scene IS NOT NULL AND json_array_length(scene->'$.scene_cut') <> 2 "
        "THEN 'scene_cut is not [first, last] frame' END",
        raw="CAST(coalesce(clip, v) AS VARCHAR)",
    )
    return f"""
    WITH v AS (
        SELECT e.id AS ord, e.key AS ytid, e.value AS v, e.fullkey AS vpath, e.type AS vtype
        FROM {json_elements(None, ctx.staged)} e),
    c AS (
        SELECT v.*, c.key AS clip_name, c.value AS clip, c.fullkey AS cpath
        FROM v LEFT JOIN LATERAL json_each(CASE WHEN vtype = 'OBJECT' THEN v.v END, '$.clip') c ON true),
    s AS (
        SELECT c.*, cf_clock_ms(clip->>'$.span[0]') AS s0, cf_clock_ms(clip->>'$.span[1]') AS s1,
               TRY_CAST(clip->>'$.fps' AS DOUBLE) AS fps,
               unnest(CASE WHEN json_type(clip->'$.scene_split') = 'ARRAY' AND json_array_length(clip->'$.scene_split') > 0
                           THEN CAST(clip->'$.scene_split' AS JSON[]) ELSE [NULL::JSON] END) AS scene
        FROM c),
    f AS (
        SELECT *, TRY_CAST(scene->>'$.scene_cut[0]' AS BIGINT) AS f0, TRY_CAST(scene->>'$.scene_cut[1]' AS BIGINT) AS f1
        FROM s)
    SELECT {sel} FROM f"""


# -- WebVid-10M -------------------------------------------------------------------------------------
def _webvid(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    sel = ctx.select(
        ord="ord",
        line="line",
        platform="'shutterstock'",
        pid="CASE WHEN regexp_full_match(cf_strip(videoid), '[0-9]+') THEN cf_strip(videoid) END",
        id_text="videoid",
        url=ctx.col("contentUrl"),
        title=ctx.col("name"),
        duration_ms="cf_ms(duration)" if "duration" in ctx.columns else "NULL",
        duration_text=ctx.col("duration"),
        start_ms="CASE WHEN cf_ms(duration) IS NOT NULL THEN 0 END" if "duration" in ctx.columns else "NULL",
        end_ms="cf_ms(duration)" if "duration" in ctx.columns else "NULL",
        caption=ctx.col("name"),
        split=ctx.split_sql,
        extra=f"json_object('page_idx', {ctx.col('page_idx')}, 'page_dir', {ctx.col('page_dir')})",
    )
    return f"""SELECT {sel} FROM {SRC}"""


# -- ACAV100M (no header) ---------------------------------------------------------------------------
ACAV_NAMES = ("shard_name", "filename", "youtube_id", "segment")


def _acav(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    seg = "regexp_extract_all(segment, '[-+]?[0-9]+(?:\\.[0-9]*)?', 0)"
    sel = ctx.select(
        ord="ord",
        line="line",
        **youtube_ids("youtube_id"),
        start_ms=f"cf_sec_ms({seg}[1])",
        end_ms=f"cf_sec_ms({seg}[2])",
        start_text=f"coalesce({seg}[1], segment)",
        end_text=f"coalesce({seg}[2], segment)",
        split=ctx.split_sql,
        error="CASE WHEN segment IS NULL OR NOT regexp_full_match(segment, '\\s*\\[\\s*[-+0-9.]+\\s*,\\s*[-+0-9.]+\\s*\\]\\s*') "
        "THEN 'segment is not [start, end] in seconds: ' || coalesce(segment, 'missing') END",
    )
    return f"""SELECT {sel} FROM {SRC}"""


# -- HowTo100M (CSV, optional caption.pickle) -------------------------------------------------------
class _SafeUnpickler(pickle.Unpickler):
    """Loads plain containers and numpy arrays only: a caption pickle must not run code."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a caption pickle")


def load_howto_captions(path: str) -> pa.Table:
    """``caption.pickle`` (``{vid: {start: [...], end: [...], text: [...]}}``) as an Arrow table."""
    try:
        with open(path, "rb") as fh:
            data = _SafeUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, AttributeError) as exc:
        raise ManifestError(f"cannot read HowTo100M captions: {exc}", item=path) from exc
    if not isinstance(data, dict):
        raise ManifestError("HowTo100M captions must be a dict keyed by video id", item=path)
    vid, idx, start, end, text, err = [], [], [], [], [], []
    for k, v in data.items():
        try:
            s, e, t = list(v["start"]), list(v["end"]), list(v["text"])
            if not (len(s) == len(e) == len(t)):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            vid.append(str(k))
            idx.append(None)
            start.append(None)
            end.append(None)
            text.append(None)
            err.append("captions need start, end and text lists of equal length")
            continue
        for i, (a, b, c) in enumerate(zip(s, e, t, strict=True)):
            vid.append(str(k))
            idx.append(i)
            start.append(None if a is None else str(a))
            end.append(None if b is None else str(b))
            text.append(None if c is None else str(c))
            err.append(None)
    return pa.table(
        {
            "vid": pa.array(vid, pa.string()),
            "idx": pa.array(idx, pa.int64()),
            "start": pa.array(start, pa.string()),
            "end": pa.array(end, pa.string()),
            "text": pa.array(text, pa.string()),
            "err": pa.array(err, pa.string()),
        }
    )


def _howto(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    captions = ctx.options.get("captions")
    label = f"concat_ws(' / ', {ctx.col('category_1')}, {ctx.col('category_2')})"
    extra = f"json_object('rank', {ctx.col('rank')}, 'task_id', {ctx.col('task_id')})"
    split = lit(ctx.split_hint) if ctx.split_hint else "NULL"
    if not captions:
        sel = ctx.select(
            ord="ord",
            line="line",
            **youtube_ids("video_id"),
            label=label,
            split=split,
            extra=extra,
        )
        return f"""SELECT {sel} FROM {SRC}"""
    con.execute("DROP TABLE IF EXISTS _cf_howto_caps")
    con.register("_cf_howto_in", load_howto_captions(str(captions)))
    con.execute("CREATE TEMP TABLE _cf_howto_caps AS SELECT * FROM _cf_howto_in")
    con.unregister("_cf_howto_in")
    n = ctx.staged.rows
    sel = ctx.select(
        ord="ord",
        line="line",
        pointer="pointer",
        **youtube_ids("video_id"),
        start_ms="cf_sec_ms(start)",
        end_ms='cf_sec_ms("end")',
        start_text="start",
        end_text='"end"',
        caption="text",
        label="label",
        split=split,
        extra="extra",
        error="err",
    )
    return f"""
    WITH m AS (SELECT s.*, cf_strip(s.video_id) AS vkey FROM {SRC} s),
    j AS (
        SELECT m.ord, m.line, m.video_id, {label} AS label, {extra} AS extra, c.idx, c.start, c."end", c.text, c.err,
               NULL::VARCHAR AS pointer
        FROM m LEFT JOIN _cf_howto_caps c ON c.vid = m.vkey
        UNION ALL
        SELECT {n} + dense_rank() OVER (ORDER BY c.vid) - 1 AS ord, NULL, c.vid, NULL, NULL, c.idx, c.start, c."end",
               c.text, coalesce(c.err, 'captions for a video the manifest does not list'),
               {lit(Path(str(captions)).name + ":")} || c.vid
        FROM _cf_howto_caps c WHERE NOT EXISTS (SELECT 1 FROM m WHERE m.vkey = c.vid))
    SELECT {sel} FROM j"""


# -- YouTube-8M --------------------------------------------------------------------------------------
YT8M_VOCABULARY = ({"Index", "KnowledgeGraphId", "Name"}, {"label_id", "label_name"})


def _yt8m(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    yt = ctx.col("youtube_id")
    labels = ctx.col("labels", ctx.col("label"))
    sel = ctx.select(
        ord="ord",
        line="line",
        platform=f"CASE WHEN nullif(cf_strip({yt}), '') IS NOT NULL THEN 'youtube' ELSE 'youtube8m' END",
        pid=f"CASE WHEN nullif(cf_strip({yt}), '') IS NOT NULL THEN cf_yt({yt}) "
        "WHEN regexp_full_match(cf_strip(id), '[A-Za-z0-9_-]{4}') THEN cf_strip(id) END",
        id_text=f"coalesce(nullif(cf_strip({yt}), ''), id)",
        label=labels,
        split=ctx.col("split", lit(ctx.split_hint) if ctx.split_hint else "NULL"),
        extra=f"CASE WHEN nullif(cf_strip({yt}), '') IS NOT NULL THEN json_object('youtube8m_id', id) END",
    )
    return f"""SELECT {sel} FROM {SRC}"""


# -- Ego4D ------------------------------------------------------------------------------------------
def _ego4d(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    if ctx.staged.kind == "json":
        sel = ctx.select(
            ord="ord",
            pointer="pointer",
            platform="'ego4d'",
            pid="CASE WHEN cf_is_uuid(v->>'$.video_uid') THEN lower(cf_strip(v->>'$.video_uid')) END",
            id_text="v->>'$.video_uid'",
            duration_ms="cf_sec_ms(v->>'$.duration_sec')",
            duration_text="v->>'$.duration_sec'",
            label="array_to_string(CAST(v->'$.scenarios' AS VARCHAR[]), '; ')",
            raw="CAST(v AS VARCHAR)",
        )
        return f"""
        WITH v AS (
            SELECT e.key::BIGINT AS ord, e.value AS v, e.fullkey AS pointer
            FROM {json_elements('$.videos')} e)
        SELECT {sel} FROM v"""
    sel = ctx.select(
        ord="ord",
        line="line",
        platform="'ego4d'",
        pid="CASE WHEN cf_is_uuid(video_uid) THEN lower(cf_strip(video_uid)) END",
        id_text="video_uid",
        url=ctx.col("canonical_s3_location"),
    )
    return f"""SELECT {sel} FROM {SRC}"""


# -- OpenVid-1M -------------------------------------------------------------------------------------
_OPENVID_RE = r"^([A-Za-z0-9_-]{11})_([0-9]+)_([0-9]+)to([0-9]+)\.[A-Za-z0-9]+$"


def _openvid(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    parts = f"regexp_extract(cf_strip(video), {lit(_OPENVID_RE)}, ['yt', 'k', 'a', 'b'])"
    scores = ", ".join(
        f"{lit(k.replace(' ', '_'))}, TRY_CAST({ctx.col(k)} AS DOUBLE)"
        for k in ("aesthetic score", "motion score", "temporal consistency score", "fps", "seconds")
        if k in ctx.columns
    )
    extra = (
        f"json_object('file', video, 'upstream_clip', TRY_CAST(nullif({parts}.k, '') AS BIGINT), "
        f"'range', CASE WHEN {parts}.a <> '' THEN [TRY_CAST({parts}.a AS BIGINT), TRY_CAST({parts}.b AS BIGINT)] END, "
        f"'camera_motion', {ctx.col('camera motion')}, 'frames', TRY_CAST({ctx.col('frame')} AS BIGINT)"
        + (f", {scores}" if scores else "")
        + ")"
    )
    sel = ctx.select(
        ord="ord",
        line="line",
        platform=f"CASE WHEN {parts}.yt <> '' THEN 'youtube' ELSE 'openvid' END",
        pid=f"CASE WHEN {parts}.yt <> '' THEN {parts}.yt "
        "WHEN regexp_full_match(cf_strip(video), '[^/\\\\]+\\.[A-Za-z0-9]+') "
        "THEN regexp_replace(cf_strip(video), '\\.[A-Za-z0-9]+$', '') END",
        id_text="video",
        caption="caption",
        error="CASE WHEN nullif(cf_strip(video), '') IS NULL THEN 'missing video file name' END",
        split=ctx.split_sql,
        extra=extra,
    )
    return f"""SELECT {sel} FROM {SRC}"""


# -- MSR-VTT ----------------------------------------------------------------------------------------
def _msrvtt(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    split_hint = lit(ctx.split_hint) if ctx.split_hint else "NULL"
    if ctx.staged.layout == "ARRAY":
        # The caption file: [{"video": "video7010.mp4", "caption": [...]}, ...]
        sel = ctx.select(
            ord="ord",
            pointer="pointer",
            platform="'msr-vtt'",
            pid="nullif(regexp_extract(cf_strip(v->>'$.video'), '^(video[0-9]+)(?:\\.[A-Za-z0-9]+)?$', 1), '')",
            id_text="v->>'$.video'",
            caption="cap",
            split=split_hint,
            raw="CAST(v AS VARCHAR)",
        )
        return f"""
        WITH v AS (
            SELECT e.key::BIGINT AS ord, e.value AS v, e.fullkey AS pointer FROM {json_elements(None, ctx.staged)} e),
        c AS (
            SELECT *, unnest(CASE WHEN json_type(v->'$.caption') = 'ARRAY' AND json_array_length(v->'$.caption') > 0
                                  THEN CAST(v->'$.caption' AS VARCHAR[])
                                  WHEN json_type(v->'$.caption') = 'VARCHAR' THEN [v->>'$.caption']
                                  ELSE [NULL] END) AS cap
            FROM v)
        SELECT {sel} FROM c"""
    # *_videodatainfo.json: {videos: [...], sentences: [...]}
    sel = ctx.select(
        ord="ord",
        pointer="pointer",
        **youtube_ids("v->>'$.url'"),
        start_ms="cf_sec_ms(v->>'$.\"start time\"')",
        end_ms="cf_sec_ms(v->>'$.\"end time\"')",
        start_text="v->>'$.\"start time\"'",
        end_text="v->>'$.\"end time\"'",
        caption="caption",
        label="v->>'$.category'",
        split=f"coalesce(v->>'$.split', {split_hint})",
        extra="json_object('video_id', video_id)",
        raw="CAST(v AS VARCHAR)",
    )
    return f"""
    WITH v AS (
        SELECT e.key::BIGINT AS ord, e.value AS v, e.fullkey AS pointer, v->>'$.video_id' AS video_id
        FROM {json_elements('$.videos')} e),
    s AS (
        SELECT e.value->>'$.video_id' AS video_id, e.value->>'$.caption' AS caption
        FROM {json_elements('$.sentences')} e),
    j AS (SELECT v.*, s.caption FROM v LEFT JOIN s USING (video_id))
    SELECT {sel} FROM j"""


# -- Generic (column mapping) -----------------------------------------------------------------------
#: --map keys that name a column of the file, then those that give a value.
_COLUMN_KEYS = (
    "id",
    "url",
    "start",
    "end",
    "caption",
    "title",
    "label",
    "split",
    "duration",
    "license",
    "rights-holder",
    "uploader",
)
MAP_KEYS = (*_COLUMN_KEYS, "platform", "time-unit")
#: Other spellings of --map keys.
_MAP_ALIASES = {"licence": "license", "content-license": "license", "author": "rights-holder"}


def parse_mapping(text: str | dict[str, str] | None) -> dict[str, str]:
    """``id=col,url=col,start=col,end=col,caption=col,time-unit=s`` to a dict (validated keys)."""
    if not text:
        return {}
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        for part in text.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise ManifestError(
                    f"--map entries are KEY=COLUMN, got {part.strip()!r}",
                    fix="e.g. --map id=video,start=s,end=e",
                )
            k, v = part.split("=", 1)
            items.append((k.strip(), v.strip()))
    out: dict[str, str] = {}
    for k, v in items:
        k = k.strip().lower().replace("_", "-")
        k = _MAP_ALIASES.get(k, k)
        if k not in MAP_KEYS:
            raise ManifestError(f"unknown --map key {k!r}", fix=f"keys are {', '.join(MAP_KEYS)}")
        out[k] = v
    unit = out.get("time-unit", "auto")
    if unit not in ("s", "ms", "hms", "iso", "auto"):
        raise ManifestError(f"unknown time-unit {unit!r}", fix="time-unit is one of s, ms, hms, iso, auto")
    if "id" not in out and "url" not in out:
        raise ManifestError(
            "--map needs id=COLUMN or url=COLUMN to identify sources", fix="e.g. --map id=video_id"
        )
    return out


def _generic(ctx: Context, con: duckdb.DuckDBPyConnection) -> str:
    m = ctx.mapping
    if not m:
        raise ManifestError(
            "the generic format needs a column mapping",
            item=ctx.path,
            fix="give --map id=COLUMN[,url=COLUMN,start=COLUMN,end=COLUMN,caption=COLUMN,time-unit=s|ms|hms]",
        )
    jsonl = ctx.staged.kind == "jsonl"
    if jsonl:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW _cf_gsrc AS SELECT ord, line, j, json_valid(j) AS ok FROM {SRC}"
        )
    else:
        missing = [f"{k}={m[k]}" for k in _COLUMN_KEYS if k in m and m[k] not in ctx.columns]
        if missing:
            raise ManifestError(
                f"--map names columns the file does not have: {', '.join(missing)}",
                item=ctx.path,
                fix=f"the columns are: {', '.join(ctx.columns)}",
            )

    def col(key: str) -> str:
        if key not in m:
            return "NULL"
        if jsonl:
            return f"CASE WHEN ok THEN j->>{lit('$.' + ident(m[key]))} END"
        return ident(m[key])

    unit = m.get("time-unit", "auto")
    platform = m.get("platform", "").strip().lower()
    idc, urlc = col("id"), col("url")
    if platform == "youtube":
        plat, pid = "'youtube'", f"cf_yt(coalesce({idc}, {urlc}))"
    elif platform in ("web", "url"):
        plat, pid = "'web'", f"cf_url_hash(coalesce({urlc}, {idc}))"
    elif platform:
        plat = lit(platform)
        pid = f"CASE WHEN regexp_full_match(cf_strip({idc}), '[^\\s:/]+') THEN cf_strip({idc}) END"
    else:
        plat = (
            f"CASE WHEN cf_yt({idc}) IS NOT NULL OR ({idc} IS NULL AND cf_yt({urlc}) IS NOT NULL) THEN 'youtube' "
            f"WHEN contains(coalesce({idc}, {urlc}), '://') THEN 'web' ELSE 'youtube' END"
        )
        pid = (
            f"CASE WHEN cf_yt({idc}) IS NOT NULL THEN cf_yt({idc}) "
            f"WHEN {idc} IS NULL AND cf_yt({urlc}) IS NOT NULL THEN cf_yt({urlc}) "
            f"WHEN contains(coalesce({idc}, {urlc}), '://') THEN cf_url_hash(coalesce({idc}, {urlc})) END"
        )
    if platform:
        id_error = "NULL"
    else:
        id_error = (
            f"CASE WHEN ({pid}) IS NULL AND nullif(cf_strip(coalesce({idc}, {urlc})), '') IS NOT NULL "
            f"THEN 'not a YouTube id or URL: ' || cf_strip(coalesce({idc}, {urlc})) "
            "|| ' (give --map platform=NAME for ids of another platform)' END"
        )
    json_error = "CASE WHEN NOT ok THEN 'not valid JSON' END" if jsonl else "NULL"
    lic_sql, lic_error = _licence_column(con, col("license"), "_cf_gsrc" if jsonl else SRC)
    duration = f"cf_ms_unit({col('duration')}, {lit(unit)})"
    sel = ctx.select(
        ord="ord",
        line="line",
        platform=plat,
        pid=pid,
        id_text=f"coalesce({idc}, {urlc})",
        url=urlc,
        title=col("title"),
        duration_ms=duration,
        duration_text=col("duration"),
        start_ms=f"cf_ms_unit({col('start')}, {lit(unit)})",
        end_ms=f"cf_ms_unit({col('end')}, {lit(unit)})",
        start_text=col("start"),
        end_text=col("end"),
        caption=col("caption"),
        label=col("label"),
        split=col("split") if "split" in m else (lit(ctx.split_hint) if ctx.split_hint else "NULL"),
        error=f"coalesce({json_error}, {id_error}, {lic_error})",
        raw="j" if jsonl else "NULL",
        **({"content_license": lic_sql} if "license" in m else {}),
        **({"rights_holder": f"nullif(cf_strip({col('rights-holder')}), '')"} if "rights-holder" in m else {}),
        **({"uploader": f"nullif(cf_strip({col('uploader')}), '')"} if "uploader" in m else {}),
    )
    return f"""SELECT {sel} FROM {"_cf_gsrc" if jsonl else SRC}"""


def _licence_column(con: duckdb.DuckDBPyConnection, expr: str, table: str) -> tuple[str, str]:
    """SQL for a mapped licence column: its SPDX-normalised value, and the row error when it is not one.

    The distinct values (few, in any real manifest) are checked once with the SPDX licence list; a row whose
    licence is not an SPDX expression (nor ``LicenseRef-...``) is rejected, naming the value."""
    if expr == "NULL":
        return "NULL", "NULL"
    from .owned import validate_license

    values = [r[0] for r in con.execute(f"SELECT DISTINCT cf_strip({expr}) FROM {table}").fetchall()]
    norm, bad = [], []
    for v in values:
        if v is None or not v.strip():
            continue
        try:
            norm.append((v, validate_license(v)))
        except ManifestError:
            bad.append(v)
    con.execute("CREATE OR REPLACE TEMP TABLE _cf_lic (raw VARCHAR, spdx VARCHAR, bad BOOLEAN)")
    if norm or bad:
        con.executemany(
            "INSERT INTO _cf_lic VALUES (?, ?, ?)", [(v, n, False) for v, n in norm] + [(v, None, True) for v in bad]
        )
    key = f"cf_strip({expr})"
    spdx = f"(SELECT l.spdx FROM _cf_lic l WHERE l.raw = {key})"
    error = (
        f"CASE WHEN (SELECT l.bad FROM _cf_lic l WHERE l.raw = {key}) THEN 'not an SPDX licence expression: ' "
        f"|| {key} || ' (use an SPDX id such as CC-BY-4.0, or LicenseRef-<name> for a custom licence)' END"
    )
    return spdx, error


# -- the table of formats ---------------------------------------------------------------------------
ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in [
        Adapter(
            "kinetics",
            ("csv", "parquet"),
            None,
            ("youtube_id", "time_start", "time_end"),
            _kinetics,
            "Kinetics-400/600/700 CSV: label,youtube_id,time_start,time_end,split[,is_cc]",
            aliases=("kinetics-400", "kinetics-600", "kinetics-700"),
            default_dataset=_kinetics_dataset,
        ),
        Adapter(
            "hd-vila-100m",
            ("jsonl",),
            "hd-vila-100m",
            ("video_id", "url", "clip"),
            _hdvila,
            "HD-VILA-100M JSONL: video_id, url, clip[{clip_id, span}]",
            aliases=("hd-vila",),
        ),
        Adapter(
            "panda-70m",
            ("csv", "parquet"),
            "panda-70m",
            ("videoID", "url", "timestamp", "caption"),
            _panda,
            "Panda-70M CSV: videoID,url,timestamp,caption,matching_score (Python-list strings)",
            aliases=("panda",),
        ),
        Adapter(
            "internvid-10m",
            ("jsonl",),
            "internvid-10m",
            ("YoutubeID", "Start_timestamp", "End_timestamp"),
            _internvid,
            "InternVid-10M JSONL: YoutubeID, Start_timestamp, End_timestamp, Caption, scores",
            aliases=("internvid",),
        ),
        Adapter(
            "hd-vg-130m",
            ("json",),
            "hd-vg-130m",
            ("url", "clip"),
            _hdvg,
            "HD-VG-130M JSON: {ytid: {url, clip: {name: {span, fps, scene_split}}}}",
            aliases=("hd-vg",),
        ),
        Adapter(
            "webvid-10m",
            ("csv", "parquet"),
            "webvid-10m",
            ("videoid", "contentUrl"),
            _webvid,
            "WebVid-10M CSV: videoid,name,page_idx,page_dir,duration,contentUrl",
            aliases=("webvid",),
        ),
        Adapter(
            "acav100m",
            ("csv",),
            "acav100m",
            ACAV_NAMES,
            _acav,
            "ACAV100M output.csv (no header): shard, file, youtube id, [start, end]",
            header=False,
            names=ACAV_NAMES,
            aliases=("acav",),
        ),
        Adapter(
            "howto100m",
            ("csv", "parquet"),
            "howto100m",
            ("video_id", "category_1"),
            _howto,
            "HowTo100M CSV: video_id,category_1,category_2,rank,task_id (+ caption.pickle)",
            aliases=("howto",),
        ),
        Adapter(
            "youtube-8m",
            ("csv", "parquet"),
            "youtube-8m",
            ("id",),
            _yt8m,
            "YouTube-8M video ids CSV: id[,youtube_id][,labels]",
            aliases=("yt8m",),
        ),
        Adapter(
            "ego4d",
            ("csv", "json"),
            "ego4d",
            ("video_uid",),
            _ego4d,
            "Ego4D ego4d.json ({videos: [...]}) or manifest.csv (video_uid, canonical_s3_location, ...)",
        ),
        Adapter(
            "openvid-1m",
            ("csv", "parquet"),
            "openvid-1m",
            ("video", "caption"),
            _openvid,
            "OpenVid-1M CSV: video,caption,aesthetic score,... (file <ytid>_<k>_<a>to<b>.mp4)",
            aliases=("openvid",),
        ),
        Adapter(
            "msr-vtt",
            ("json",),
            "msr-vtt",
            (),
            _msrvtt,
            "MSR-VTT *_videodatainfo.json or the caption file [{video, caption: [...]}]",
            aliases=("msrvtt",),
        ),
        Adapter(
            "generic",
            ("csv", "jsonl", "parquet"),
            None,
            (),
            _generic,
            "any CSV, JSONL or Parquet with --map id=COL,url=COL,start=COL,end=COL,caption=COL,"
            "license=COL,rights_holder=COL,uploader=COL,time-unit=s|ms|hms",
        ),
    ]
}

_ALIASES = {alias: a.name for a in ADAPTERS.values() for alias in (a.name, *a.aliases)}


def resolve_format(name: str) -> tuple[Adapter, str | None]:
    """The adapter for a ``--format`` value, and the dataset the name implies (``kinetics-600``)."""
    key = name.strip().lower()
    if key in ("owned", "folder"):
        raise KeyError(key)
    if key not in _ALIASES:
        raise ManifestError(
            f"unknown format {name!r}",
            fix=f"formats are: {', '.join(sorted(ADAPTERS))}, owned",
        )
    adapter = ADAPTERS[_ALIASES[key]]
    implied = key if key.startswith("kinetics-") else None
    return adapter, implied


FORMAT_NAMES = sorted([*ADAPTERS, "owned"])
