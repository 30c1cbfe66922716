"""build.balance: caps on category shares of a build's clips, computed by hand.

The build's run through `clipfactory run --plan` with a cap is in test_run_plan.py; these cases check the
rule on counts worked out on paper.
"""

from __future__ import annotations

import pytest

from clipfactory.errors import ConfigError
from clipfactory.records import ClipRecord
from clipfactory.semantic.balance import balance, capped_counts, check_caps, round_robin


def test_one_cap_by_hand():
    # a = 10, b = 10 (not capped), a <= 0.3. N = 20: 10 + min(10, 6) = 16; N = 16: 10 + 4 = 14;
    # N = 14: 10 + floor(4.2) = 14. So a keeps 4 (4/14 = 0.286 <= 0.3; 5/15 = 0.333 would not do).
    assert capped_counts({"a": 10, "b": 10}, {"a": 0.3}) == {"a": 4, "b": 10}


def test_caps_on_every_category_by_hand():
    # a = 3, b = 2, both <= 0.5. N = 5: min(3, 2) + min(2, 2) = 4; N = 4: 2 + 2 = 4.
    assert capped_counts({"a": 3, "b": 2}, {"a": 0.5, "b": 0.5}) == {"a": 2, "b": 2}
    # already within the caps: nothing changes
    assert capped_counts({"a": 2, "b": 2, "c": 1}, {"a": 0.4, "b": 0.4}) == {"a": 2, "b": 2, "c": 1}
    # a cap of 0 removes the category, and only it
    assert capped_counts({"a": 5, "b": 3}, {"a": 0.0}) == {"a": 0, "b": 3}


def _clip(sid: str, start: int) -> ClipRecord:
    return ClipRecord(f"{sid}-{start}", sid, start, start + 1000)


def test_round_robin_over_sources():
    clips = [_clip("s2", 0), _clip("s1", 2000), _clip("s1", 0), _clip("s1", 1000), _clip("s2", 5000)]
    assert [c.clip_id for c in round_robin(clips)] == ["s1-0", "s2-0", "s1-1000", "s2-5000", "s1-2000"]


def test_balance_drops_the_last_clips_of_the_round_robin_and_names_the_cap():
    # driving: s1 has 3 clips, s2 has 1; nature: n1 has 2 clips. driving <= 0.5:
    # N = 6: 2 + min(4, 3) = 5; N = 5: 2 + 2 = 4; N = 4: 2 + 2 = 4 -> driving keeps 2: s1-0 and s2-0.
    clips = [_clip("s1", 0), _clip("s1", 1000), _clip("s1", 2000), _clip("s2", 0), _clip("n1", 0), _clip("n1", 1000)]
    cats = {"s1": "driving", "s2": "driving", "n1": "nature"}
    kept, dropped, summary = balance(clips, cats, {"driving": 0.5})
    assert sorted(c.clip_id for c in kept) == ["n1-0", "n1-1000", "s1-0", "s2-0"]
    assert sorted(c.clip_id for c, _ in dropped) == ["s1-1000", "s1-2000"]
    detail = dropped[0][1]
    assert (detail["category"], detail["cap"], detail["category_clips"], detail["kept_in_category"]) == (
        "driving", 0.5, 4, 2)
    assert summary["achieved"] == {"driving": 0.5, "nature": 0.5}
    assert summary["before"] == {"driving": 4, "nature": 2} and summary["dropped"] == 2
    # a source without a category counts as other; a cap with nothing else in the build can only be met
    # by none: N = 2 gives floor(1) = 1, then floor(0.5) = 0
    kept2, _, s2 = balance([_clip("x", 0), _clip("y", 0)], {}, {"other": 0.5})
    assert s2["before"] == {"other": 2} and kept2 == [] and s2["emptied"] == ["other"]


def test_bad_caps_name_the_fix():
    with pytest.raises(ConfigError, match="from 0 to 1"):
        check_caps({"driving": 1.5})
    with pytest.raises(ConfigError, match="unknown categories: drivng"):
        check_caps({"drivng": 0.5}, {"driving", "other"})


def test_datasheet_states_target_and_achieved():
    from clipfactory.disclosures.datasheet import _balance_table
    from clipfactory.disclosures.facts import _balance

    cats = [{"category": "driving", "clips": 1}, {"category": "nature", "clips": 3}]
    rows = _balance({"target": {"driving": 0.5}, "dropped": 2}, cats)
    assert rows == [{"category": "driving", "target": 0.5, "clips": 1, "achieved": 0.25, "dropped_for_caps": 2}]
    html = _balance_table(rows)
    assert "<td>driving</td><td>50" in html and "<td>25" in html and "2 clips were left out" in html
    assert _balance(None, cats) is None and _balance_table(None) == ""
