"""docs/config.md documents every setting and every option of the media pipeline's stages."""

from __future__ import annotations

from pathlib import Path

from clipfactory import registry
from clipfactory.config import BuildSettings, Settings
from clipfactory.factory.reference import BEGIN, END, stage_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
MINE = ["acquire.local", "media.probe", "media.analyse", "quality.filter", "media.cut"]


def test_stage_sections_list_every_option():
    text = DOC.read_text()
    part = text[text.index(BEGIN) : text.index(END)]
    stages = registry.load_all()
    for name in MINE:
        head = f"### `[{name}]`"
        assert head in part, (
            f"docs/config.md has no section {head}: run python -m clipfactory.factory.reference"
        )
        section = part[part.index(head) :].split("\n### ", 1)[0]
        for field in stages[name].Config.model_fields:
            assert f"| `{field}` |" in section, f"[{name}] {field} is missing from docs/config.md"
    # The generated text itself is what the generator makes for a stage whose options are all ours.
    assert stage_reference(["quality.filter"]).strip() in part


def test_every_setting_is_documented():
    text = DOC.read_text()
    for model in (Settings, BuildSettings):
        for field in model.model_fields:
            assert f"| `{field}` |" in text, f"setting {field} is missing from docs/config.md"
