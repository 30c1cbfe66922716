"""Every error the command line reports is one line starting ``error:``; exit codes: 1 for clipfactory's
errors, 2 for command-line mistakes (click's usage errors, which typer would draw as an "Error" panel)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clipfactory.cli.app import app


def _run(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, args, prog_name="clipfactory")
    return res, " ".join(res.output.split())


@pytest.mark.parametrize(
    "args, line",
    [
        (["run", "--sett", "x"], "error: clipfactory run: No such option: --sett"),
        (["run", "--limit", "abc"], "error: clipfactory run: Invalid value for '--limit'"),
        (["explain"], "error: clipfactory explain: Missing argument 'source'."),
        (["runz"], "error: clipfactory: No such command 'runz'. Did you mean 'run', 'runs'?"),
        (["runs", "lst"], "error: clipfactory runs: No such command 'lst'."),
        (["--bogus"], "error: clipfactory: No such option: --bogus"),
    ],
)
def test_a_command_line_mistake_is_one_error_line_with_exit_code_2(tmp_path, monkeypatch, args, line):
    res, text = _run(args, tmp_path, monkeypatch)
    assert res.exit_code == 2, res.output
    assert text.startswith(line), text
    assert "--help` shows its usage" in text
    assert "Error" not in text and "╭" not in text


def test_a_group_without_a_command_still_shows_its_help(tmp_path, monkeypatch):
    res, text = _run(["runs"], tmp_path, monkeypatch)
    assert "Usage: clipfactory runs" in text and "error:" not in text


def test_a_speech_error_starts_like_every_other_error(tmp_path, monkeypatch):
    (tmp_path / "media").mkdir()
    (tmp_path / "clipfactory.toml").write_text(
        'inputs = ["media"]\nlicense = "CC-BY-4.0"\nrights_holder = "me"\n'
        f'[signals.speech]\nenabled = true\nmodel_dir = "{tmp_path / "no-model"}"\n'
    )
    res, text = _run(["run"], tmp_path, monkeypatch)
    assert res.exit_code == 1, res.output
    assert text.startswith(f"error: {tmp_path / 'no-model'}: not a CTranslate2 Whisper model folder"), text


def test_a_config_error_starts_with_error_and_exits_1(tmp_path, monkeypatch):
    (tmp_path / "clipfactory.toml").write_text("[signal.speech]\nenabled = true\n")
    res, text = _run(["run"], tmp_path, monkeypatch)
    assert res.exit_code == 1
    assert text.startswith("error: clipfactory.toml: invalid configuration: [signal.speech]: unknown section"), text
