"""The catalog: one DuckDB file.

DuckDB allows one read-write process at a time, and a read-only process cannot open the file while a
writer has it. We therefore never keep the file open for long: every access takes a cross-process
advisory lock on ``<catalog>.lock`` (exclusive for writers, shared for readers), opens DuckDB, does its
work in a transaction and closes. Writers are short (loading Parquet parts, one ingest), so readers such as
the web UI or reports wait at most a moment. A crash inside a write leaves DuckDB to roll the transaction
back, so the catalog stays exactly as it was.

Opening DuckDB costs about 20 ms of CPU, and a run does hundreds of short reads and writes, so a
connection lingers for :data:`LINGER_S` after its block ends, lock included, and the next block of this
process within that time uses it (a write needs a read-write one). A lingering connection is closed when
its time is up, when it has been held for :data:`MAX_HOLD_S` (so other processes get their turn), before
the process forks, and at exit; another process waits for it as it waits for a writer.

Only writers create the catalog. A catalog in a read-only file or folder can still be read: readers open
DuckDB read-only, take the shared lock through a read-only descriptor (or none, where the folder holds no
lock file and we may not create one) and do not migrate its schema. Writers to it fail with one error that
names the file and the fix.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import CatalogBusyError, CatalogError
from ..records import ClipRecord, Record, SourceRecord

RECORD_TYPES: list[type[Record]] = [SourceRecord, ClipRecord]

_ARROW_TO_DUCK = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.list_(pa.string()): "VARCHAR[]",
}


def record_ddl(cls: type[Record]) -> str:
    """DDL of a record table. Ids are kept unique by :func:`replace_records`, not by a primary key: an ART
    index on a table of millions of sources costs about a quarter of manifest ingest, and every writer of
    record tables goes through the one replace function (or, for ingest, an anti-join)."""
    cols = []
    for f in cls.arrow_schema():
        typ = _ARROW_TO_DUCK[f.type]
        cols.append(f"    {f.name} {typ}")
    return f"CREATE TABLE IF NOT EXISTS {cls.table} (\n" + ",\n".join(cols) + "\n);"


def _schema_sql() -> list[tuple[str, str]]:
    files = sorted(
        (
            p
            for p in resources.files("clipfactory.catalog").joinpath("schema").iterdir()
            if p.name.endswith(".sql")
        ),
        key=lambda p: p.name,
    )
    out = [(p.name, p.read_text()) for p in files]
    out.insert(1 if out else 0, ("records", "\n".join(record_ddl(c) for c in RECORD_TYPES)))
    return out


def _schema_hash() -> str:
    h = hashlib.sha256()
    for name, sql in _schema_sql():
        h.update(name.encode())
        h.update(sql.encode())
    return h.hexdigest()[:16]


def _migrate_record_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Add columns that newer record classes declare (additive schema evolution)."""
    for cls in RECORD_TYPES:
        have = {r[0] for r in con.execute(f"SELECT column_name FROM (DESCRIBE {cls.table})").fetchall()}
        for f in cls.arrow_schema():
            if f.name not in have:
                con.execute(f"ALTER TABLE {cls.table} ADD COLUMN {f.name} {_ARROW_TO_DUCK[f.type]}")


#: Executors set this in the environment of their workers to the catalog file's absolute path: a worker never
#: opens the catalog that its run's one writer holds (DuckDB allows one writer, and a worker on another
#: machine cannot see the file); it reads the snapshot its executor gave it.
WORKER_ENV = "CLIPFACTORY_WORKER_OF_CATALOG"


class NotACatalogError(CatalogError):
    """The catalog path holds something other than a clipfactory catalog: not DuckDB, or another
    program's DuckDB database, or a folder."""


#: Catalog files (device, inode) whose schema this process has seen current: a read then needs one
#: connection, not two. A file replaced by another gets a new inode and is checked again.
_SCHEMA_CURRENT: set[tuple[int, int]] = set()


def _file_key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


#: The open connection of each catalog file, per thread, shared by every :class:`Catalog` of that file: a
#: read or write nested inside another one (by any handle) uses the connection already open.
_OPEN: dict[str, threading.local] = {}
_OPEN_LOCK = threading.Lock()


def _thread_state(path: Path) -> threading.local:
    key = os.path.abspath(path)
    with _OPEN_LOCK:
        state = _OPEN.get(key)
        if state is None:
            state = _OPEN[key] = threading.local()
        return state


#: How long a connection stays open after its block ends, for the next block of this process.
LINGER_S = 0.05
#: A connection is not reused once it has been open this long, and the process then leaves the lock free
#: for :data:`YIELD_S`: a process waiting for it (polling every :data:`POLL_S` at most) gets its turn.
MAX_HOLD_S = 2.0
YIELD_S = 0.06
POLL_S = 0.05


class _Held:
    """An open connection and the lock it was opened under."""

    __slots__ = ("con", "read_only", "fd", "key", "since", "until")

    def __init__(self, con: duckdb.DuckDBPyConnection, read_only: bool, fd: int | None, key):
        self.con, self.read_only, self.fd, self.key = con, read_only, fd, key
        self.since = time.monotonic()
        self.until = 0.0

    def close(self) -> None:
        try:
            with contextlib.suppress(duckdb.Error):
                self.con.close()
        finally:
            _unlock(self.fd)


def _unlock(fd: int | None) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        os.close(fd)


#: The lingering connection of each catalog file (absolute path), not in use by any block.
_IDLE: dict[str, _Held] = {}
_IDLE_CV = threading.Condition()
_CLOSER: list[threading.Thread] = []
#: Set at exit: the closer thread ends (a daemon thread inside DuckDB's C++ code while the interpreter
#: finalises would abort the process) and connections are closed in the exiting thread.
_STOPPING = threading.Event()
#: Until when this process leaves a catalog's lock free after holding it for MAX_HOLD_S (monotonic time).
_YIELD_UNTIL: dict[str, float] = {}


def _adopt(key: str, path: Path, write: bool) -> _Held | None:
    """The lingering connection of ``key`` if it fits a block that reads (or writes, with ``write``)."""
    with _IDLE_CV:
        held = _IDLE.pop(key, None)
        _IDLE_CV.notify()
    if held is None:
        return None
    if (write and held.read_only) or time.monotonic() - held.since > MAX_HOLD_S or _file_key(path) != held.key:
        held.close()
        return None
    return held


def _linger(key: str, held: _Held) -> None:
    """Keep ``held`` open for the next block of this process, or close it when it has been held long enough."""
    now = time.monotonic()
    if now - held.since > MAX_HOLD_S:
        held.close()
        _YIELD_UNTIL[key] = time.monotonic() + YIELD_S
        return
    if _STOPPING.is_set():  # the interpreter is exiting: no thread is left to close it later
        held.close()
        return
    held.until = now + LINGER_S
    with _IDLE_CV:
        old = _IDLE.pop(key, None)
        _IDLE[key] = held
        if not _CLOSER or not _CLOSER[0].is_alive():
            _CLOSER[:] = [threading.Thread(target=_close_when_due, name="clipfactory-catalog-closer", daemon=True)]
            _CLOSER[0].start()
        _IDLE_CV.notify()
    if old is not None:
        old.close()


def _close_when_due() -> None:
    while not _STOPPING.is_set():
        with _IDLE_CV:
            while not _IDLE and not _STOPPING.is_set():
                _IDLE_CV.wait()
            if _STOPPING.is_set():
                return
            now = time.monotonic()
            due = [k for k, h in _IDLE.items() if h.until <= now]
            done = [_IDLE.pop(k) for k in due]
            if not done:  # until the first is due, or a connection is put back or taken
                _IDLE_CV.wait(max(min(h.until for h in _IDLE.values()) - now, 0.005))
        for h in done:
            h.close()


def close_idle_connections() -> None:
    """Close the connections left open for reuse (before a fork, at exit, or to hand the file over now)."""
    with _IDLE_CV:
        done = list(_IDLE.values())
        _IDLE.clear()
    for h in done:
        h.close()


def _close_at_exit() -> None:
    _STOPPING.set()
    with _IDLE_CV:
        _IDLE_CV.notify_all()
    closer = _CLOSER[0] if _CLOSER else None
    if closer is not None and closer.is_alive() and closer is not threading.current_thread():
        closer.join(timeout=10)
    close_idle_connections()


def _forget_in_child() -> None:
    """A forked child owns neither the connections nor the locks of its parent: it drops them unclosed,
    closing only its own copies of the lock descriptors (the parent's lock stays held)."""
    global _IDLE_CV
    for h in _IDLE.values():
        if h.fd is not None:
            with contextlib.suppress(OSError):
                os.close(h.fd)
    _IDLE.clear()
    _IDLE_CV = threading.Condition()
    _CLOSER.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=close_idle_connections, after_in_child=_forget_in_child)
atexit.register(_close_at_exit)


class Catalog:
    """Handle on a catalog file. Cheap to create; opens DuckDB only inside :meth:`read`/:meth:`write`.

    Handles of one file share the thread's open connection, so ``with catalog.read():`` around several
    reads (by any code, with any handle) costs one connection.

    :meth:`write` creates a missing catalog; :meth:`read` does too unless ``create`` is false, when it
    raises an error that says where it looked (``origin`` says how the path was chosen, e.g. ``from
    --catalog``). A read never writes to a catalog it may not write: a read-only file or folder is read as
    it is (no schema migration, no lock file created).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        lock_timeout: float = 120.0,
        create: bool = True,
        origin: str | None = None,
    ):
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.create = create
        self.origin = origin
        self._local = _thread_state(self.path)

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r})"

    @property
    def where(self) -> str:
        """The catalog's absolute path, as messages name it."""
        return os.path.abspath(self.path)

    @property
    def writable(self) -> bool:
        """Whether the catalog file exists and this process may write it (the file and its folder)."""
        return self.path.is_file() and self._write_problem() is None

    # -- errors ----------------------------------------------------------------------------------
    def missing_error(self) -> CatalogError:
        """The error of a read of a catalog that does not exist: where we looked and how to point elsewhere."""
        origin = f" ({self.origin})" if self.origin else ""
        return CatalogError(
            f"no catalog at {self.where}{origin}",
            fix="give the catalog file with --catalog PATH, CLIPFACTORY_CATALOG=PATH or `catalog = \"PATH\"` in "
            "clipfactory.toml; `clipfactory ingest` or `clipfactory add` creates a new one",
        )

    def _not_a_catalog(self, reason: str) -> CatalogError:
        return NotACatalogError(
            f"{self.where} is not a clipfactory catalog (DuckDB) file: {reason}",
            fix="point --catalog at a catalog file, or at a new path to create one there",
        )

    def _read_only_error(self, problem: str) -> CatalogError:
        return CatalogError(
            f"the catalog {self.where} is read-only: {problem}",
            fix="make the catalog file and its folder writable (chmod u+w), or copy the catalog into a "
            "writable folder and give the copy with --catalog; listings, explain and lookup work on a "
            "read-only catalog",
        )

    def _write_problem(self) -> str | None:
        """Why this process cannot write the catalog (create it, its lock file and its write-ahead log),
        or ``None``."""
        path = Path(self.where)
        if path.exists() and not os.access(path, os.W_OK):
            return "the file is not writable"
        folder = path.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            return f"its folder {folder} is not writable"
        lock_path = self._lock_path()
        if lock_path.exists() and not os.access(lock_path, os.W_OK):
            return f"its lock file {lock_path} is not writable"
        return None

    def _refuse_in_worker(self) -> None:
        guarded = os.environ.get(WORKER_ENV)
        if guarded and os.path.abspath(guarded) == self.where:
            raise CatalogError(
                f"a worker may not open the catalog {self.where}: the run's writer holds it",
                item=self.where,
                fix="read the catalog snapshot in the stage context (context.catalog_path), which the executor "
                "gives every worker",
            )

    def require(self) -> None:
        """Raise unless the path is an existing file that may be a catalog."""
        if not self.path.exists():
            raise self.missing_error()
        if self.path.is_dir():
            raise self._not_a_catalog("it is a folder")
        if self.path.stat().st_size == 0:
            raise self._not_a_catalog("the file is empty")

    def _is_new(self) -> bool:
        """Whether there is no catalog yet at the path (no file, or an empty one a write may initialise)."""
        try:
            return not self.path.exists() or (self.path.is_file() and self.path.stat().st_size == 0)
        except OSError:
            return False

    # -- locking ---------------------------------------------------------------------------------
    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _open_lock(self, exclusive: bool) -> int | None:
        """The lock file's descriptor. A reader that may not create or write the lock file opens it
        read-only, or goes without one when there is none (no writer can use a folder we may not write
        in either)."""
        lock_path = self._lock_path()
        if exclusive:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise self._read_only_error(f"cannot create {exc.filename or lock_path}") from None
                raise
        try:
            return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
        try:
            return os.open(lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return None

    def _acquire_lock(self, exclusive: bool) -> int | None:
        """Take the advisory lock, waiting up to ``lock_timeout``; returns its descriptor (``None`` where a
        reader goes without one), which :func:`_unlock` gives back."""
        fd = self._open_lock(exclusive)
        if fd is None:
            return None
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        try:
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise CatalogBusyError(
                            f"another process has held the catalog for over {self.lock_timeout:.0f}s",
                            item=str(self.path),
                            fix="wait for the other clipfactory process to finish, or raise the lock timeout",
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, POLL_S)
        except BaseException:
            os.close(fd)
            raise

    @contextlib.contextmanager
    def _lock(self, exclusive: bool) -> Iterator[None]:
        """Hold the advisory lock. A lock file this call created beside a file that turns out not to be a
        catalog is removed again: clipfactory leaves nothing beside files that are not its own."""
        lock_path = self._lock_path()
        new_lock = not lock_path.exists()
        fd = self._acquire_lock(exclusive)
        try:
            yield
        except NotACatalogError:
            if new_lock and fd is not None:
                with contextlib.suppress(OSError):
                    lock_path.unlink()
            raise
        finally:
            _unlock(fd)

    def _open_held(self, read_only: bool) -> _Held:
        """A new connection under a new lock (a writer's brings the schema up to date)."""
        pause = _YIELD_UNTIL.pop(self.where, 0.0) - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        lock_path = self._lock_path()
        new_lock = not lock_path.exists()
        fd = self._acquire_lock(exclusive=not read_only)
        try:
            con = self._connect(read_only=read_only)
            if not read_only:
                try:
                    self._ensure_schema(con)
                except BaseException:
                    con.close()
                    raise
        except NotACatalogError:
            _unlock(fd)
            if new_lock and fd is not None:
                with contextlib.suppress(OSError):
                    lock_path.unlink()
            raise
        except BaseException:
            _unlock(fd)
            raise
        return _Held(con, read_only, fd, _file_key(self.path))

    # -- connections -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An exclusive connection inside one transaction: committed on success, rolled back on error.
        Creates the catalog on first use."""
        held = getattr(self._local, "con", None)
        if held is not None:
            if getattr(self._local, "read_only", False):
                raise CatalogError("cannot write inside a read-only catalog block", item=str(self.path))
            yield held
            return
        self._refuse_in_worker()
        if self.path.is_dir():
            raise self._not_a_catalog("it is a folder")
        problem = self._write_problem()
        if problem is not None:
            raise self._read_only_error(problem)
        key = self.where
        h = _adopt(key, self.path, write=True) or self._open_held(read_only=False)
        clean = False
        try:
            # each block has a connection of its own to the open database (no result, registered table or
            # transaction of an earlier block is left on it)
            con = h.con.cursor()
            self._local.con, self._local.read_only = con, False
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    clean = True
                    raise
                con.execute("COMMIT")
                clean = True
            finally:
                self._local.con = None
                con.close()
        finally:
            if clean:
                _linger(key, h)
            else:
                h.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A shared read-only connection to an existing catalog (a missing one raises, naming the path).

        A catalog of an older schema is brought up to date first when this process may write it, and
        read as it is when not."""
        held = getattr(self._local, "con", None)
        if held is not None:
            yield held
            return
        self._refuse_in_worker()
        key = self.where
        h = _adopt(key, self.path, write=False)
        if h is None:
            if self.create and self._is_new():
                with self.write():
                    pass
            self.require()
            if self._needs_schema() and self._write_problem() is None:
                with self.write():
                    pass
            h = _adopt(key, self.path, write=False) or self._open_held(read_only=True)
        clean = False
        try:
            con = h.con.cursor()
            self._local.con, self._local.read_only = con, True
            try:
                yield con
            finally:
                self._local.con = None
                con.close()
            clean = True
        finally:
            if clean:
                _linger(key, h)
            else:
                h.close()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            text = str(exc)
            if "not a valid DuckDB database file" in text:
                raise self._not_a_catalog("DuckDB does not recognise its contents as a database") from None
            if "Permission denied" in text:
                if not read_only:
                    raise self._read_only_error("the file is not writable") from None
                raise CatalogError(
                    f"cannot read the catalog {self.where}: permission denied",
                    fix="make the catalog file readable to this user (chmod u+r), or give another with --catalog",
                ) from None
            if isinstance(exc, duckdb.IOException):
                raise CatalogError(f"cannot open catalog: {text}", item=str(self.path)) from exc
            raise self._not_a_catalog(text.removeprefix("IO Error: ")) from exc

    def _needs_schema(self) -> bool:
        """Whether the catalog's schema is older than this version's (a DuckDB database of something
        other than clipfactory raises)."""
        key = _file_key(self.path)
        if key is not None and key in _SCHEMA_CURRENT:
            return False
        with self._lock(exclusive=False):  # a writer in another process holds DuckDB's own lock
            con = self._connect(read_only=True)
            try:
                try:
                    row = con.execute("SELECT value FROM meta WHERE key = 'schema_hash'").fetchone()
                except duckdb.CatalogException:
                    self._refuse_foreign(con)
                    return True
                current = row is not None and row[0] == _schema_hash()
            finally:
                con.close()
        if current and key is not None:
            _SCHEMA_CURRENT.add(key)
        return not current

    def _refuse_foreign(self, con: duckdb.DuckDBPyConnection) -> None:
        """Raise if a database without clipfactory's ``meta`` table holds tables: it belongs to something
        else, and clipfactory neither reads it as a catalog nor adds its tables to it."""
        n = con.execute("SELECT count(*) FROM duckdb_tables() WHERE NOT temporary").fetchone()[0]
        if n:
            tables = f"{n} table{'s' if n != 1 else ''}"
            raise self._not_a_catalog(f"a DuckDB database of something else ({tables}, none of clipfactory's)")

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        key = _file_key(self.path)
        want = _schema_hash()
        try:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_hash'").fetchone()
            if row is not None and row[0] == want:
                if key is not None:
                    _SCHEMA_CURRENT.add(key)
                return
        except duckdb.CatalogException:
            self._refuse_foreign(con)
        con.execute("BEGIN TRANSACTION")
        try:
            for _name, sql in _schema_sql():
                con.execute(sql)
            _migrate_record_columns(con)
            con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_hash', ?)", [want])
            con.execute("COMMIT")
            if key is not None:
                _SCHEMA_CURRENT.add(key)
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # -- helpers ---------------------------------------------------------------------------------
    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run a read query and return rows as dicts."""
        with self.read() as con:
            return dict_rows(con.execute(sql, params or []))

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        with self.read() as con:
            row = con.execute(sql, params or []).fetchone()
            return row[0] if row else None


def upsert_records(con: duckdb.DuckDBPyConnection, records: list[Record]) -> int:
    """Insert or replace records in their tables, grouped by type."""
    by_type: dict[type[Record], list[Record]] = {}
    for r in records:
        by_type.setdefault(type(r), []).append(r)
    n = 0
    for cls, recs in by_type.items():
        con.register("_cf_upsert", cls.to_table(recs))
        try:
            replace_records(con, cls, "SELECT * FROM _cf_upsert")
        finally:
            con.unregister("_cf_upsert")
        n += len(recs)
    return n


def replace_records(
    con: duckdb.DuckDBPyConnection,
    cls: type[Record],
    select_sql: str,
    params=None,
    *,
    order_by: tuple[str, ...] = (),
) -> None:
    """Insert the rows of ``select_sql`` into ``cls``'s table, replacing rows with the same id (the last
    row wins within ``select_sql``: by ``order_by``, columns of ``select_sql`` that are not stored, or in
    the order rows come). Call inside a write transaction."""
    idf = cls.id_field
    order = f"ORDER BY {', '.join(order_by)}" if order_by else ""
    drop = ", ".join(["_cf_n", *order_by])
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _cf_replace AS
            SELECT * EXCLUDE ({drop}) FROM (
                SELECT *, row_number() OVER ({order}) AS _cf_n FROM ({select_sql})
            ) QUALIFY _cf_n = max(_cf_n) OVER (PARTITION BY {idf})""",
        params or [],
    )
    con.execute(f"DELETE FROM {cls.table} WHERE {idf} IN (SELECT {idf} FROM _cf_replace)")
    con.execute(f"INSERT INTO {cls.table} BY NAME SELECT * FROM _cf_replace")
    con.execute("DROP TABLE _cf_replace")


def load_records(con: duckdb.DuckDBPyConnection, cls: type[Record], ids: list[str]) -> list[Record]:
    if not ids:
        return []
    con.register("_cf_ids", pa.table({"id": pa.array(ids, pa.string())}))
    try:
        cur = con.execute(f"SELECT t.* FROM {cls.table} t JOIN _cf_ids i ON t.{cls.id_field} = i.id")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        con.unregister("_cf_ids")
    return [cls.from_row(dict(zip(names, row, strict=True))) for row in rows]


def table_columns(con) -> dict[str, set[str]]:
    """The catalog's tables and their columns (``main`` schema), for readers that accept older catalogs."""
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
    ).fetchall()
    out: dict[str, set[str]] = {}
    for t, c in rows:
        out.setdefault(t, set()).add(c)
    return out


def dict_rows(cur) -> list[dict[str, Any]]:
    """The rows of an executed DuckDB query, each as a dict by column name."""
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def has_table(con, name: str) -> bool:
    """Whether the catalog (``main`` schema) has the table ``name``: an older catalog may lack it."""
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'",
        [name],
    ).fetchall()
    return rows[0][0] > 0
