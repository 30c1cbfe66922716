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
