"""Precedence of settings (docs/config.md): flags and --set > CLIPFACTORY_* environment > the TOML > defaults,
each level overriding single keys; and every section, stage sections included, checked before any work."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clipfactory.cli.app import app
from clipfactory.config import load_settings
from clipfactory.errors import ConfigError


@pytest.fixture
def toml(tmp_path, monkeypatch):
    """A clipfactory.toml in tmp_path/project, read from another folder (tmp_path/elsewhere)."""
    project = tmp_path / "project"
    project.mkdir()
    cfg = project / "clipfactory.toml"
    cfg.write_text(
        'catalog = "c.duckdb"\n[build]\nname = "t"\nout = "builds"\n'
        "[quality.filter]\nmin_duration_s = 1.5\nmin_luma = 20.0\n"
    )
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return cfg


def test_an_environment_variable_overrides_one_key_of_the_build_table(toml, monkeypatch):
    monkeypatch.setenv("CLIPFACTORY_BUILD__SHARD_SIZE", "5")
    s = load_settings(toml)
    assert s.build.shard_size == 5
    # the rest of [build] is the file's, and its out is still relative to the file's folder
    assert s.build.name == "t"
    assert s.build.out == str(toml.parent / "builds")
    assert s.catalog == str(toml.parent / "c.duckdb")


def test_set_beats_the_environment_which_beats_the_file(toml, monkeypatch):
    monkeypatch.setenv("CLIPFACTORY_BUILD__NAME", "envname")
    assert load_settings(toml).build.name == "envname"
    assert load_settings(toml, sets=["build.name=flagname"]).build.name == "flagname"
    monkeypatch.setenv("CLIPFACTORY_WORKERS", "4")
    assert load_settings(toml).workers == 4
    assert load_settings(toml, overrides={"workers": 2}).workers == 2


def test_a_stage_option_from_the_environment_overrides_the_file_and_loses_to_set(toml, monkeypatch):
    monkeypatch.setenv("CLIPFACTORY_QUALITY__FILTER__MIN_DURATION_S", "9")
    s = load_settings(toml)
    assert s.stage_config("quality.filter") == {"min_duration_s": 9, "min_luma": 20.0}
    s = load_settings(toml, sets=["quality.filter.min_duration_s=1.0"])
    assert s.stage_config("quality.filter") == {"min_duration_s": 1.0, "min_luma": 20.0}
    # the older spelling with STAGES__ and the dotted name still works
    monkeypatch.setenv("CLIPFACTORY_STAGES__QUALITY.FILTER__MIN_LUMA", "12")
    assert load_settings(toml).stage_config("quality.filter")["min_luma"] == 12


def test_text_settings_stay_text_and_other_variables_are_left_alone(toml, monkeypatch):
    monkeypatch.setenv("CLIPFACTORY_BUILD__NAME", "2024")
    monkeypatch.setenv("CLIPFACTORY_CACHE_DIR", "/nowhere")  # clipfactory's own switch, not a setting
    monkeypatch.setenv("CLIPFACTORY_TAXONOMY", "t.toml")
    assert load_settings(toml).build.name == "2024"
    assert load_settings(toml, sets=["build.name=2025"]).build.name == "2025"
    assert load_settings(toml, sets=['build.name="quoted"']).build.name == "quoted"
    assert load_settings(toml, sets=["build.shard_size=7"]).build.shard_size == 7


def test_a_misspelt_environment_variable_is_named_with_a_close_match(toml, monkeypatch):
    monkeypatch.setenv("CLIPFACTORY_QUALITY__FILTER__MIN_DURATON_S", "3")
    with pytest.raises(ConfigError) as info:
        load_settings(toml)
    text = str(info.value)
    assert text.startswith("CLIPFACTORY_QUALITY__FILTER__MIN_DURATON_S: invalid configuration: [quality.filter]")
    assert "did you mean min_duration_s?" in text
    monkeypatch.delenv("CLIPFACTORY_QUALITY__FILTER__MIN_DURATON_S")
    monkeypatch.setenv("CLIPFACTORY_SIGNALS__SPEACH__ENABLED", "true")
    with pytest.raises(ConfigError) as info:
        load_settings(toml)
    assert str(info.value).startswith("CLIPFACTORY_SIGNALS__SPEACH__ENABLED: ")
    assert "did you mean [signals.speech]?" in str(info.value)


def test_the_cli_lets_set_beat_clipfactory_catalog(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(
        app, ["fetch", "--set", f"catalog={tmp_path / 'from-set.duckdb'}"],
        env={"CLIPFACTORY_CATALOG": str(tmp_path / "from-env.duckdb")},
    )
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    assert f"no catalog at {tmp_path / 'from-set.duckdb'}" in text, text
    res = CliRunner().invoke(app, ["fetch"], env={"CLIPFACTORY_CATALOG": str(tmp_path / "from-env.duckdb")})
    assert f"no catalog at {tmp_path / 'from-env.duckdb'}" in " ".join(res.output.split())


def _owned_media(tmp_path, section: str) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from media_synth import synth_video

    (tmp_path / "media").mkdir()
    synth_video(tmp_path / "media" / "a.mp4", 1.0, size=(64, 48))
    (tmp_path / "clipfactory.toml").write_text(
        'catalog = "c.duckdb"\nstore = "store"\ninputs = ["media"]\nlicense = "CC-BY-4.0"\nrights_holder = "me"\n'
        + section
    )


@pytest.mark.parametrize("command", [["run"], ["add", "media", "--license", "CC-BY-4.0", "--rights-holder", "me"]])
def test_a_misspelt_stage_option_stops_before_anything_is_copied(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    _owned_media(tmp_path, "[quality.filter]\nmin_duraton_s = 1.5\n")
    res = CliRunner().invoke(app, command)
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert text.startswith(
        "error: clipfactory.toml: invalid configuration: [quality.filter] min_duraton_s: unknown option (known: "
    ), text
    assert "min_sharpness" in text and "did you mean min_duration_s?" in text
    # no catalog (so no run in it) and no store: nothing was acquired
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clipfactory.toml", "media"]


@pytest.mark.parametrize(
    "section, problem",
    [
        ("[signal.speech]\nenabled = true\n", "[signal.speech]: unknown section; did you mean [signals.speech]?"),
        ('["quality.filtr"]\nmin_luma = 3\n', "[quality.filtr]: unknown section; did you mean [quality.filter]?"),
        ("[caption.vml]\nendpoint = 'x'\n", "[caption.vml]: unknown section; did you mean [caption.vlm]?"),
        ("[bulid]\nname = 'x'\n", "bulid: unknown section; did you mean build?"),
        ("catlog = 'x'\n", "catlog: unknown option; did you mean catalog?"),
    ],
)
def test_an_unknown_section_is_matched_against_the_stage_sections(tmp_path, section, problem):
    (tmp_path / "c.toml").write_text(section)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "c.toml")
    text = str(info.value)
    assert text.startswith(f"{tmp_path / 'c.toml'}: invalid configuration: {problem}"), text
    # the known sections listed include the stage sections
    assert "the stage sections are acquire.http," in text and "signals.speech" in text and "caption.vlm" in text


def test_a_set_of_an_unknown_section_is_named_as_the_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings(sets=["signal.speech.enabled=true"])
    assert str(info.value).startswith("--set signal.speech.enabled=true: invalid configuration: [signal.speech]")
