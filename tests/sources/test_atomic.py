"""One manifest is one transaction: a failure, Ctrl-C or a killed process leaves the catalog as it was."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

import clipfactory.sources.ingest as ingest_mod
from clipfactory.catalog import Catalog
from clipfactory.sources import ingest_manifest

TABLES = ["sources", "memberships", "clip_spans", "manifests", "datasets", "ingest_errors"]


def snapshot(catalog: Catalog) -> dict[str, list]:
    out = {}
    with catalog.read() as con:
        for t in TABLES:
            rows = con.execute(f"SELECT * FROM {t}").fetchall()
            out[t] = sorted(map(repr, rows))
    return out


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_after_every_insert_rolls_back(catalog, manifests, monkeypatch, exc):
    ingest_manifest(catalog, manifests / "kinetics400_sample.csv")
    before = snapshot(catalog)
    real = ingest_mod._write
    seen = {}

    def failing(con, **kw):
        real(con, **kw)
        # Everything is inserted at this point, inside the transaction.
        seen["spans"] = con.execute("SELECT count(*) FROM clip_spans").fetchall()[0][0]
        raise exc

    monkeypatch.setattr(ingest_mod, "_write", failing)
    with pytest.raises(type(exc)):
        ingest_manifest(catalog, manifests / "kinetics400_multiline.csv")
    assert seen["spans"] > len(before["clip_spans"])
    assert snapshot(catalog) == before
    monkeypatch.setattr(ingest_mod, "_write", real)
    s = ingest_manifest(catalog, manifests / "kinetics400_multiline.csv")
    assert not s.already_ingested and s.new_memberships == 2


def test_killed_process_leaves_catalog_unchanged(catalog, manifests, tmp_path):
    ingest_manifest(catalog, manifests / "kinetics400_sample.csv")
    before = snapshot(catalog)
    script = textwrap.dedent(
        """
        import os, signal, sys
        import clipfactory.sources.ingest as ing
        from clipfactory.catalog import Catalog

        real = ing._write

        def killed(con, **kw):
            real(con, **kw)
            os.kill(os.getpid(), signal.SIGKILL)

        ing._write = killed
        ing.ingest_manifest(Catalog(sys.argv[1]), sys.argv[2])
        """
    )
    p = subprocess.run(
        [sys.executable, "-c", script, str(catalog.path), str(manifests / "panda70m_sample.csv")],
        capture_output=True,
        timeout=120,
    )
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()
    assert snapshot(catalog) == before
    s = ingest_manifest(catalog, manifests / "panda70m_sample.csv")
    assert s.rows_ok == 3
