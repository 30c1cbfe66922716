"""`clipfactory add` refuses a file that is not video or audio when it is added, naming it, with nothing
written for it; a folder holding one is refused whole, as a file without a licence is."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from clipfactory.catalog import Catalog
from clipfactory.cli.app import app


def _lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.strip()]


def _count(cat, table: str) -> int:
    return Catalog(cat).scalar(f"SELECT count(*) FROM {table}") if cat.exists() else 0


def test_a_text_file_named_mp4_is_refused_at_add(tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("meeting notes, not a video\n" * 40)
    cat = tmp_path / "c.duckdb"
    res = CliRunner().invoke(app, ["add", str(notes), "--license", "CC0-1.0", "--rights-holder", "Me",
                                   "--catalog", str(cat), "--store", str(tmp_path / "s")])
    assert res.exit_code == 1
    lines = _lines(res.output)
    assert len(lines) == 1, res.output
    assert str(notes.resolve()) in lines[0]
    assert "not a readable video or audio file" in lines[0]
    assert "leave it out of the inputs" in lines[0]
    assert "--license" not in lines[0]  # its licence was given: that fix would mislead
    assert _count(cat, "sources") == 0 and _count(cat, "stage_outcomes") == 0
    assert not (tmp_path / "s").exists() or not any(p.is_file() for p in (tmp_path / "s").rglob("*"))


def test_a_folder_with_a_file_that_is_not_media_is_refused_naming_it(tmp_path, media_dir):
    folder = tmp_path / "owned"
    folder.mkdir()
    shutil.copy(media_dir / "a.mp4", folder / "a.mp4")
    (folder / "b.mov").write_bytes(b"\x00\x01 not a container " * 64)
    cat = tmp_path / "c.duckdb"
    args = ["add", str(folder), "--license", "CC0-1.0", "--rights-holder", "Me", "--catalog", str(cat),
            "--store", str(tmp_path / "s"), "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1
    lines = _lines(res.output)
    assert len(lines) == 1, res.output
    assert "1 owned file(s) cannot be used" in lines[0]
    assert f"{(folder / 'b.mov').resolve()}: not a readable video or audio file" in lines[0]
    assert "a.mp4" not in lines[0]
    assert _count(cat, "sources") == 0
    # without it, the same folder is added
    (folder / "b.mov").unlink()
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert _count(cat, "sources") == 1
