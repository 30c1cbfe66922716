"""Ctrl-C: one line and exit status 130, never a traceback, and the catalog usable afterwards; also when the
interrupt lands inside a DuckDB query (DuckDB turns it into its own error, not ``KeyboardInterrupt``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest
from typer.testing import CliRunner

from clipfactory.catalog import db
from clipfactory.cli.app import app


def _small_catalog(tmp_path):
    (tmp_path / "kinetics-400_val.csv").write_text("label,youtube_id,time_start,time_end,split,is_cc\n"
                                                   "knitting,knits000001,0,10,val,0\n")
    cat = tmp_path / "c.duckdb"
    res = CliRunner().invoke(app, ["ingest", str(tmp_path / "kinetics-400_val.csv"), "--catalog", str(cat)])
    assert res.exit_code == 0, res.output
    return cat


@pytest.mark.parametrize(
    "raised",
    [KeyboardInterrupt(), duckdb.InterruptException("INTERRUPT Error: Interrupted!"), RuntimeError("Query interrupted")],
    ids=["keyboard", "duckdb-interrupt", "query-interrupted"],
)
def test_an_interrupt_is_one_line_and_status_130(tmp_path, monkeypatch, raised):
    cat = _small_catalog(tmp_path)

    def stop(*a, **k):
        raise raised

    monkeypatch.setattr(db.Catalog, "query", stop)
    res = CliRunner().invoke(app, ["builds", "list", "--catalog", str(cat)])
    assert res.exit_code == 130, (res.output, res.exception)
    assert "interrupted: run the command again to resume" in res.output
    assert "Traceback" not in res.output


def test_other_runtime_errors_are_not_taken_for_an_interrupt(tmp_path, monkeypatch):
    cat = _small_catalog(tmp_path)

    def broken(*a, **k):
        raise RuntimeError("something else went wrong")

    monkeypatch.setattr(db.Catalog, "query", broken)
    res = CliRunner().invoke(app, ["builds", "list", "--catalog", str(cat)])
    assert res.exit_code == 1 and isinstance(res.exception, RuntimeError)
    assert "interrupted" not in res.output


def test_a_real_sigint_during_ingest(tmp_path):
    # 1.5 M manifest rows: about 4 s of ingest on 2 cores, so the signal lands mid-way (DuckDB capped at
    # 400 MB: the process stays near 0.6 GB)
    with open(tmp_path / "big.csv", "w") as f:
        f.write("youtube_id,label,time_start,time_end,split\n")
        f.writelines(f"v{n:010d},label {n % 400},{n % 50},{n % 50 + 10},val\n" for n in range(1_500_000))
    cat = tmp_path / "c.duckdb"
    cmd = [sys.executable, "-c", "from clipfactory.cli.app import main; main()", "ingest", str(tmp_path / "big.csv"),
           "--dataset", "big", "--map", "id=youtube_id,label=label,start=time_start,end=time_end",
           "--memory-limit", "400MB", "--catalog", str(cat)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    deadline = time.monotonic() + 30
    while not cat.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.8)
    if proc.poll() is not None:
        pytest.fail(f"the ingest finished before the interrupt (rc {proc.returncode}); make the manifest larger")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "interrupted: run the command again to resume" in err and "Traceback" not in err + out
    # the manifest's transaction is all or nothing: none of its rows, or (interrupted after the commit) all
    con = duckdb.connect(str(cat), read_only=True)
    n_sources, n_spans = con.execute("SELECT (SELECT count(*) FROM sources), (SELECT count(*) FROM clip_spans)").fetchone()
    con.close()
    assert (n_sources, n_spans) in ((0, 0), (1_500_000, 1_500_000))
    # and the catalog takes the next ingest
    small = tmp_path / "small"
    small.mkdir()
    (small / "kinetics-400_val.csv").write_text("label,youtube_id,time_start,time_end,split,is_cc\n"
                                                "knitting,knits000001,0,10,val,0\n")
    res = CliRunner().invoke(app, ["ingest", str(small / "kinetics-400_val.csv"), "--catalog", str(cat)])
    assert res.exit_code == 0, res.output
