"""A worker of the Ray executor never opens the live catalog: the context it builds names the live file in
its environment, and the catalog then refuses to open that file (any other catalog, such as the
worker's snapshot, still opens)."""

from __future__ import annotations

import shutil
import sys

import pytest

from clipfactory.catalog import Catalog
from clipfactory.catalog.db import WORKER_ENV, close_idle_connections
from clipfactory.errors import CatalogError
from clipfactory.stage import StageContext

lazy = sys.modules["cf_lazy"]  # loaded by tests/conftest.py
lazy.module("ray", reason="the Ray executor needs the 'ray' extra: pip install 'clipfactory[ray]'")


def test_a_worker_context_guards_the_live_catalog(tmp_path, monkeypatch):
    from clipfactory.executors.ray import _worker_context

    live = Catalog(tmp_path / "live.duckdb")
    with live.write() as con:
        con.execute("INSERT INTO meta VALUES ('probe', 'x')")
    close_idle_connections()  # the write's connection lingers; a copy of the file is taken closed
    shutil.copyfile(live.path, tmp_path / "snapshot.duckdb")
    monkeypatch.setenv(WORKER_ENV, "")  # what the worker sets is undone after the test
    ctx = StageContext(catalog_path=str(live.path))
    out = _worker_context(ctx, None, None, guard=live.where)
    assert out.catalog_path == str(live.path)
    with pytest.raises(CatalogError, match="may not open the catalog"):
        live.query("SELECT 1")
    with pytest.raises(CatalogError, match="may not open the catalog"):
        with Catalog(str(live.path)).write():
            pass
    assert Catalog(tmp_path / "snapshot.duckdb").scalar("SELECT value FROM meta WHERE key = 'probe'") == "x"
