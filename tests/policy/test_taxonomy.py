from __future__ import annotations

import pytest
from policy_helpers import settings_with

from clipfactory.errors import PolicyError
from clipfactory.policy.profiles import load_policy
from clipfactory.policy.taxonomy import LicenseTerms, classify, combine, most_restrictive, parse_expression


def triple(expr, table=None):
    t = classify(expr, table)
    return (t.use_class, t.attribution, t.share_alike)


@pytest.mark.parametrize(
    "expr, want",
    [
        ("CC-BY-4.0", ("commercial", True, False)),
        ("CC-BY-NC-4.0", ("non-commercial", True, False)),
        ("CC-BY-NC-SA-4.0", ("non-commercial", True, True)),
        ("CC-BY-SA-3.0", ("commercial", True, True)),
        ("CC-BY-ND-4.0", ("unspecified", True, False)),
        ("CC-BY-NC-ND-4.0", ("non-commercial", True, False)),
        ("CC-BY-3.0-DE", ("commercial", True, False)),
        ("CC0-1.0", ("commercial", False, False)),
        ("cc0-1.0", ("commercial", False, False)),
        ("cc-by-nc-4.0", ("non-commercial", True, False)),
        ("MIT", ("commercial", True, False)),
        ("Apache-2.0", ("commercial", True, False)),
        ("LicenseRef-PublicDomain", ("commercial", False, False)),
        ("LicenseRef-YouTube-Standard-License", ("unspecified", False, False)),
        ("LicenseRef-Microsoft-Research-Use-of-Data-Agreement", ("academic-only", False, False)),
    ],
)
def test_licence_triples(expr, want):
    assert triple(expr) == want


def test_unknown_is_academic_only_until_classified():
    for expr in ["LicenseRef-Something-Custom", "Some-Unlisted-Licence", None, "", "NOASSERTION", "NONE"]:
        t = classify(expr)
        assert t.use_class == "academic-only" and t.unknown, expr


def test_and_takes_the_most_restrictive_and_ors_obligations():
    t = classify("CC-BY-4.0 AND CC-BY-NC-SA-4.0")
    assert (t.use_class, t.attribution, t.share_alike) == ("non-commercial", True, True)
    assert triple("CC0-1.0 AND LicenseRef-Unclassified-Thing") == ("academic-only", False, False)
    assert classify("CC0-1.0 AND LicenseRef-Unclassified-Thing").unknown


def test_or_takes_the_least_restrictive_option():
    t = classify("CC-BY-NC-4.0 OR CC-BY-4.0")
    assert (t.use_class, t.attribution, t.share_alike) == ("commercial", True, False)
    assert t.rule == "or" and t.chosen == ("CC-BY-4.0",)
    # Same class: the option with fewer obligations.
    assert triple("CC-BY-SA-4.0 OR CC0-1.0") == ("commercial", False, False)
    # Nested: OR of an AND.
    assert triple("LicenseRef-Unclassified OR (CC-BY-4.0 AND CC-BY-SA-4.0)") == ("commercial", True, True)
    # An unknown option is not chosen over a known permissive one, and an all-unknown OR stays unknown.
    assert classify("LicenseRef-A OR LicenseRef-B").unknown


def test_with_exception_is_classified_as_its_licence():
    assert triple("GPL-2.0-or-later WITH Classpath-exception-2.0") == triple("GPL-2.0-or-later")
    assert classify("Apache-2.0 WITH LLVM-exception").use_class == "commercial"


@pytest.mark.parametrize("bad", ["CC-BY-4.0 AND", "(MIT", "MIT OR OR CC0-1.0", "AND", "MIT ("])
def test_invalid_expressions_raise_policy_error(bad):
    with pytest.raises(PolicyError) as exc:
        classify(bad)
    assert "SPDX" in str(exc.value) or "expression" in str(exc.value)
    assert exc.value.fix


def test_parse_expression_empty_is_an_error():
    with pytest.raises(PolicyError):
        parse_expression("   ")


def test_combine_rule():
    a = LicenseTerms("CC-BY-4.0", "commercial", attribution=True)
    b = LicenseTerms("X", "non-commercial", share_alike=True)
    c = combine([a, b])
    assert (c.use_class, c.attribution, c.share_alike) == ("non-commercial", True, True)
    assert combine([]).use_class == "commercial"
    assert most_restrictive(["unspecified", "commercial", "academic-only"]) == "academic-only"


def test_policy_file_adds_and_overrides_licence_classes(tmp_path):
    s = settings_with(
        tmp_path,
        policy="""
[licenses."LicenseRef-Acme-Footage"]
class = "commercial"
attribution = true

[licenses."CC-BY-ND-4.0"]
class = "commercial"
attribution = true
""",
    )
    table = load_policy(s).licenses
    assert triple("LicenseRef-Acme-Footage", table) == ("commercial", True, False)
    assert not table.classify("LicenseRef-Acme-Footage").unknown
    assert triple("CC-BY-ND-4.0", table) == ("commercial", True, False)
    # The built-in table is untouched.
    assert triple("LicenseRef-Acme-Footage") == ("academic-only", False, False)


def test_policy_file_with_bad_class_is_a_policy_error(tmp_path):
    s = settings_with(tmp_path, policy='[licenses."X"]\nclass = "free-for-all"\n')
    with pytest.raises(PolicyError, match="use class"):
        load_policy(s)
    s = settings_with(tmp_path, policy='[licences."X"]\nclass = "commercial"\n')
    with pytest.raises(PolicyError, match="unknown policy section"):
        load_policy(s)
