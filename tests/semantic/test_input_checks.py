"""Bad budgets, targets and search arguments are one ConfigError naming the option, before any work."""

import math

import pytest

from clipfactory.errors import ConfigError
from clipfactory.semantic.plan import parse_target, plan_mix
from clipfactory.semantic.search import search


@pytest.mark.parametrize("sources", [-5, 0])
def test_budget_sources_must_be_positive_integer(sources):
    with pytest.raises(ConfigError, match="--budget-sources") as e:
        plan_mix(None, {"driving": 1.0}, purpose="research", budget_sources=sources)
    assert "positive integer" in str(e.value) + str(getattr(e.value, "fix", ""))


@pytest.mark.parametrize("hours", [-1.0, 0.0, math.nan, math.inf])
def test_budget_hours_must_be_positive_finite(hours):
    with pytest.raises(ConfigError, match="--budget-hours") as e:
        plan_mix(None, {"driving": 1.0}, purpose="research", budget_hours=hours)
    assert "positive finite" in str(e.value) + str(getattr(e.value, "fix", ""))


def test_target_category_twice():
    with pytest.raises(ConfigError, match="'driving' is given twice"):
        parse_target("driving=0.5,nature=0.5,driving=0.2")


def test_target_negative_share_says_range():
    with pytest.raises(ConfigError) as e:
        parse_target("driving=-0.5,nature=1.5")
    assert "between 0 and 1" in str(e.value) + str(getattr(e.value, "fix", ""))


def test_target_good_still_parses():
    assert parse_target("driving=0.25, nature=0.75") == {"driving": 0.25, "nature": 0.75}


@pytest.mark.parametrize("k", [0, -3])
def test_search_k_positive(k):
    with pytest.raises(ConfigError, match="--k"):
        search(None, "a red car", k=k)


def test_search_unknown_kind():
    with pytest.raises(ConfigError) as e:
        search(None, "a red car", kind="foo")
    text = str(e.value) + str(getattr(e.value, "fix", ""))
    assert "source" in text and "clip" in text


@pytest.mark.parametrize("q", ["", "   "])
def test_search_empty_query(q):
    with pytest.raises(ConfigError, match="query"):
        search(None, q)
