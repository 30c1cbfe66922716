"""docs/config.md documents every setting and every option of the media pipeline's stages."""

from __future__ import annotations

from pathlib import Path

from clipfactory.build.reference import BEGIN, END, stage_reference
from clipfactory.config import BuildSettings, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
MINE = ["acquire.local", "media.probe", "media.analyse", "quality.filter", "media.cut"]


def test_stage_sections_match_the_config_classes():
    text = DOC.read_text()
    part = text[text.index(BEGIN) : text.index(END)]
    for name in MINE:
        section = stage_reference([name])
        assert section.strip() in part, (
            f"docs/config.md is stale for [{name}]: run python -m clipfactory.build.reference"
        )


def test_every_setting_is_documented():
    text = DOC.read_text()
    for model in (Settings, BuildSettings):
        for field in model.model_fields:
            assert f"| `{field}` |" in text, f"setting {field} is missing from docs/config.md"
