"""The taxonomy file and the zero-shot rule: other below the threshold, low confidence, errors that name the fix."""

from __future__ import annotations

import pytest

from clipfactory.errors import ConfigError
from clipfactory.semantic.categories import classify, load_taxonomy, prompt_centroids
from clipfactory.semantic.plan import parse_target

from .conftest import needs_model

pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def test_the_default_taxonomy_has_the_ten_categories():
    t = load_taxonomy()
    assert list(t["categories"]) + [t["other"]] == [
        "films", "drone-aerial", "first-person", "travel", "nature", "people-handling-objects", "driving",
        "gameplay", "tutorial", "other",
    ]
    assert 0 < t["threshold"] < 1 and t["labels"]["Video game"] == "gameplay"


def test_a_label_mapped_to_an_unknown_category_names_the_categories(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text('[categories.cats]\nprompts = ["a cat"]\n[labels]\n"kitten" = "kittens"\n')
    with pytest.raises(ConfigError) as err:
        load_taxonomy(p)
    assert "kittens" in str(err.value) and "cats, other" in str(err.value)
    with pytest.raises(ConfigError, match="no taxonomy file"):
        load_taxonomy(tmp_path / "missing.toml")


@needs_model
def test_other_languages_and_noise_are_other_with_low_confidence(encoder):
    tax = load_taxonomy()
    names, cents = prompt_centroids(tax, encoder)
    texts = ["Ein Mann schneidet Brot in der Küche", "这是一个视频", "xq zzv 1234", "a person driving a car on a highway"]
    cat, conf, _ = classify(encoder.encode(texts), names, cents, tax)
    got = [names[i] if i >= 0 else "other" for i in cat]
    assert got == ["other", "other", "other", "driving"]
    assert all(c < tax["threshold"] for c in conf[:3]) and conf[3] > 0.5


def test_targets_must_add_up_to_one():
    assert parse_target("a=0.4, b=0.6") == {"a": 0.4, "b": 0.6}
    for bad in ("a=0.5", "a=x,b=1", "a"):
        with pytest.raises(ConfigError):
            parse_target(bad)
