from __future__ import annotations

import pytest
from policy_helpers import add, owned, yt

from clipfactory import explain
from clipfactory.errors import NotFoundError, PolicyError
from clipfactory.explain import explain_source
from clipfactory.policy.gate import evaluate
from clipfactory.records import SourceRecord

VID = "dQw4w9WgXcQ"


@pytest.fixture
def filled(cat):
    add(
        cat,
        [
            yt(VID, content_license="CC-BY-4.0"),
            SourceRecord("url:0123", "web", url="https://example.org/clips/a.mp4", content_license="CC0-1.0"),
            owned(1, content_license="CC-BY-NC-4.0"),
        ],
        [("openvid-1m", f"youtube:{VID}", None), ("kinetics-400", f"youtube:{VID}", "train")],
    )
    return cat


@pytest.mark.parametrize(
    "spelling",
    [
        f"youtube:{VID}",
        VID,
        f"https://www.youtube.com/watch?v={VID}&t=42s",
        f"https://youtu.be/{VID}",
        f"youtube.com/shorts/{VID}",
    ],
)
def test_explain_accepts_any_spelling(filled, spelling):
    assert explain_source(filled, spelling)["source_id"] == f"youtube:{VID}"


def test_explain_web_and_owned_sources(filled):
    assert explain_source(filled, "https://example.org/clips/a.mp4")["source_id"] == "url:0123"
    sid = owned(1).source_id
    assert explain_source(filled, sid.removeprefix("sha256:"))["source_id"] == sid


def test_explain_names_lineage_licences_and_reasons(filled):
    r = explain_source(filled, f"https://youtu.be/{VID}", purpose="commercial")
    assert [m["dataset"] for m in r["memberships"]] == ["kinetics-400", "openvid-1m"]
    assert r["licenses"]["content"] == [
        {
            "kind": "content",
            "subject": "youtube",
            "license": "CC-BY-4.0",
            "use_class": "commercial",
            "attribution": True,
            "share_alike": False,
            "unknown": False,
            "rule": "cc-family",
            "origin": "stated",
        }
    ]
    ann = {a["dataset"]: a for a in r["licenses"]["annotations"]}
    assert ann["openvid-1m"]["chain"] == ["openvid-1m", "panda-70m", "hd-vila-100m"]
    assert [t["license"] for t in ann["kinetics-400"]["terms"]] == ["CC-BY-4.0"]
    d = r["decisions"]["commercial"]
    assert d["decision"] == "deny" and d["effective_class"] == "academic-only"
    assert set(d["reasons"]) == {
        "policy.license_noncommercial",
        "policy.platform_terms_no_permission:youtube",
    }
    assert any("written permission" in w for w in d["why"])
    assert any("non-commercial" in w for w in d["why"])
    assert r["acquisition"]["checks"][0]["platform"] == "youtube"
    assert list(r["decisions"]) == ["commercial"]


def test_explain_every_profile_and_stored_decisions(filled):
    evaluate(filled, "research")
    r = explain_source(filled, f"youtube:{VID}")
    assert set(r["decisions"]) == {"commercial", "research"}
    stored = r["stored_decisions"]["research"]
    assert stored["decision"] == r["decisions"]["research"]["decision"]
    assert stored["current_policy"] is True


def test_explain_unknown_source_and_purpose(filled):
    with pytest.raises(NotFoundError) as exc:
        explain_source(filled, "youtube:xxxxxxxxxxx")
    assert exc.value.fix
    with pytest.raises(PolicyError, match="unknown purpose"):
        explain_source(filled, f"youtube:{VID}", purpose="nope")


def test_section_providers(filled, tmp_path, monkeypatch):
    (tmp_path / "cf_test_sections.py").write_text(
        "def explain_section(con, source_id):\n"
        "    n = con.execute('SELECT count(*) FROM sources WHERE source_id = ?', [source_id]).fetchall()[0][0]\n"
        "    return {'seen': n}\n"
        "def nothing(con, source_id):\n"
        "    return None\n"
        "def broken(con, source_id):\n"
        "    raise RuntimeError('boom')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        explain,
        "SECTION_PROVIDERS",
        [
            "cf_test_sections:explain_section",
            "cf_test_sections:nothing",
            "cf_test_sections:missing_function",
            "cf_no_such_module.deeper:explain_section",
        ],
    )
    r = explain_source(filled, f"youtube:{VID}")
    assert r["sections"] == {"cf_test_sections": {"seen": 1}}
    monkeypatch.setattr(explain, "SECTION_PROVIDERS", ["cf_test_sections:broken"])
    assert "boom" in explain_source(filled, f"youtube:{VID}")["sections"]["cf_test_sections"]["error"]
