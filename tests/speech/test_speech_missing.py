"""Without the [speech] extra, a run that asks for signals.speech stops before any work, with one line that
names the pip install."""

from __future__ import annotations

import sys

from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app


def test_a_missing_extra_is_one_line_naming_the_install(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # as if faster-whisper were not installed
    (tmp_path / "a.mp4").write_bytes(b"not reached")
    (tmp_path / "clipfactory.toml").write_text(
        'catalog = "cat.duckdb"\nstore = "store"\ninputs = ["a.mp4"]\nlicense = "CC-BY-4.0"\n'
        'rights_holder = "Me"\n\n[signals.speech]\nenabled = true\n'
    )
    r = CliRunner().invoke(app, ["run", "--config", "clipfactory.toml"])
    assert r.exit_code != 0
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    assert "pip install 'clipfactory[speech]'" in lines[0] and "faster_whisper" in lines[0], lines
    # nothing ran: no source was added
    cat = tmp_path / "cat.duckdb"
    assert not cat.exists() or Catalog(cat).scalar("SELECT count(*) FROM sources") == 0
