"""Bad option values give one readable line: the option, what was wrong, the value given; no links."""

from __future__ import annotations

import pytest

from clipfactory.errors import ConfigError, describe_invalid
from clipfactory.stages.quality.filter import QualityFilterStage


def test_stage_option_of_the_wrong_type_names_option_and_value():
    with pytest.raises(ConfigError) as info:
        QualityFilterStage({"min_luma": "dark"})
    text = str(info.value)
    assert text.startswith("[quality.filter]: invalid config for stage quality.filter: min_luma: ")
    assert "(got 'dark')" in text
    assert "pydantic.dev" not in text and "type=" not in text


def test_stage_option_out_of_range_says_the_bound():
    with pytest.raises(ConfigError) as info:
        QualityFilterStage({"max_black_fraction": 3})
    assert "max_black_fraction: Input should be less than or equal to 1 (got 3)" in str(info.value)


def test_a_plain_exception_is_described_by_its_text():
    assert describe_invalid(ValueError("nope")) == "nope"


def test_a_misspelt_build_or_top_level_key_is_named_with_the_known_ones(tmp_path, monkeypatch):
    from clipfactory.config import load_settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text('bogus_key = 3\n[build]\nshard_sise = 3\n')
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "c.toml")
    text = str(info.value)
    assert "build.shard_sise: unknown option (known: balance, evaluation_manifests, name, out, shard_size)" in text
    assert "bogus_key: unknown option" in text and "Extra inputs" not in text
    assert "the top-level keys are build, catalog, datasets," in text and "signals.speech" in text
    assert text.startswith(f"{tmp_path / 'c.toml'}: invalid configuration: ")
    # --set and the environment are named as where the values came from
    (tmp_path / "ok.toml").write_text("[build]\nshard_size = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "ok.toml", sets=["build.shard_sise=4"])
    assert str(info.value).startswith("--set build.shard_sise=4: ") and "did you mean shard_size?" in str(info.value)
    monkeypatch.setenv("CLIPFACTORY_BUILD__SHARD_SIZE", "abc")
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "ok.toml")
    assert str(info.value).startswith("CLIPFACTORY_BUILD__SHARD_SIZE: ") and "(got 'abc')" in str(info.value)


def test_a_misspelt_stage_option_stops_the_run_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from clipfactory.cli.app import app

    (tmp_path / "media").mkdir()
    (tmp_path / "c.toml").write_text(
        'catalog = "c.duckdb"\nstore = "store"\ninputs = ["media"]\nlicense = "CC-BY-4.0"\nrights_holder = "me"\n'
        "[media.analyse]\nmax_clip_sec = 3\n"
    )
    res = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "c.toml")])
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert f"error: {tmp_path / 'c.toml'}: invalid configuration: [media.analyse] max_clip_sec: unknown option" in text
    assert "did you mean max_clip_s?" in text
    # nothing was made: no catalog (so no failed run in it) and no store
    assert not (tmp_path / "c.duckdb").exists() and not (tmp_path / "store").exists()
