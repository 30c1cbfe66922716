"""A catalog connection lingers after its block for the next block of the same process, and gives the file
back: to another process once its time is up, before a fork, and when a CLI command returns."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from clipfactory.catalog import Catalog
from clipfactory.catalog import db as catalog_db


@pytest.fixture
def opens(monkeypatch):
    """How many times DuckDB was opened on a catalog file."""
    count = {"n": 0}
    real = catalog_db.Catalog._connect

    def counting(self, read_only):
        count["n"] += 1
        return real(self, read_only)

    monkeypatch.setattr(catalog_db.Catalog, "_connect", counting)
    catalog_db.close_idle_connections()
    yield count
    catalog_db.close_idle_connections()


def test_blocks_in_a_row_open_duckdb_once(tmp_path, opens):
    cat = Catalog(tmp_path / "c.duckdb")
    with cat.write() as con:
        con.execute("INSERT INTO meta VALUES ('k1', 'a')")
    first = opens["n"]
    assert first >= 1
    for i in range(20):
        with cat.write() as con:
            con.execute("INSERT INTO meta VALUES (?, 'b')", [f"w{i}"])
        assert Catalog(tmp_path / "c.duckdb").scalar("SELECT count(*) FROM meta WHERE key LIKE 'w%'") == i + 1
    assert opens["n"] == first  # 40 more blocks, another handle included, and no new open


def test_a_block_starts_clean(tmp_path, opens):
    """No result, registered table or transaction of an earlier block is left on the connection."""
    import duckdb
    import pyarrow as pa

    cat = Catalog(tmp_path / "c.duckdb")
    with cat.write() as con:
        con.register("_left", pa.table({"a": [1]}))
        con.execute("SELECT * FROM range(10)")  # a result never fetched
    with cat.read() as con:
        # the earlier block's unfetched result is not this block's to fetch
        with pytest.raises(duckdb.InvalidInputException, match="No open result set"):
            con.fetchall()
        # DuckDB's own "no such table" error, not any error that happens to name the table
        with pytest.raises(duckdb.CatalogException, match="_left does not exist"):
            con.execute("SELECT * FROM _left").fetchall()
    with pytest.raises(RuntimeError):
        with cat.write() as con:
            con.execute("INSERT INTO meta VALUES ('rolled', 'back')")
            raise RuntimeError("inside the block")
    assert cat.scalar("SELECT count(*) FROM meta WHERE key = 'rolled'") == 0


def test_the_connection_is_closed_when_its_time_is_up(tmp_path, opens):
    cat = Catalog(tmp_path / "c.duckdb")
    with cat.write() as con:
        con.execute("INSERT INTO meta VALUES ('k', 'v')")
    n = opens["n"]
    time.sleep(catalog_db.LINGER_S * 6)
    assert cat.scalar("SELECT value FROM meta WHERE key = 'k'") == "v"
    assert opens["n"] == n + 1


def test_another_process_writes_while_this_one_keeps_working(tmp_path, monkeypatch):
    """A writer in another process gets the file within moments although this process keeps using it."""
    monkeypatch.setattr(catalog_db, "MAX_HOLD_S", 0.5)  # as with the default of 2 s, sooner
    path = tmp_path / "c.duckdb"
    cat = Catalog(path)
    with cat.write() as con:
        con.execute("INSERT INTO meta VALUES ('mine', '0')")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom clipfactory.catalog import Catalog\n"
            "with Catalog(sys.argv[1], lock_timeout=20).write() as con:\n"
            "    con.execute(\"INSERT INTO meta VALUES ('theirs', '1')\")\n",
            str(path),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while child.poll() is None and time.monotonic() < deadline:
        with cat.write() as con:  # blocks back to back, as a run's are
            con.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS VARCHAR) WHERE key = 'mine'")
        time.sleep(0.001)
    assert child.wait(timeout=5) == 0, child.stderr.read()
    assert cat.scalar("SELECT value FROM meta WHERE key = 'theirs'") == "1"


def test_a_forked_child_opens_the_catalog_its_parent_just_used(tmp_path):
    cat = Catalog(tmp_path / "c.duckdb")
    with cat.write() as con:
        con.execute("INSERT INTO meta VALUES ('parent', 'p')")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: reads and writes at once, with no wait for the parent's lock
        code = 1
        try:
            child = Catalog(tmp_path / "c.duckdb", lock_timeout=0.01)
            with child.write() as con:
                con.execute("INSERT INTO meta VALUES ('child', 'c')")
            code = 0 if child.scalar("SELECT value FROM meta WHERE key = 'parent'") == "p" else 2
            catalog_db.close_idle_connections()
        finally:
            os.write(w, bytes([code]))
            os._exit(code)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert got == b"\x00" and os.waitstatus_to_exitcode(status) == 0
    assert cat.scalar("SELECT value FROM meta WHERE key = 'child'") == "c"


def test_a_cli_command_returns_with_the_file_closed(tmp_path, monkeypatch):
    """Called in-process, a command leaves no connection open: the file can be copied as it is."""
    from typer.testing import CliRunner

    from clipfactory.cli.app import app

    # Longer than the command takes: were the command to leave its connection lingering, neither the
    # closer thread (its time up) nor the hold limit would close it before the checks below.
    monkeypatch.setattr(catalog_db, "LINGER_S", 5.0)
    monkeypatch.setattr(catalog_db, "MAX_HOLD_S", 60.0)
    catalog_db.close_idle_connections()  # what earlier tests of this process left lingering
    path = tmp_path / "c.duckdb"
    with Catalog(path).write() as con:
        con.execute("INSERT INTO meta VALUES ('k', 'v')")
    assert list(catalog_db._IDLE) == [str(path)]  # outside a command, the connection lingers
    res = CliRunner().invoke(app, ["builds", "list", "--catalog", str(path)])
    assert res.exit_code == 0, res.output
    assert not path.with_name(path.name + ".wal").exists()
    assert str(path) not in catalog_db._IDLE
