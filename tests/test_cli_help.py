"""Every command's --help shows its own text: a bracketed item such as ``[media.analyse]`` is text the
user needs, not Rich markup to swallow."""

from __future__ import annotations

import re

import typer.main
from typer.testing import CliRunner

from clipfactory.cli.app import app


def _commands():
    root = typer.main.get_command(app)

    def walk(cmd, path):
        yield path, cmd
        if hasattr(cmd, "commands"):
            for name, sub in sorted(cmd.commands.items()):
                yield from walk(sub, [*path, name])

    return list(walk(root, []))


def test_bracketed_items_in_help_texts_are_shown():
    checked = 0
    for path, cmd in _commands():
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        wanted = {m for t in texts for m in re.findall(r"\[[a-z_]+(?:\.[a-z_]+)+\]", t.replace("\\[", "["))}
        if not wanted:
            continue
        r = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
        assert r.exit_code == 0, (path, r.output)
        out = " ".join(r.output.split())
        for item in wanted:
            assert item in out, (path, item)
            checked += 1
    assert checked >= 1  # `analyse` names the [media.analyse] section
