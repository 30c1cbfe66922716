"""Read manifest files into DuckDB with exact line numbers and every unreadable row kept.

Each reader creates a temporary view ``_cf_src`` on the connection with an ordinal ``ord`` (0-based,
file order), the file ``line`` (header = line 1) and the file's fields as VARCHAR columns, and returns
the structural rejects (rows DuckDB could not split into fields: wrong column count, invalid UTF-8,
a stray quote) with their lines. Field values are never typed by the reader; the adapters parse them
in SQL so that a bad value becomes an error row, not a failed read.

Line numbers: DuckDB numbers records, not physical lines, and skips blank lines. When the file has
exactly one physical line per record (the common case, checked by counting newlines while hashing),
a valid row's line is its ordinal plus the header plus the rejected lines before it. Otherwise
(quoted newlines, blank lines) a vectorised pass over the bytes finds the lines where records start.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from ..errors import ManifestError
from .sql import lit

log = logging.getLogger(__name__)

_CHUNK = 8 << 20
_ELEMENT_BUFFER = 16 << 20  # DuckDB's default maximum_object_size
SRC = "_cf_src"
RAW = "_cf_raw"
ELEMS = "_cf_elems"


@dataclass(frozen=True)
class FileFacts:
    """What one pass over the bytes tells: content hash, size, physical line count."""

    path: str
    sha256: str
    size: int
    n_lines: int
    head: bytes

    @classmethod
    def of(cls, path: str | os.PathLike) -> FileFacts:
        h = hashlib.sha256()
        newlines = 0
        size = 0
        last = b""
        head = b""
        with open(path, "rb") as fh:
            while True:
                buf = fh.read(_CHUNK)
                if not buf:
                    break
                if not head:
                    head = buf[: 1 << 16]
                h.update(buf)
                newlines += buf.count(b"\n")
                size += len(buf)
                last = buf[-1:]
        n_lines = newlines + (1 if size and last != b"\n" else 0)
        return cls(str(path), h.hexdigest(), size, n_lines, head)


@dataclass
class RowError:
    """One row that was not ingested."""

    line: int | None
    reason: str
    raw: str | None = None
    pointer: str | None = None

    def where(self, uri: str) -> str:
        loc = self.line if self.line is not None else (self.pointer or "")
        return f"{uri}:{loc}" if loc != "" else uri


@dataclass
class Staged:
    """The result of reading a file: ``_cf_src`` exists on the connection."""

    columns: list[str]
    rows: int  # data rows in _cf_src (blank lines excluded)
    rejects: list[RowError] = field(default_factory=list)
    lines_exact: bool = True
    kind: str = "csv"
    layout: str | None = None  # a JSON document's top-level type; ``ARRAY`` when its elements were streamed


_REJECT_REASONS = {
    "MISSING COLUMNS": "missing columns",
    "TOO MANY COLUMNS": "too many columns",
    "INVALID ENCODING": "invalid UTF-8 bytes (the file is not UTF-8 encoded)",
    "UNQUOTED VALUE": "stray or unterminated quote",
    "LINE SIZE OVER MAXIMUM": "line too long",
    "CAST": "unreadable value",
}


def _reject_reason(error_type: str, message: str | None) -> str:
    base = _REJECT_REASONS.get(error_type, error_type.lower())
    if error_type in ("MISSING COLUMNS", "TOO MANY COLUMNS") and message:
        return f"{base} ({message.strip().rstrip('.')})"
    return base


def _csv_options(header: bool, names: list[str] | None, rejects: str) -> str:
    opts = [
        "all_varchar = true",
        f"header = {'true' if header else 'false'}",
        "delim = ','",
        "quote = '\"'",
        "escape = '\"'",
        "encoding = 'utf-8'",
        "store_rejects = true",
        f"rejects_table = '{rejects}_errors'",
        f"rejects_scan = '{rejects}_scans'",
        "max_line_size = 33554432",
    ]
    if names:
        opts.append("names = [" + ", ".join(lit(n) for n in names) + "]")
    return ", ".join(opts)


def _fetch_rejects(con: duckdb.DuckDBPyConnection, rejects: str) -> list[tuple[int, str, str]]:
    rows = con.execute(
        f"""SELECT line, string_agg(DISTINCT error_type, '|'), any_value(error_message), any_value(csv_line)
            FROM {rejects}_errors GROUP BY line ORDER BY line"""
    ).fetchall()
    out = []
    for line, types, message, raw in rows:
        first = types.split("|")[0]
        out.append((int(line), _reject_reason(first, message), raw))
    return out


def _drop_rejects(con: duckdb.DuckDBPyConnection, rejects: str) -> None:
    con.execute(f"DROP TABLE IF EXISTS {rejects}_errors")
    con.execute(f"DROP TABLE IF EXISTS {rejects}_scans")


def _shift_view(
    con: duckdb.DuckDBPyConnection, header_lines: int, reject_lines: list[int], where: str = "TRUE"
) -> None:
    """``_cf_src`` for files with one physical line per record: line = ord + header + rejects before."""
    # Temporary tables number their rows from an offset, in insertion (= file) order.
    base = con.execute(f"SELECT coalesce(min(rowid), 0) FROM {RAW}").fetchall()[0][0]
    ordinal = f"(rowid - {base})"
    if not reject_lines:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {SRC} AS "
            f"SELECT {ordinal} AS ord, {ordinal} + {header_lines + 1} AS line, * FROM {RAW} WHERE {where}"
        )
        return
    # The j-th rejected line (0-based) sits after t_j = line_j - header - 1 - j valid rows.
    thresholds = [line - header_lines - 1 - j for j, line in enumerate(reject_lines)]
    last: dict[int, int] = {}
    for j, t in enumerate(thresholds):
        last[t] = j + 1
    shifts = pa.table({"t": pa.array(list(last), pa.int64()), "n": pa.array(list(last.values()), pa.int64())})
    con.execute("DROP TABLE IF EXISTS _cf_shift")
    con.execute("CREATE TEMP TABLE _cf_shift (t BIGINT, n BIGINT)")
    con.register("_cf_shift_in", shifts)
    con.execute("INSERT INTO _cf_shift SELECT * FROM _cf_shift_in")
    con.unregister("_cf_shift_in")
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {SRC} AS
            SELECT r.ord, r.ord + {header_lines + 1} + coalesce(s.n, 0) AS line, r.* EXCLUDE (ord)
            FROM (SELECT {ordinal} AS ord, * FROM {RAW} WHERE {where}) r
            ASOF LEFT JOIN _cf_shift s ON r.ord >= s.t"""
    )


def record_start_lines(path: str | os.PathLike, quote: int = 0x22) -> tuple[np.ndarray, np.ndarray]:
    """Physical line numbers (1-based) where CSV records start, and whether each such line is blank.

    A line starts a record when the quotes before it are balanced (RFC 4180: a doubled quote inside a
    field adds two). Vectorised over 8 MiB chunks with numpy.
    """
    counts: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    carry_q = 0
    carry_len = 0
    offset = 0
    prev_byte = -1
    with open(path, "rb") as fh:
        while True:
            buf = fh.read(_CHUNK)
            if not buf:
                break
            a = np.frombuffer(buf, np.uint8)
            nl = np.flatnonzero(a == 10)
            q = np.flatnonzero(a == quote)
            if len(nl):
                before = np.searchsorted(q, nl)
                c = np.diff(before, prepend=0)
                c[0] += carry_q
                starts = np.concatenate(([0], nl[:-1] + 1))
                ln = nl - starts
                ln[0] += carry_len
                # A line ending in CR LF has one more byte that is not content.
                cr = np.zeros(len(nl), bool)
                cr_idx = nl - 1
                ok = cr_idx >= 0
                cr[ok] = a[cr_idx[ok]] == 13
                if len(nl) and nl[0] == 0 and prev_byte == 13:
                    cr[0] = True
                ln = ln - cr
                counts.append(c)
                lengths.append(ln)
                carry_q = len(q) - int(before[-1])
                carry_len = len(a) - int(nl[-1]) - 1
            else:
                carry_q += len(q)
                carry_len += len(a)
            prev_byte = int(a[-1])
            offset += len(a)
    if carry_len or carry_q:
        counts.append(np.array([carry_q]))
        lengths.append(np.array([carry_len]))
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    c = np.concatenate(counts)
    ln = np.concatenate(lengths)
    inside = (np.cumsum(c) - c) % 2 == 1
    start_idx = np.flatnonzero(~inside)
    return start_idx + 1, ln[start_idx] == 0


def _mapped_view(
    con: duckdb.DuckDBPyConnection,
    path: str,
    header_lines: int,
    rejects: list[tuple[int, str, str]],
    n_valid: int,
) -> tuple[list[tuple[int, str, str]], bool]:
    """``_cf_src`` for files with quoted newlines or blank lines. Returns rejects with physical lines."""
    starts, blank = record_start_lines(path)

    # DuckDB numbers records (blank lines included) from 1; record n starts at physical line starts[n-1].
    def phys(n: int) -> int:
        return int(starts[n - 1]) if 0 < n <= len(starts) else n

    mapped = [(phys(line), reason, raw) for line, reason, raw in rejects]
    keep = np.ones(len(starts), bool)
    keep[:header_lines] = False
    keep &= ~blank
    for line, _, _ in rejects:
        if 0 < line <= len(keep):
            keep[line - 1] = False
    valid_lines = starts[keep]
    exact = len(valid_lines) == n_valid
    if not exact:
        log.warning(
            "%s: could not map %d rows to physical lines (found %d record starts); lines are approximate",
            path,
            n_valid,
            len(valid_lines),
        )
        _shift_view(con, header_lines, [])
        return rejects, False
    con.execute("DROP TABLE IF EXISTS _cf_linemap")
    con.execute("CREATE TEMP TABLE _cf_linemap (ord BIGINT, line BIGINT)")
    con.register(
        "_cf_linemap_in",
        pa.table({"ord": pa.array(np.arange(n_valid, dtype=np.int64)), "line": pa.array(valid_lines)}),
    )
    con.execute("INSERT INTO _cf_linemap SELECT * FROM _cf_linemap_in")
    con.unregister("_cf_linemap_in")
    base = con.execute(f"SELECT coalesce(min(rowid), 0) FROM {RAW}").fetchall()[0][0]
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {SRC} AS
            SELECT r.ord, m.line, r.* EXCLUDE (ord)
            FROM (SELECT rowid - {base} AS ord, * FROM {RAW}) r JOIN _cf_linemap m USING (ord)"""
    )
    return mapped, True


def stage_csv(
    con: duckdb.DuckDBPyConnection,
    facts: FileFacts,
    *,
    header: bool = True,
    names: list[str] | None = None,
) -> Staged:
    """Read a CSV (all fields as VARCHAR) into ``_cf_raw`` and expose ``_cf_src`` with line numbers.

    A quote that opens a field and is never closed makes DuckDB read the rest of the file as that one
    field (or fail to sniff the file at all). Such a line is rejected by itself ("stray or unterminated
    quote"), and the file is read again without it, so the rows after it are kept.
    """
    rj = "_cf_rej"
    header_lines = 1 if header else 0
    path = facts.path
    stray: list[tuple[int, str, str]] = []
    workdir: str | None = None
    try:
        while True:
            _read_csv(con, path, facts, header, names, rj)
            rejects = _fetch_rejects(con, rj)
            swallowed = _swallowing_rejects(con, rj)
            _drop_rejects(con, rj)
            if not swallowed:
                swallowed = _rows_inside_quotes(con, path, facts.n_lines, header_lines, len(rejects))
            if not swallowed:
                break
            if len(stray) >= _MAX_STRAY_QUOTES:
                lines = ", ".join(str(line) for line, _, _ in stray)
                raise ManifestError(
                    f"more than {_MAX_STRAY_QUOTES} lines open a quoted field that never closes (lines {lines}, …)",
                    item=facts.path,
                    fix="check the file's quoting: a field that holds a quote must be quoted with the quote doubled",
                )
            if workdir is None:
                import tempfile

                workdir = tempfile.mkdtemp(prefix="clipfactory-csv-")
            nxt = os.path.join(workdir, f"{len(stray)}.csv")
            emptied = _blank_lines(path, nxt, swallowed)
            if not emptied:
                raise ManifestError(
                    "cannot read as CSV: a quoted field never closes, and the line that opens it cannot be found",
                    item=facts.path,
                    fix="check the file's quoting: a field that holds a quote must be quoted with the quote doubled",
                )
            stray.extend(emptied)
            path = nxt
        columns = [r[0] for r in con.execute(f"SELECT column_name FROM (DESCRIBE {RAW})").fetchall()]
        n_valid = con.execute(f"SELECT count(*) FROM {RAW}").fetchall()[0][0]
        if facts.n_lines == header_lines + n_valid + len(rejects) + len(stray):
            _shift_view(con, header_lines, sorted(r[0] for r in rejects + stray))
            exact = True
        else:
            rejects, exact = _mapped_view(con, path, header_lines, rejects, n_valid)
    finally:
        if workdir is not None:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    errors = [RowError(line, reason, raw) for line, reason, raw in sorted(rejects + stray)]
    return Staged(columns, n_valid, errors, exact, "csv")


def _rows_inside_quotes(
    con: duckdb.DuckDBPyConnection, path: str, n_lines: int, header_lines: int, n_rejects: int
) -> list[int]:
    """Byte offsets of the lines whose stray quotes make one record of several lines that are rows.

    A quote that opens on one line and a stray one that closes on a later line form a valid quoted field
    holding the lines between, so DuckDB reads them as one row and the rows inside vanish. A field may
    hold newlines (a caption), but not lines that are rows themselves: a record whose later lines each
    split into exactly the file's number of fields (3 or more) is taken apart. The lines of it that
    hold a quote are the bad ones (returned; they become rejects and the file is read again without
    them); the lines between are read as the rows they are.
    """
    n_valid = con.execute(f"SELECT count(*) FROM {RAW}").fetchall()[0][0]
    if n_lines == header_lines + n_valid + n_rejects:
        return []  # one line per record: nothing spans lines
    ncols = len(con.execute(f"DESCRIBE {RAW}").fetchall())
    if ncols < 3:
        return []
    starts, _blank = record_start_lines(path)
    ends = np.append(starts[1:] - 1, max(n_lines, int(starts[-1]) if len(starts) else 0))
    multi = np.flatnonzero(ends > starts)
    multi = multi[starts[multi] > header_lines][:_MAX_SPANNING_RECORDS]
    if not len(multi):
        return []
    wanted = {int(ln) for i in multi for ln in range(int(starts[i]), int(ends[i]) + 1)}
    lines = _line_spans(path, wanted)
    offsets: list[int] = []
    for i in multi:
        nums = range(int(starts[i]), int(ends[i]) + 1)
        texts = [_read_span(path, *lines[n]) for n in nums]
        if _holds_rows([t.rstrip(b"\r\n") for t in texts], ncols):
            offsets += [lines[n][0] for n, t in zip(nums, texts, strict=True) if b'"' in t]
    return offsets


def _holds_rows(texts: list[bytes], ncols: int) -> bool:
    """Whether the lines of one record are rows joined by stray quotes rather than a field with newlines.

    With lines between the first and the last: those without a quote all have exactly the file's number
    of fields (and there is one). Of two lines: each has the fields of a whole row by itself.
    """
    inner = [t for t in texts[1:-1] if b'"' not in t]
    if len(texts) > 2:
        return bool(inner) and all(t.count(b",") == ncols - 1 for t in inner)
    return texts[0].count(b",") >= ncols - 1 and texts[-1].count(b",") == ncols - 1


def _line_spans(path: str, wanted: set[int]) -> dict[int, tuple[int, int]]:
    """``line -> (byte offset, length)`` of the wanted physical lines (1-based), in one pass over the file."""
    out: dict[int, tuple[int, int]] = {}
    last = max(wanted)
    line, line_start, offset = 1, 0, 0
    with open(path, "rb") as fh:
        while line <= last and (buf := fh.read(_CHUNK)):
            nl = np.flatnonzero(np.frombuffer(buf, np.uint8) == 10) + offset
            for end in nl:
                if line in wanted:
                    out[line] = (line_start, int(end) + 1 - line_start)
                line, line_start = line + 1, int(end) + 1
                if line > last:
                    break
            offset += len(buf)
    if line <= last and line in wanted:
        out[line] = (line_start, offset - line_start)  # the last line, without a newline
    return out


def _read_span(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


#: Records over several lines that are checked for rows inside a stray quote's field.
_MAX_SPANNING_RECORDS = 10_000

#: Lines with a quote that never closes, each costing one more read of the file, before the file is refused.
_MAX_STRAY_QUOTES = 16


def _read_csv(
    con: duckdb.DuckDBPyConnection,
    path: str,
    facts: FileFacts,
    header: bool,
    names: list[str] | None,
    rj: str,
) -> None:
    """``_cf_raw`` from the CSV at ``path``; where DuckDB's sniffer gives up (an unbalanced quote can make
    it), the columns come from the header line (or ``names``) and nothing is sniffed."""
    _drop_rejects(con, rj)
    con.execute(f"DROP TABLE IF EXISTS {RAW}")
    opts = _csv_options(header, names, rj)
    select = f"SELECT * FROM read_csv(?, {opts})"
    # A failed statement aborts the ingest's transaction, so the sniffer is tried on a connection of its own.
    probe = duckdb.connect()
    try:
        probe.execute(f"DESCRIBE {select}", [path])
        sniffed = True
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as exc:
        if "sniffing" not in str(exc):
            raise ManifestError(f"cannot read as CSV: {_first_line(exc)}", item=facts.path) from exc
        sniffed = False
    finally:
        probe.close()
    if not sniffed:
        cols = names or sniff_header(facts)
        if not header and not names:
            cols = [f"column{i}" for i in range(len(cols))]
        if not cols:
            raise ManifestError("cannot read as CSV: DuckDB cannot tell its columns", item=facts.path)
        spec = "{" + ", ".join(f"{lit(c)}: 'VARCHAR'" for c in cols) + "}"
        select = f"SELECT * FROM read_csv(?, {opts}, auto_detect = false, columns = {spec})"
    try:
        con.execute(f"CREATE TEMP TABLE {RAW} AS {select}", [path])
    except duckdb.OutOfMemoryException:
        raise  # the ingest names the memory limit to raise
    except duckdb.Error as exc:
        raise ManifestError(f"cannot read as CSV: {_first_line(exc)}", item=facts.path) from exc


def _swallowing_rejects(con: duckdb.DuckDBPyConnection, rejects: str) -> list[int]:
    """Byte offsets within the lines where a quoted field opens and runs on over later lines until DuckDB
    gives up on it: those later lines were read as part of the bad field, not as rows."""
    rows = con.execute(
        f"""SELECT DISTINCT line_byte_position FROM {rejects}_errors
            WHERE error_type = 'UNQUOTED VALUE' AND position(chr(10) IN rtrim(csv_line, chr(13) || chr(10))) > 0
            ORDER BY 1"""
    ).fetchall()
    # DuckDB gives the line's start counting from 1, so the offset is the line's first or second byte (a
    # line that opens a quote has at least one before its newline): either way, inside that line.
    return [int(r[0]) for r in rows if r[0] is not None]


def _blank_lines(src: str, dst: str, offsets: list[int]) -> list[tuple[int, str, str]]:
    """Copy ``src`` to ``dst`` with the lines holding the bytes at ``offsets`` emptied (their line ending,
    LF or CR LF, kept, so line numbers stay). Returns each emptied line as a reject: physical line, reason,
    text.

    DuckDB's offset can fall short of the bad line: on the end of the line before it, or on a blank line
    before it (a line emptied by an earlier pass, CR LF endings). A line with no quote cannot open a quoted
    field, so such lines are copied as they are and the bad line is the first one after them with a quote.
    """
    out: list[tuple[int, str, str]] = []
    with open(src, "rb") as fh, open(dst, "wb") as w:
        pos, line = 0, 1
        pending = b""  # the bytes read of the current line, not yet written
        for off in sorted(set(offsets)):
            if off < pos:
                continue  # in a line already emptied
            while pos < off:  # copy up to the offset, counting lines
                buf = fh.read(min(_CHUNK, off - pos))
                if not buf:
                    break
                pos += len(buf)
                cut = buf.rfind(b"\n")
                if cut < 0:
                    pending += buf
                    continue
                line += buf.count(b"\n")
                w.write(pending + buf[: cut + 1])
                pending = buf[cut + 1 :]
            while True:
                rest = fh.readline()
                pos += len(rest)
                text = pending + rest
                pending = b""
                if not text or b'"' in text:
                    break
                w.write(text)  # no quote: not the bad line
                line += 1
            if not text:
                break  # the end of the file
            # The line's own ending is kept: a bare LF among CR LF endings throws DuckDB's parser off.
            w.write(text[len(text.rstrip(b"\r\n")) :])
            raw = text.rstrip(b"\r\n").decode("utf-8", errors="replace")
            out.append((line, _REJECT_REASONS["UNQUOTED VALUE"], raw))
            line += 1
        w.write(pending)
        while buf := fh.read(_CHUNK):
            w.write(buf)
    return out


def stage_lines(con: duckdb.DuckDBPyConnection, facts: FileFacts) -> Staged:
    """Read a line-oriented file (JSON Lines) as one VARCHAR column ``j``; blank lines are not rows."""
    rj = "_cf_rej"
    _drop_rejects(con, rj)
    con.execute(f"DROP TABLE IF EXISTS {RAW}")
    opts = (
        "columns = {'j': 'VARCHAR'}, header = false, delim = '\x1f', quote = '', escape = '', "
        "auto_detect = false, encoding = 'utf-8', store_rejects = true, "
        f"rejects_table = '{rj}_errors', rejects_scan = '{rj}_scans', max_line_size = 268435456"
    )
    try:
        con.execute(f"CREATE TEMP TABLE {RAW} AS SELECT * FROM read_csv(?, {opts})", [facts.path])
    except duckdb.OutOfMemoryException:
        raise  # the ingest names the memory limit to raise
    except duckdb.Error as exc:
        raise ManifestError(f"cannot read lines: {_first_line(exc)}", item=facts.path) from exc
    raw_rejects = _fetch_rejects(con, rj)
    _drop_rejects(con, rj)
    rejects = [
        (
            line,
            "not valid JSON (a field separator byte 0x1f)" if reason.startswith("too many") else reason,
            raw,
        )
        for line, reason, raw in raw_rejects
    ]
    _shift_view(con, 0, [r[0] for r in rejects], where="j IS NOT NULL AND trim(j) <> ''")
    n = con.execute(f"SELECT count(*) FROM {SRC}").fetchall()[0][0]
    return Staged(["j"], n, [RowError(line, reason, raw) for line, reason, raw in rejects], True, "jsonl")


def stage_json_document(con: duckdb.DuckDBPyConnection, facts: FileFacts) -> Staged:
    """Read a whole JSON document.

    A top-level array is streamed: its elements become the rows of ``_cf_elems`` (``ord``, the element's
    position, and ``v``, the element as compact JSON), so memory does not grow with the document, and
    ``_cf_src`` holds one row whose ``doc`` is NULL. Any other document is read whole into ``_cf_src`` as one
    row ``doc`` of type JSON. ``Staged.layout`` says which (``ARRAY``, or the document's JSON type).
    """
    con.execute(f"DROP TABLE IF EXISTS {RAW}")
    con.execute(f"DROP TABLE IF EXISTS {ELEMS}")
    head = facts.head.lstrip(b"\xef\xbb\xbf \t\r\n")
    whole = max(facts.size + 1024, _ELEMENT_BUFFER)
    try:
        if head.startswith(b"["):
            # DuckDB's reader buffers about twice ``maximum_object_size``: elements bigger than the usual
            # buffer are rare, and only they pay for a buffer the size of the file.
            for size in dict.fromkeys((_ELEMENT_BUFFER, whole)):
                try:
                    con.execute(
                        f"CREATE OR REPLACE TEMP TABLE {RAW} AS SELECT json(json) AS v "
                        f"FROM read_json_objects(?, format = 'array', maximum_object_size = {size})",
                        [facts.path],
                    )
                    break
                except duckdb.InvalidInputException as exc:
                    if "maximum_object_size" not in str(exc) or size == whole:
                        raise
        else:
            con.execute(
                f"CREATE TEMP TABLE {RAW} AS SELECT json AS doc FROM read_json_objects(?, format = 'unstructured', "
                f"maximum_object_size = {whole})",
                [facts.path],
            )
    except duckdb.OutOfMemoryException:
        raise  # the ingest names the memory limit to raise
    except duckdb.Error as exc:
        raise ManifestError(
            f"not a valid JSON document: {_first_line(exc)}",
            item=facts.path,
            fix="check the file is complete and UTF-8 encoded",
        ) from exc
    if head.startswith(b"["):
        base = con.execute(f"SELECT coalesce(min(rowid), 0) FROM {RAW}").fetchall()[0][0]
        con.execute(f"CREATE OR REPLACE TEMP VIEW {ELEMS} AS SELECT rowid - {base} AS ord, v FROM {RAW}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW {SRC} AS SELECT 0 AS ord, NULL::BIGINT AS line, NULL::JSON AS doc")
        return Staged(["doc"], 1, [], True, "json", layout="ARRAY")
    n_docs = con.execute(f"SELECT count(*) FROM {RAW}").fetchall()[0][0]
    if n_docs != 1:
        raise ManifestError(
            f"expected one JSON document, found {n_docs}",
            item=facts.path,
            fix="JSON Lines files should end in .jsonl",
        )
    con.execute(f"CREATE OR REPLACE TEMP VIEW {SRC} AS SELECT 0 AS ord, NULL::BIGINT AS line, doc FROM {RAW}")
    layout = con.execute(f"SELECT json_type(doc) FROM {RAW}").fetchall()[0][0]
    return Staged(["doc"], 1, [], True, "json", layout=layout)


def stage_parquet(con: duckdb.DuckDBPyConnection, facts: FileFacts) -> Staged:
    """Read a Parquet file with every column as VARCHAR; ``line`` is the 1-based row number."""
    con.execute(f"DROP TABLE IF EXISTS {RAW}")
    try:
        con.execute(
            f"CREATE TEMP TABLE {RAW} AS SELECT COLUMNS(*)::VARCHAR FROM read_parquet(?)", [facts.path]
        )
    except duckdb.OutOfMemoryException:
        raise  # the ingest names the memory limit to raise
    except duckdb.Error as exc:
        raise ManifestError(f"cannot read as Parquet: {_first_line(exc)}", item=facts.path) from exc
    columns = [r[0] for r in con.execute(f"SELECT column_name FROM (DESCRIBE {RAW})").fetchall()]
    n = con.execute(f"SELECT count(*) FROM {RAW}").fetchall()[0][0]
    _shift_view(con, 0, [])
    return Staged(columns, n, [], True, "parquet")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def sniff_header(facts: FileFacts) -> list[str]:
    """The first line of a CSV split into column names (quotes honoured; a BOM dropped)."""
    import csv
    import io

    head = facts.head
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    text = head.decode("utf-8", errors="replace")
    first = next(csv.reader(io.StringIO(text)), [])
    return [c.strip() for c in first]


def first_line(facts: FileFacts) -> str:
    head = facts.head
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()


def suffixes(path: str | os.PathLike) -> list[str]:
    return [s.lower() for s in Path(path).suffixes]
