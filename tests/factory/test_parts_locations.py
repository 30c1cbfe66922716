"""Parts left under an earlier ``parts`` setting are loaded before any new work, whatever the next run's
setting: loaded after newer work instead, their older rows replaced newer ones (clips lost their media and
a build shrank from two clips to one)."""

from __future__ import annotations

import sys

import pytest

synth = sys.modules["cf_synth"]  # loaded by conftest.py


def _settings(tmp_path, parts: str | None):
    from clipfactory.config import load_settings

    text = (
        'catalog = "cat.duckdb"\nstore = "store"\npurpose = "commercial"\n'
        'inputs = ["owned.mp4"]\nlicense = "CC-BY-4.0"\nrights_holder = "tests"\n'
        + (f'parts = "{parts}"\n' if parts else "")
        + '[build]\nname = "owned"\nout = "builds"\n[quality.filter]\nmin_duration_s = 0.5\n'
    )
    (tmp_path / "clipfactory.toml").write_text(text)
    return load_settings(tmp_path / "clipfactory.toml")


def test_parts_left_under_another_setting_are_loaded_first(tmp_path, monkeypatch):
    from clipfactory.catalog import Catalog
    from clipfactory.catalog.meta import catalog_id
    from clipfactory.executors.local import LocalExecutor
    from clipfactory.factory.pipeline import run_pipeline

    monkeypatch.chdir(tmp_path)
    synth.make_video(tmp_path / "owned.mp4", [("bars", 1.5), ("checker", 1.5)], size=(128, 72), keyint=25, scenecut=False, audio=None)
    elsewhere = tmp_path / "elsewhere"

    # A run with parts elsewhere dies once media.analyse's parts are written, before they are loaded.
    load = LocalExecutor._load_parts

    def dies(self, names, *store):
        if any("-media.analyse-" in n for n in names):
            raise KeyboardInterrupt("killed")
        return load(self, names, *store)

    monkeypatch.setattr(LocalExecutor, "_load_parts", dies)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(_settings(tmp_path, str(elsewhere)))
    monkeypatch.setattr(LocalExecutor, "_load_parts", load)
    cat = Catalog(tmp_path / "cat.duckdb")
    folder = elsewhere / catalog_id(cat)
    left = sorted(p for p in folder.rglob("*.parquet"))
    assert any("-media.analyse-" in p.name for p in left)
    assert cat.scalar("SELECT count(*) FROM stage_outcomes WHERE stage = 'media.analyse'") == 0

    # The next run forgets the setting: it loads those parts first, and does not analyse again.
    second = run_pipeline(_settings(tmp_path, None))
    assert second["status"] == "finished"
    assert second["recovered_parts"] == len(left)
    assert not list(folder.rglob("*.parquet"))
    assert second["resumed"]["media.analyse"] == 1
    assert second["clips_exported"] == 2

    # And a run with the first setting again finds nothing stale: the build and its clips are unchanged.
    third = run_pipeline(_settings(tmp_path, str(elsewhere)))
    assert third["recovered_parts"] == 0
    assert third["build"]["status"] == "unchanged" and third["build"]["n_clips"] == 2
    assert cat.scalar("SELECT count(*) FROM clips WHERE blob_uri IS NULL") == 0
    assert cat.scalar("SELECT count(*) FROM builds") == 1
