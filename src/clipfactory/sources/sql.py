"""SQL twins of the id and time helpers, as DuckDB macros for vectorised ingest.

Every macro here has a Python counterpart (:mod:`clipfactory.ids`, :func:`time_to_ms`) and the tests check
that both agree on the same inputs. :func:`install_macros` creates them as temporary macros on a
connection, so they never become part of the catalog file.
"""

from __future__ import annotations

import math
import re

import duckdb

from ..ids import YOUTUBE_URL_RE

#: Characters Python's ``str.strip()`` removes that matter in manifests.
_WS_SQL = "' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"

_CLOCK_RE = r"^(?:([0-9]+):)?([0-9]{1,2}):([0-9]{1,2}(?:\.[0-9]*)?)$"
_ISO_RE = (
    r"^[Pp](?:([0-9]+(?:\.[0-9]*)?)[Dd])?(?:[Tt](?:([0-9]+(?:\.[0-9]*)?)[Hh])?"
    r"(?:([0-9]+(?:\.[0-9]*)?)[Mm])?(?:([0-9]+(?:\.[0-9]*)?)[Ss])?)?$"
)
_NUM_RE = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_URL_PARTS_RE = (
    r"^([A-Za-z][A-Za-z0-9+.-]*)://(?:[^@/?#]*@)?(\[[^\]]*\]|[^/?#:]*)(?::([0-9]*))?([^?#]*)(?:\?([^#]*))?"
)
_WS = r"[ \t\n\r\f\v]*"


def _ws(pattern: str) -> str:
    """An anchored pattern that also allows the whitespace ``str.strip`` would remove, for SQL."""
    return "^" + _WS + pattern[1:-1] + _WS + "$"


_UUID_RE = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"


def lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


MACROS = f"""
CREATE OR REPLACE TEMP MACRO cf_strip(x) AS trim(x, {_WS_SQL});

-- ids.youtube_id: a bare 11-character id or any common YouTube URL spelling; NULL otherwise.
CREATE OR REPLACE TEMP MACRO cf_yt(x) AS (
    CASE WHEN regexp_full_match(x, '[A-Za-z0-9_-]{{11}}') THEN x
         WHEN regexp_full_match(cf_strip(x), '[A-Za-z0-9_-]{{11}}') THEN cf_strip(x)
         ELSE nullif(regexp_extract(cf_strip(x), {lit(YOUTUBE_URL_RE)}, 1), '') END
);

-- Why cf_yt(x) is NULL, for the error report.
CREATE OR REPLACE TEMP MACRO cf_yt_reason(x) AS (
    CASE WHEN x IS NULL OR cf_strip(x) = '' THEN 'missing YouTube id'
         WHEN contains(cf_strip(x), '/') OR contains(cf_strip(x), '.')
              THEN 'not a YouTube video URL: ' || cf_strip(x)
         WHEN length(cf_strip(x)) <> 11
              THEN 'bad YouTube id ' || cf_strip(x) || ': ' || length(cf_strip(x)) || ' characters, not 11'
         ELSE 'bad YouTube id ' || cf_strip(x) || ': characters outside A-Z a-z 0-9 _ -' END
);

-- ids.normalise_url: lower-case scheme and host, drop userinfo, fragment and default ports.
CREATE OR REPLACE TEMP MACRO cf_url_parts(u) AS regexp_extract(cf_strip(u), {lit(_URL_PARTS_RE)},
    ['scheme', 'host', 'port', 'path', 'query']);
CREATE OR REPLACE TEMP MACRO cf_norm_url(u) AS (
    CASE WHEN cf_url_parts(u).scheme = '' THEN coalesce(nullif(regexp_replace(cf_strip(u), '#.*$', ''), ''), '/')
    ELSE lower(cf_url_parts(u).scheme) || '://' || lower(cf_url_parts(u).host)
         || CASE WHEN cf_url_parts(u).port = '' THEN ''
                 WHEN lower(cf_url_parts(u).scheme) = 'http' AND TRY_CAST(cf_url_parts(u).port AS BIGINT) = 80 THEN ''
                 WHEN lower(cf_url_parts(u).scheme) = 'https' AND TRY_CAST(cf_url_parts(u).port AS BIGINT) = 443 THEN ''
                 ELSE ':' || CAST(TRY_CAST(cf_url_parts(u).port AS BIGINT) AS VARCHAR) END
         || coalesce(nullif(cf_url_parts(u).path, ''), '/')
         || CASE WHEN cf_url_parts(u).query = '' THEN '' ELSE '?' || cf_url_parts(u).query END
    END
);
-- ids.url_source_id without the YouTube shortcut: the 24-hex hash of the normalised URL.
CREATE OR REPLACE TEMP MACRO cf_url_hash(u) AS substr(sha256(cf_norm_url(u)), 1, 24);

-- Times to milliseconds. cf_sec_ms: plain (decimal) seconds. cf_clock_ms: [H]H:MM:SS[.mmm] or MM:SS[.mmm].
-- cf_iso_ms: ISO-8601 durations such as PT00H00M17S. cf_ms: whichever of the three matches.
CREATE OR REPLACE TEMP MACRO cf_num(t) AS (
    CASE WHEN regexp_full_match(t, {lit(_ws(_NUM_RE)[1:-1])}) THEN TRY_CAST(t AS DOUBLE) END
);
CREATE OR REPLACE TEMP MACRO cf_sec_ms(t) AS CAST(round(cf_num(t) * 1000) AS BIGINT);
CREATE OR REPLACE TEMP MACRO cf_msec_ms(t) AS CAST(round(cf_num(t)) AS BIGINT);
CREATE OR REPLACE TEMP MACRO cf_clock_parts(t) AS regexp_extract(t, {lit(_ws(_CLOCK_RE))}, ['h', 'm', 's']);
CREATE OR REPLACE TEMP MACRO cf_clock_ms(t) AS (
    CASE WHEN cf_clock_parts(t).m = '' THEN NULL ELSE CAST(round(
        coalesce(TRY_CAST(nullif(cf_clock_parts(t).h, '') AS DOUBLE), 0) * 3600000
        + CAST(cf_clock_parts(t).m AS DOUBLE) * 60000
        + CAST(cf_clock_parts(t).s AS DOUBLE) * 1000) AS BIGINT) END
);
CREATE OR REPLACE TEMP MACRO cf_iso_parts(t) AS regexp_extract(t, {lit(_ws(_ISO_RE))}, ['d', 'h', 'm', 's']);
CREATE OR REPLACE TEMP MACRO cf_iso_ms(t) AS (
    CASE WHEN t IS NULL OR NOT regexp_full_match(t, {lit(_ws(_ISO_RE)[1:-1])}) THEN NULL
         WHEN regexp_full_match(t, {lit(_WS + "[Pp][Tt]?" + _WS)}) THEN NULL ELSE CAST(round(
        coalesce(TRY_CAST(nullif(cf_iso_parts(t).d, '') AS DOUBLE), 0) * 86400000
        + coalesce(TRY_CAST(nullif(cf_iso_parts(t).h, '') AS DOUBLE), 0) * 3600000
        + coalesce(TRY_CAST(nullif(cf_iso_parts(t).m, '') AS DOUBLE), 0) * 60000
        + coalesce(TRY_CAST(nullif(cf_iso_parts(t).s, '') AS DOUBLE), 0) * 1000) AS BIGINT) END
);
CREATE OR REPLACE TEMP MACRO cf_ms(t) AS coalesce(cf_sec_ms(t), cf_clock_ms(t), cf_iso_ms(t));
-- With an explicit unit: s, ms, hms (clock), iso, or auto.
CREATE OR REPLACE TEMP MACRO cf_ms_unit(t, unit) AS (
    CASE unit WHEN 's' THEN cf_sec_ms(t) WHEN 'ms' THEN cf_msec_ms(t) WHEN 'hms' THEN cf_clock_ms(t)
              WHEN 'iso' THEN cf_iso_ms(t) ELSE cf_ms(t) END
);

CREATE OR REPLACE TEMP MACRO cf_is_uuid(x) AS regexp_full_match(x, {lit(_ws(_UUID_RE)[1:-1])});
"""


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``cf_*`` macros as temporary macros on ``con``."""
    for stmt in MACROS.split(";\n"):
        if stmt.strip() and not all(
            line.strip().startswith("--") or not line.strip() for line in stmt.splitlines()
        ):
            con.execute(stmt)


# -- Python twins ------------------------------------------------------------------------------------
_num = re.compile(_NUM_RE)
_clock = re.compile(_CLOCK_RE)
_iso = re.compile(_ISO_RE)


def _round(x: float) -> int:
    """Round half away from zero, as DuckDB's ``round`` does."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def time_to_ms(text: str | float | int | None, unit: str = "auto") -> int | None:
    """Milliseconds from seconds, ``[H]H:MM:SS[.mmm]`` or an ISO-8601 duration; ``None`` if unparsable.

    The Python twin of the ``cf_ms_unit`` macro, for the few places that parse a time outside SQL.
    """
    if text is None:
        return None
    if isinstance(text, int | float):
        if isinstance(text, bool) or not math.isfinite(float(text)):
            return None
        return _round(float(text) * (1 if unit == "ms" else 1000))
    t = text.strip(" \t\n\x0b\x0c\r")
    if unit in ("s", "ms", "auto") and _num.match(t):
        v = float(t)
        if not math.isfinite(v):
            return None
        return _round(v if unit == "ms" else v * 1000)
    if unit in ("hms", "auto"):
        m = _clock.match(t)
        if m:
            h, mi, s = m.groups()
            return _round(float(h or 0) * 3600000 + float(mi) * 60000 + float(s) * 1000)
    if unit in ("iso", "auto"):
        m = _iso.match(t)
        if m and t.upper() not in ("P", "PT"):
            d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            return _round(d * 86400000 + h * 3600000 + mi * 60000 + s * 1000)
    return None
