from __future__ import annotations

import hashlib
import json

import pytest
from policy_helpers import add, owned, settings_with, yt

from clipfactory.config import BuildSettings, Settings
from clipfactory.errors import PolicyError
from clipfactory.policy.gate import acquisition_check, allowed_source_ids, decide_source, evaluate
from clipfactory.records import SourceRecord

CC_UPLOAD = yt("ccccccccccc", content_license="CC-BY-4.0")
STD_UPLOAD = yt("sssssssssss")


# -- commercial profile and YouTube acquisition -------------------------------------------------------------


def test_commercial_denies_youtube_pixels_without_permission():
    d = decide_source(CC_UPLOAD, ["kinetics-400"], "commercial")
    assert d.decision == "deny"
    assert d.use_ok and not d.acquire_ok  # CC BY upload + CC BY labels: usable, but not acquirable
    assert d.effective_class == "commercial"
    assert d.reasons == ("policy.platform_terms_no_permission:youtube",)
    # The channel is the platform of origin: bytes already in the store were still downloaded from YouTube.
    local = CC_UPLOAD.replace(blob_uri="blob:sha256:" + "ab" * 32, origin_uri="file:///data/ccccccccccc.mp4")
    assert decide_source(local, ["kinetics-400"], "commercial").reasons == d.reasons
    # Standard-licence upload: also not usable commercially.
    d = decide_source(STD_UPLOAD, ["kinetics-400"], "commercial")
    assert d.decision == "deny" and not d.use_ok
    assert "policy.license_unspecified" in d.reasons
    assert d.lineage["content"]["terms"][0]["origin"] == "platform-default"


def test_commercial_allows_cc_youtube_upload_with_recorded_permission(permission_file):
    s = permission_file(scope="all")
    d = decide_source(CC_UPLOAD, ["kinetics-400"], "commercial", settings=s)
    assert d.decision == "allow", d.reasons
    assert d.acquire_ok and d.use_ok and d.attribution
    check = d.lineage["acquisition"]["checks"][0]
    assert check["permission"]["granted_by"] == "Platform Inc., partnerships"
    assert check["permission"]["sha256"] == hashlib.sha256(b"signed permission letter").hexdigest()
    # The permission answers acquisition only: a standard-licence upload is still not usable commercially.
    d = decide_source(STD_UPLOAD, ["kinetics-400"], "commercial", settings=s)
    assert d.decision == "deny" and d.acquire_ok and not d.use_ok


def test_msr_vtt_clip_files_are_a_known_platform_that_needs_permission():
    """MSR-VTT's caption file names the dataset's own clip files (video7010): their platform is in the
    registry, so a research build is refused for the platform's terms, not told to register it."""
    src = SourceRecord("msr-vtt:video7010", "msr-vtt", platform_id="video7010")
    d = decide_source(src, ["msr-vtt"], "research")
    assert d.decision == "deny"
    assert "policy.platform_terms_no_permission:msr-vtt" in d.reasons
    assert not any(r.startswith("policy.platform_unknown") for r in d.reasons)


def test_permission_scopes_purposes_and_expiry(permission_file):
    s = permission_file(scope="sources", source_ids=[CC_UPLOAD.source_id])
    assert decide_source(CC_UPLOAD, [], "commercial", settings=s).acquire_ok
    other = yt("ooooooooooo", content_license="CC-BY-4.0")
    assert not decide_source(other, [], "commercial", settings=s).acquire_ok

    s = permission_file(scope="datasets", datasets=["kinetics-400"])
    assert decide_source(other, ["kinetics-400"], "commercial", settings=s).acquire_ok
    assert not decide_source(other, ["kinetics-700"], "commercial", settings=s).acquire_ok

    s = permission_file(purposes=["research"])
    assert not decide_source(CC_UPLOAD, [], "commercial", settings=s).acquire_ok
    assert decide_source(CC_UPLOAD, [], "research", settings=s).acquire_ok

    s = permission_file(expires="2020-01-01")
    d = decide_source(CC_UPLOAD, [], "commercial", settings=s)
    assert not d.acquire_ok
    assert d.lineage["acquisition"]["checks"][0]["expired_permissions"]


def test_permission_document_is_checked(permission_file, tmp_path):
    s = permission_file(sha256="0" * 64)
    with pytest.raises(PolicyError, match="does not match"):
        decide_source(CC_UPLOAD, [], "commercial", settings=s)
    s = permission_file()
    (tmp_path / "perm.pdf").unlink()
    (tmp_path / "permissions.toml").write_text((tmp_path / "permissions.toml").read_text() + "\n")
    with pytest.raises(PolicyError, match="document is missing"):
        decide_source(CC_UPLOAD, [], "commercial", settings=s)


def test_acquisition_check_for_fetchers(permission_file):
    assert acquisition_check("web", "example.org") == (True, None)
    assert acquisition_check("owned", None) == (True, None)
    # A redirect that lands on a YouTube host is refused even when the source claims to be on the web.
    assert acquisition_check("web", "rr3---sn-4g5e.googlevideo.com") == (
        False,
        "policy.platform_terms_no_permission:youtube",
    )
    assert acquisition_check("youtube", None)[0] is False
    assert acquisition_check("shutterstock", "ak.picdn.net") == (
        False,
        "policy.platform_terms_no_permission:shutterstock",
    )
    s = permission_file(scope="all")
    assert acquisition_check("web", "www.youtube.com", settings=s) == (True, None)
    s = permission_file(scope="sources", source_ids=["youtube:aaaaaaaaaaa"])
    assert acquisition_check("youtube", "youtu.be", settings=s)[0] is False
    assert acquisition_check("youtube", "youtu.be", settings=s, source_id="youtube:aaaaaaaaaaa") == (
        True,
        None,
    )


def test_a_youtube_url_under_another_platform_is_still_youtube():
    src = SourceRecord(
        "url:x", "web", url="https://m.youtube.com/watch?v=abcdefghijk", content_license="CC0-1.0"
    )
    d = decide_source(src, [], "research")
    assert d.reasons == ("policy.platform_terms_no_permission:youtube",)
    assert [c["platform"] for c in d.lineage["acquisition"]["checks"]] == ["web", "youtube"]


# -- research profile, withdrawal, laundering ---------------------------------------------------------------


def test_research_denies_withdrawn_webvid_in_every_profile():
    src = SourceRecord(
        "shutterstock:123", "shutterstock", url="https://ak.picdn.net/shutterstock/videos/123/preview.mp4"
    )
    for purpose in ["research", "commercial"]:
        d = decide_source(src, ["webvid-10m"], purpose)
        assert d.decision == "deny"
        assert "policy.dataset_withdrawn:webvid-10m" in d.reasons


def test_research_accepts_restrictive_classes_but_not_withdrawal_or_no_redistribution(permission_file):
    s = permission_file(scope="all")
    assert decide_source(STD_UPLOAD, ["hd-vila-100m"], "research", settings=s).decision == "allow"
    d = decide_source(STD_UPLOAD, ["hd-vg-130m"], "research", settings=s)
    assert d.decision == "deny" and d.reasons == ("policy.no_redistribution:hd-vg-130m",)


def test_laundering_chain_resolves_to_the_most_restrictive_class():
    src = yt("lllllllllll", content_license="CC-BY-4.0")
    d = decide_source(src, ["openvid-1m"], "commercial")
    assert d.effective_class == "academic-only"
    assert "policy.license_noncommercial" in d.reasons and not d.use_ok
    ann = d.lineage["annotations"][0]
    assert ann["chain"] == ["openvid-1m", "panda-70m", "hd-vila-100m"]
    assert {t["subject"]: t["use_class"] for t in ann["terms"]} == {
        "openvid-1m": "commercial",
        "panda-70m": "academic-only",
        "hd-vila-100m": "academic-only",
    }
    assert ann["terms"][2]["via"] == ["openvid-1m", "panda-70m", "hd-vila-100m"]
    # Content terms and annotation terms are kept apart.
    assert [t["kind"] for t in d.lineage["content"]["terms"]] == ["content"]
    assert d.lineage["content"]["terms"][0]["license"] == "CC-BY-4.0"


def test_withdrawal_travels_down_the_chain(tmp_path):
    s = settings_with(
        tmp_path,
        registry='[datasets.webvid-remix]\nannotation_license = "CC0-1.0"\ncontent_source = "shutterstock"\n'
        'derived_from = ["webvid-10m"]\n',
    )
    d = decide_source(
        SourceRecord("shutterstock:1", "shutterstock"), ["webvid-remix"], "research", settings=s
    )
    assert "policy.dataset_withdrawn:webvid-10m" in d.reasons


def test_unknown_licence_is_academic_only_and_denied_commercially():
    src = owned(1, content_license="LicenseRef-Never-Heard-Of-It")
    d = decide_source(src, ["owned"], "commercial")
    assert d.effective_class == "academic-only"
    assert d.reasons == ("policy.license_unknown",)
    assert decide_source(src, ["owned"], "research").decision == "allow"
    assert decide_source(owned(2), ["owned"], "commercial").reasons == ("policy.license_unknown",)
    assert decide_source(owned(3, content_license="CC-BY-4.0"), ["owned"], "commercial").decision == "allow"


def test_ego4d_needs_review_until_reviewed(tmp_path):
    src = SourceRecord("ego4d:0001", "ego4d")
    d = decide_source(src, ["ego4d"], "research")
    assert d.decision == "review" and d.reasons == ("policy.needs_review:ego4d",)
    assert d.acquire_ok and not d.use_ok
    assert decide_source(src, ["ego4d"], "commercial").decision == "deny"
    s = settings_with(
        tmp_path,
        policy="""
[licenses."LicenseRef-Ego4D-License-Agreement"]
class = "non-commercial"

[profiles.research]
reviewed = ["ego4d"]
""",
    )
    d = decide_source(src, ["ego4d"], "research", settings=s)
    assert d.decision == "allow" and d.effective_class == "non-commercial"


def test_unknown_platform_goes_to_review():
    d = decide_source(SourceRecord("vimeo:1", "vimeo", content_license="CC-BY-4.0"), [], "research")
    assert d.decision == "review" and d.reasons == ("policy.platform_unknown:vimeo",)


def test_unregistered_datasets_carry_no_annotation_terms_and_registry_key_maps_them():
    src = owned(5, content_license="CC0-1.0")
    assert decide_source(src, ["my-shoot"], "commercial").decision == "allow"
    cc = yt("kkkkkkkkkkk", content_license="CC-BY-4.0")
    d = decide_source(cc, ["my-openvid"], "commercial", registry_keys={"my-openvid": "openvid-1m"})
    assert d.effective_class == "academic-only"
    assert d.lineage["annotations"][0]["registry_key"] == "openvid-1m"


# -- custom profiles ---------------------------------------------------------------------------------------


def test_custom_profile_from_policy_file(tmp_path):
    s = settings_with(
        tmp_path,
        policy="""
[profiles.open-only]
description = "Commercial, no share-alike, no Kinetics"
extends = "commercial"
share_alike_ok = false
deny_datasets = ["kinetics-700"]

[profiles.internal]
extends = "research"
deny_no_redistribution = false
""",
    )
    a = owned(10, content_license="CC-BY-4.0")
    b = owned(11, content_license="CC-BY-SA-4.0")
    assert decide_source(a, [], "open-only", settings=s).decision == "allow"
    assert decide_source(b, [], "open-only", settings=s).reasons == ("policy.share_alike_required",)
    assert decide_source(b, [], "commercial", settings=s).decision == "allow"
    assert (
        "policy.dataset_denied:kinetics-700"
        in decide_source(a, ["kinetics-700"], "open-only", settings=s).reasons
    )
    # extends inherits accept = ["commercial"]
    assert (
        "policy.license_noncommercial"
        in decide_source(owned(12, content_license="CC-BY-NC-4.0"), [], "open-only", settings=s).reasons
    )
    assert decide_source(owned(13), ["hd-vg-130m"], "internal", settings=s).reasons == ()
    with pytest.raises(PolicyError, match="unknown purpose profile"):
        decide_source(a, [], "nope", settings=s)


@pytest.mark.parametrize(
    "text, match",
    [
        ('[profiles.x]\naccept = ["everything"]\n', "invalid profile"),
        ('[profiles.x]\nextends = "missing"\n', "unknown profile"),
        ('[profiles.x]\nextends = "y"\n[profiles.y]\nextends = "x"\n', "cycle"),
        ('[profiles.x]\ncolour = "red"\n', "invalid profile"),
    ],
)
def test_bad_profiles_are_policy_errors(tmp_path, text, match):
    s = settings_with(tmp_path, policy=text)
    with pytest.raises(PolicyError, match=match):
        decide_source(owned(1), [], "research", settings=s)


def test_accept_is_closed_downwards(tmp_path):
    s = settings_with(tmp_path, policy='[profiles.nc]\naccept = ["non-commercial"]\n')
    src = owned(20, content_license="CC0-1.0")
    assert decide_source(src, [], "nc", settings=s).decision == "allow"


# -- decontamination ---------------------------------------------------------------------------------------


def test_decontamination_denies_members_of_evaluation_sets(permission_file):
    s = permission_file(scope="all")
    src = yt("eeeeeeeeeee", content_license="CC-BY-4.0")
    d = decide_source(
        src, ["kinetics-400:val"], "research", settings=s, evaluation_datasets=["kinetics-400:val"]
    )
    assert d.reasons == ("policy.evaluation_set:kinetics-400",)
    assert (
        decide_source(
            src, ["kinetics-400:train"], "research", settings=s, evaluation_datasets=["kinetics-400:val"]
        ).decision
        == "allow"
    )
    assert (
        decide_source(
            src, ["kinetics-400:train"], "research", settings=s, evaluation_datasets=["kinetics-400"]
        ).decision
        == "deny"
    )
    # The build's evaluation_manifests are the default.
    s2 = s.model_copy(update={"build": BuildSettings(evaluation_manifests=["kinetics-400"])})
    assert (
        "policy.evaluation_set:kinetics-400"
        in decide_source(src, ["kinetics-400"], "research", settings=s2).reasons
    )
    # Registry benchmarks (the MSR-VTT test split) are excluded without being named.
    assert decide_source(src, ["msr-vtt:test"], "research", settings=s).reasons == (
        "policy.evaluation_set:msr-vtt",
    )
    assert decide_source(src, ["msr-vtt:train"], "research", settings=s).decision == "allow"


# -- vectorised evaluation ---------------------------------------------------------------------------------

FIXTURE_SOURCES = [
    CC_UPLOAD,
    STD_UPLOAD,
    yt("lllllllllll", content_license="CC-BY-4.0"),
    yt("eeeeeeeeeee", content_license="CC-BY-4.0"),
    yt("mmmmmmmmmmm"),
    SourceRecord("shutterstock:123", "shutterstock", url="https://ak.picdn.net/x/123.mp4"),
    SourceRecord("ego4d:0001", "ego4d"),
    SourceRecord("vimeo:1", "vimeo", content_license="CC-BY-4.0"),
    SourceRecord(
        "url:abc", "web", url="https://www.youtube.com/watch?v=abcdefghijk", content_license="CC0-1.0"
    ),
    SourceRecord(
        "url:def", "web", url="https://example.org/a.mp4", content_license="CC-BY-SA-4.0 OR CC-BY-NC-4.0"
    ),
    owned(1, content_license="LicenseRef-Never-Heard-Of-It"),
    owned(2),
    owned(3, content_license="CC0-1.0"),
    owned(4, content_license="CC-BY-NC-4.0"),
]
FIXTURE_MEMBERSHIPS = [
    ("kinetics-400", CC_UPLOAD.source_id, "train"),
    ("kinetics-400", STD_UPLOAD.source_id, "train"),
    ("hd-vila-100m", STD_UPLOAD.source_id, None),
    ("openvid-1m", "youtube:lllllllllll", None),
    ("kinetics-700", "youtube:eeeeeeeeeee", "val"),
    ("msr-vtt", "youtube:mmmmmmmmmmm", "test"),
    ("hd-vg-130m", "youtube:mmmmmmmmmmm", None),
    ("webvid-10m", "shutterstock:123", "train"),
    ("ego4d", "ego4d:0001", None),
    ("my-openvid", CC_UPLOAD.source_id, None),
    ("owned", owned(1).source_id, None),
    ("owned", owned(2).source_id, None),
    ("my-shoot", owned(3).source_id, None),
    ("owned", owned(4).source_id, None),
]


def _memberships_of(sid):
    return [d if s is None else f"{d}:{s}" for d, x, s in FIXTURE_MEMBERSHIPS if x == sid]


# The decisions on FIXTURE_SOURCES, worked out by hand from the licence rules (DOMAIN.md), the built-in
# policy and the registry. Fields: decision, use_ok, acquire_ok, effective class, attribution, share-alike,
# reasons (sorted). The evaluation set is kinetics-700:val; both profiles also exclude the MSR-VTT test
# split.
YT = "policy.platform_terms_no_permission:youtube"
NC = "policy.license_noncommercial"
EXPECTED = {
    "commercial": {
        # CC BY upload, Kinetics-400 (CC BY labels) and my-openvid (= OpenVid-1M, laundered from Panda-70M
        # and HD-VILA-100M: academic-only); YouTube downloads need a permission.
        CC_UPLOAD.source_id: ("deny", False, False, "academic-only", True, False, (NC, YT)),
        # Standard YouTube licence (unspecified), Kinetics-400 and HD-VILA-100M (academic-only).
        STD_UPLOAD.source_id: (
            "deny",
            False,
            False,
            "academic-only",
            True,
            False,
            (NC, "policy.license_unspecified", YT),
        ),
        "youtube:lllllllllll": ("deny", False, False, "academic-only", True, False, (NC, YT)),
        # Kinetics-700 val is the build's evaluation set.
        "youtube:eeeeeeeeeee": (
            "deny",
            False,
            False,
            "commercial",
            True,
            False,
            ("policy.evaluation_set:kinetics-700", YT),
        ),
        # MSR-VTT test (an evaluation split; terms not classified: unknown) and HD-VG-130M (academic-only,
        # no redistribution), on a standard-licence upload.
        "youtube:mmmmmmmmmmm": (
            "deny",
            False,
            False,
            "academic-only",
            False,
            False,
            (
                "policy.evaluation_set:msr-vtt",
                NC,
                "policy.license_unknown",
                "policy.license_unspecified",
                "policy.no_redistribution:hd-vg-130m",
                YT,
            ),
        ),
        # Shutterstock preview (academic-only) in the withdrawn WebVid-10M; no Shutterstock permission.
        "shutterstock:123": (
            "deny",
            False,
            False,
            "academic-only",
            False,
            False,
            ("policy.dataset_withdrawn:webvid-10m", NC, "policy.platform_terms_no_permission:shutterstock"),
        ),
        # The Ego4D agreement is not classified (unknown) and the dataset needs review.
        "ego4d:0001": (
            "deny",
            False,
            True,
            "academic-only",
            False,
            False,
            ("policy.license_unknown", "policy.needs_review:ego4d"),
        ),
        "vimeo:1": ("review", False, True, "commercial", True, False, ("policy.platform_unknown:vimeo",)),
        # CC0, but the URL is a YouTube one.
        "url:abc": ("deny", True, False, "commercial", False, False, (YT,)),
        # An OR takes the least restrictive option: CC BY-SA.
        "url:def": ("allow", True, True, "commercial", True, True, ()),
        owned(1).source_id: ("deny", False, True, "academic-only", False, False, ("policy.license_unknown",)),
        owned(2).source_id: ("deny", False, True, "academic-only", False, False, ("policy.license_unknown",)),
        owned(3).source_id: ("allow", True, True, "commercial", False, False, ()),
        owned(4).source_id: ("deny", False, True, "non-commercial", True, False, (NC,)),
    },
    "research": {
        CC_UPLOAD.source_id: ("deny", True, False, "academic-only", True, False, (YT,)),
        STD_UPLOAD.source_id: ("deny", True, False, "academic-only", True, False, (YT,)),
        "youtube:lllllllllll": ("deny", True, False, "academic-only", True, False, (YT,)),
        "youtube:eeeeeeeeeee": (
            "deny",
            False,
            False,
            "commercial",
            True,
            False,
            ("policy.evaluation_set:kinetics-700", YT),
        ),
        "youtube:mmmmmmmmmmm": (
            "deny",
            False,
            False,
            "academic-only",
            False,
            False,
            ("policy.evaluation_set:msr-vtt", "policy.no_redistribution:hd-vg-130m", YT),
        ),
        "shutterstock:123": (
            "deny",
            False,
            False,
            "academic-only",
            False,
            False,
            ("policy.dataset_withdrawn:webvid-10m", "policy.platform_terms_no_permission:shutterstock"),
        ),
        "ego4d:0001": ("review", False, True, "academic-only", False, False, ("policy.needs_review:ego4d",)),
        "vimeo:1": ("review", False, True, "commercial", True, False, ("policy.platform_unknown:vimeo",)),
        "url:abc": ("deny", True, False, "commercial", False, False, (YT,)),
        "url:def": ("allow", True, True, "commercial", True, True, ()),
        owned(1).source_id: ("allow", True, True, "academic-only", False, False, ()),
        owned(2).source_id: ("allow", True, True, "academic-only", False, False, ()),
        owned(3).source_id: ("allow", True, True, "commercial", False, False, ()),
        owned(4).source_id: ("allow", True, True, "non-commercial", True, False, ()),
    },
}
# A YouTube permission scoped to Kinetics-400 answers acquisition for its two members, and nothing else.
WITH_KINETICS_PERMISSION = {
    "commercial": {
        CC_UPLOAD.source_id: ("deny", False, True, "academic-only", True, False, (NC,)),
        STD_UPLOAD.source_id: (
            "deny",
            False,
            True,
            "academic-only",
            True,
            False,
            (NC, "policy.license_unspecified"),
        ),
    },
    "research": {
        CC_UPLOAD.source_id: ("allow", True, True, "academic-only", True, False, ()),
        STD_UPLOAD.source_id: ("allow", True, True, "academic-only", True, False, ()),
    },
}


def _expected(purpose: str, with_permission: bool) -> dict[str, tuple]:
    return {**EXPECTED[purpose], **(WITH_KINETICS_PERMISSION[purpose] if with_permission else {})}


def _fields(d) -> tuple:
    return (d.decision, d.use_ok, d.acquire_ok, d.effective_class, d.attribution, d.share_alike, d.reasons)


@pytest.mark.parametrize("purpose", ["commercial", "research"])
@pytest.mark.parametrize("with_permission", [False, True])
def test_evaluate_and_decide_source_give_the_worked_out_decisions(
    cat, permission_file, purpose, with_permission
):
    add(cat, FIXTURE_SOURCES, FIXTURE_MEMBERSHIPS, [("my-openvid", "openvid-1m")])
    s = permission_file(scope="datasets", datasets=["kinetics-400"]) if with_permission else Settings()
    evals = ["kinetics-700:val"]
    want = _expected(purpose, with_permission)
    assert set(want) == {x.source_id for x in FIXTURE_SOURCES}
    summary = evaluate(cat, purpose, settings=s, evaluation_datasets=evals)
    assert summary["n_sources"] == len(FIXTURE_SOURCES)
    rows = {
        r["source_id"]: r for r in cat.query("SELECT * FROM policy_decisions WHERE purpose = ?", [purpose])
    }
    got = {
        sid: (
            r["decision"],
            r["use_ok"],
            r["acquire_ok"],
            r["effective_class"],
            r["attribution"],
            r["share_alike"],
            tuple(r["reasons"]),
        )
        for sid, r in rows.items()
    }
    assert got == want
    for src in FIXTURE_SOURCES:
        d = decide_source(
            src,
            _memberships_of(src.source_id),
            purpose,
            settings=s,
            evaluation_datasets=evals,
            registry_keys={"my-openvid": "openvid-1m"},
        )
        assert _fields(d) == want[src.source_id], src.source_id
        # The catalog holds the evidence that explains the decision, under the same policy.
        r = rows[src.source_id]
        assert json.loads(r["lineage"]) == json.loads(json.dumps(d.lineage)), src.source_id
        assert r["policy_hash"] == d.policy_hash
    counts = {k: sum(1 for w in want.values() if w[0] == k) for k in ("allow", "deny", "review")}
    assert summary["decisions"] == counts
    assert summary["reasons"]["policy.dataset_withdrawn:webvid-10m"] == 1
    assert summary["reasons"]["policy.evaluation_set:kinetics-700"] == 1
    assert summary["reasons"]["policy.evaluation_set:msr-vtt"] == 1


def test_evaluate_replaces_decisions_wholesale_and_allowed_source_ids(cat, permission_file):
    add(cat, FIXTURE_SOURCES, FIXTURE_MEMBERSHIPS)
    with pytest.raises(PolicyError, match="never evaluated"):
        allowed_source_ids(cat, "commercial")
    evaluate(cat, "commercial")
    first = allowed_source_ids(cat, "commercial")
    assert first == {owned(3).source_id, "url:def"}
    assert allowed_source_ids(cat, "commercial", source_ids=["url:def", CC_UPLOAD.source_id]) == {"url:def"}
    s = permission_file(scope="all")
    with pytest.raises(PolicyError, match="different policy"):
        allowed_source_ids(cat, "commercial", settings=s)
    # Re-deciding a subset under the new policy makes that subset current, and only that subset.
    evaluate(cat, "commercial", settings=s, source_ids=[CC_UPLOAD.source_id])
    assert allowed_source_ids(cat, "commercial", settings=s, source_ids=[CC_UPLOAD.source_id]) == {
        CC_UPLOAD.source_id
    }
    with pytest.raises(PolicyError, match="different policy"):
        allowed_source_ids(cat, "commercial", settings=s)
    evaluate(cat, "commercial", settings=s)
    assert allowed_source_ids(cat, "commercial", settings=s) == first | {
        CC_UPLOAD.source_id,
        "url:abc",
        "youtube:eeeeeeeeeee",
    }
    assert cat.scalar("SELECT count(*) FROM policy_decisions WHERE purpose = 'commercial'") == len(
        FIXTURE_SOURCES
    )
    # A build that names an evaluation set the decisions did not exclude is refused.
    s2 = s.model_copy(update={"build": BuildSettings(evaluation_manifests=["kinetics-400"])})
    with pytest.raises(PolicyError, match="decontaminating kinetics-400"):
        allowed_source_ids(cat, "commercial", settings=s2)
    evaluate(cat, "commercial", settings=s2)
    assert CC_UPLOAD.source_id not in allowed_source_ids(cat, "commercial", settings=s2)
    # Purposes are independent.
    assert cat.scalar("SELECT count(*) FROM policy_decisions WHERE purpose = 'research'") == 0


def test_evaluate_a_subset(cat):
    add(cat, FIXTURE_SOURCES, FIXTURE_MEMBERSHIPS)
    evaluate(cat, "research")
    before = cat.query("SELECT source_id, decided_at FROM policy_decisions WHERE purpose = 'research'")
    summary = evaluate(cat, "research", source_ids=[owned(3).source_id, "youtube:none-such"])
    assert summary["n_sources"] == 1 and summary["scope"] == "subset"
    after = cat.query("SELECT source_id, decided_at FROM policy_decisions WHERE purpose = 'research'")
    assert len(after) == len(before)


def test_evaluate_without_ingest_tables(cat):
    # The gate works on a catalog that has sources but none of the ingest tables (owned media only).
    add(cat, [owned(3, content_license="CC0-1.0"), owned(4)])
    with cat.write() as con:
        con.execute("DROP TABLE IF EXISTS memberships")
        con.execute("DROP TABLE IF EXISTS datasets")
    summary = evaluate(cat, "commercial")
    assert summary["decisions"] == {"allow": 1, "deny": 1, "review": 0}


def test_vectorised_evaluate_over_100k_sources(cat):
    import pyarrow as pa

    n = 100_000
    ids = [f"youtube:{i:011d}" for i in range(n)]
    licences = [None, "CC-BY-4.0", "CC-BY-NC-4.0", "LicenseRef-Whatever"]
    datasets = ["kinetics-400", "openvid-1m", "webvid-10m", "hd-vila-100m", "msr-vtt"]
    with cat.write() as con:
        con.register(
            "_src",
            pa.table(
                {
                    "source_id": ids,
                    "platform": ["youtube"] * n,
                    "content_license": [licences[i % 4] for i in range(n)],
                    "url": [f"https://youtu.be/{i:011d}" for i in range(n)],
                }
            ),
        )
        con.execute("INSERT INTO sources BY NAME SELECT * FROM _src")
        con.register(
            "_mem",
            pa.table(
                {
                    "dataset": [datasets[i % 5] for i in range(n)],
                    "source_id": ids,
                    "split": ["test" if i % 10 == 4 else "train" for i in range(n)],
                }
            ),
        )
        con.execute("INSERT INTO memberships BY NAME SELECT * FROM _mem")
    summary = evaluate(cat, "commercial")
    assert summary["n_sources"] == n
    assert summary["decisions"]["deny"] == n
    assert summary["reasons"]["policy.platform_terms_no_permission:youtube"] == n
    assert summary["reasons"]["policy.evaluation_set:msr-vtt"] == n // 10
    assert summary["reasons"]["policy.dataset_withdrawn:webvid-10m"] == n // 5
