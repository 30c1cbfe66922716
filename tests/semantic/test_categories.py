"""The taxonomy file and the zero-shot rule: other below the threshold, low confidence, errors that name the fix."""

from __future__ import annotations

import numpy as np
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


def test_each_prompt_of_an_anchor_of_other_counts_on_its_own(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text('[categories.gameplay]\nprompts = ["video game gameplay", "a gamer with a controller"]\n'
                 '[others.mixed]\nprompts = ["a musician on stage", "a cat asleep", "a bowl of soup"]\n'
                 '[others.one]\nprompts = ["a tennis match"]\n')
    from clipfactory.semantic.categories import centroid_names, prompts_key

    t = load_taxonomy(p)
    # two categories' worth of rows: gameplay, then one per anchor prompt (3 + 1)
    assert centroid_names(t) == ["gameplay", "other", "other", "other", "other"]

    class Fixed:  # one axis per distinct prompt: the centroids can be written by hand
        axes = ["video game gameplay", "a gamer with a controller", "a musician on stage", "a cat asleep",
                "a bowl of soup", "a tennis match"]

        def encode(self, texts):
            return np.eye(len(self.axes), dtype=np.float32)[[self.axes.index(x) for x in texts]]

    names, cents = prompt_centroids(t, Fixed())
    assert names == centroid_names(t)
    h = 1 / np.sqrt(2)
    np.testing.assert_allclose(cents, [[h, h, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0],
                                       [0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]], atol=1e-6)
    # an item halfway between the gameplay prompts and the musician: the mean of the mixed anchor
    # (similarity 0.5 / sqrt(3)) would lose to gameplay (0.5); its musician prompt (0.5 + a little) wins
    v = np.array([[0.35, 0.35, 0.51, 0, 0, 0]], np.float32)
    cat, _, scores = classify(v / np.linalg.norm(v), names, cents, {**t, "threshold": 0.1})
    assert cat.tolist() == [-1] and scores.shape == (1, 5)
    # the key of the kept scores changes with the anchors' prompts
    t2 = load_taxonomy(p)
    t2["others"]["one"] = ["a football match"]
    assert prompts_key(t, "m") != prompts_key(t2, "m")


@needs_model
def test_traps_of_the_packaged_taxonomy(encoder):
    # a negation that names gaming, music and sports "played", athletics jumps, a wheel that is not a vehicle
    from clipfactory.semantic.texts import label_text

    tax = load_taxonomy()
    names, cents = prompt_centroids(tax, encoder)
    texts = {"using remote controller (not gaming)": {"other", "people-handling-objects"},
             "playing violin": {"other"}, "playing piano": {"other"}, "playing ping pong": {"other"},
             "high jump": {"other"}, "pole vault": {"other"}, "cartwheeling": {"other"},
             "playing controller": {"gameplay"}, "skydiving": {"drone-aerial"}, "driving car": {"driving"}}
    cat, _, _ = classify(encoder.encode([label_text(x) for x in texts]), names, cents, tax)
    got = {x: names[c] if c >= 0 else "other" for x, c in zip(texts, cat, strict=True)}
    assert {x: got[x] in want for x, want in texts.items()} == {x: True for x in texts}, got
