"""The consent parsers and the evaluator, without a network."""

from __future__ import annotations

import json

import pytest

from clipfactory.acquire import consent as c
from clipfactory.acquire.http import parse_retry_after, sniff_container

TOKEN = "clipfactory"


# -- X-Robots-Tag ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values, reason",
    [
        (["noai"], c.REASON_X_ROBOTS_NOAI),
        (["noimageai"], c.REASON_X_ROBOTS_NOAI),
        (["NoAI"], c.REASON_X_ROBOTS_NOAI),
        (["clipfactory: noai"], c.REASON_X_ROBOTS_NOAI),
        (["ClipFactory: noimageai, nofollow"], c.REASON_X_ROBOTS_NOAI),
        (["nofollow, noai"], c.REASON_X_ROBOTS_NOAI),
        (["nofollow", "noarchive", "noai"], c.REASON_X_ROBOTS_NOAI),  # several headers
        (["otherbot: noindex, clipfactory: noai"], c.REASON_X_ROBOTS_NOAI),  # agent switches mid-list
        (["noindex"], c.REASON_X_ROBOTS_NOINDEX),
        (["noimageindex"], c.REASON_X_ROBOTS_NOINDEX),
        (["none"], c.REASON_X_ROBOTS_NOINDEX),  # none = noindex, nofollow
        (["unavailable_after: 25 Jun 2010 15:00:00 PST, noai"], c.REASON_X_ROBOTS_NOAI),
    ],
)
def test_x_robots_tag_denies(values, reason):
    check = c.check_x_robots_tag(values, TOKEN)
    assert check.verdict == c.DENY
    assert check.reason == reason


@pytest.mark.parametrize(
    "values",
    [
        ["otherbot: noai"],  # scoped to another agent
        ["googlebot: noindex", "otherbot: noai, noimageai"],
        ["nofollow, noarchive"],
        ["unavailable_after: 25 Jun 2010 15:00:00 PST"],
        ["max-snippet: 20, max-video-preview: -1"],
        ["clipfactorybot: noai"],  # a different token that merely starts with ours
    ],
)
def test_x_robots_tag_allows(values):
    assert c.check_x_robots_tag(values, TOKEN).verdict == c.ALLOW


def test_x_robots_tag_noindex_is_configurable():
    assert c.check_x_robots_tag(["noindex"], TOKEN, blocked=("noai", "noimageai")).verdict == c.ALLOW
    assert c.check_x_robots_tag([], TOKEN).verdict == c.UNSTATED


# -- Content-Usage ---------------------------------------------------------------------------------------
def test_content_usage_parse_and_hierarchy():
    assert c.parse_content_usage("train-ai=n, search=y") == {"train-ai": "n", "search": "y"}
    assert c.parse_content_usage('train-ai="n";note=1, bots') == {"train-ai": "n", "bots": "y"}
    # train-genai inherits train-ai, which inherits bots
    assert c.usage_preference({"train-ai": "n"}, "train-genai") == ("n", "train-ai")
    assert c.usage_preference({"bots": "n"}, "train-genai") == ("n", "bots")
    assert c.usage_preference({"train-ai": "n", "train-genai": "y"}, "train-genai") == ("y", "train-genai")
    assert c.usage_preference({"search": "n"}, "train-ai") == (None, None)


@pytest.mark.parametrize(
    "sources, category, verdict",
    [
        ([("header", "train-ai=n")], "train-genai", c.DENY),
        ([("header", "train-ai=n")], "train-ai", c.DENY),
        ([("header", "train-genai=n")], "train-ai", c.UNSTATED),
        ([("header", "train-genai=n")], "train-genai", c.DENY),
        ([("header", "train-ai=y")], "train-genai", c.ALLOW),
        ([("header", "search=n")], "train-genai", c.UNSTATED),
        ([("robots.txt", "train-ai=y"), ("header", "train-ai=n")], "train-ai", c.DENY),  # n wins
        ([("robots.txt", "train-ai=n"), ("header", "train-ai=y")], "train-ai", c.DENY),
        ([], "train-ai", c.UNSTATED),
    ],
)
def test_content_usage_check(sources, category, verdict):
    check = c.check_content_usage(sources, category)
    assert check.verdict == verdict
    if verdict == c.DENY:
        assert check.reason == "consent.content_usage_train_ai_n"


# -- robots.txt -----------------------------------------------------------------------------------------
ROBOTS = """\
User-agent: *
Disallow: /private/
Content-Usage: train-ai=y
Content-Usage: /news/ train-ai=n

User-agent: clipfactory
User-agent: otherbot
Disallow: /no-clipfactory/
Crawl-delay: 2
Content-Usage: /videos/ train-ai=n
Content-Usage: /videos/open/ train-ai=y
"""


def test_robots_group_for_our_token():
    doc = c.RobotsDoc.parse(ROBOTS)
    # Our group replaces the * group (RFC 9309 §2.2.1): /private/ is allowed for us, /no-clipfactory/ is not.
    assert doc.allows("http://h/private/a.mp4", TOKEN)
    assert not doc.allows("http://h/no-clipfactory/a.mp4", TOKEN)
    assert not doc.allows("http://h/private/a.mp4", "somebot")
    assert doc.crawl_delay(TOKEN) == 2.0
    check = doc.check("http://h/no-clipfactory/a.mp4", TOKEN)
    assert check.verdict == c.DENY and check.reason == c.REASON_ROBOTS


def test_robots_content_usage_lines_longest_path_wins():
    doc = c.RobotsDoc.parse(ROBOTS)
    assert doc.content_usage("http://h/videos/x.mp4", TOKEN) == "train-ai=n"
    assert doc.content_usage("http://h/videos/open/x.mp4", TOKEN) == "train-ai=y"
    assert doc.content_usage("http://h/other.mp4", TOKEN) is None  # our group has no pathless rule
    # Another agent reads the * group.
    assert doc.content_usage("http://h/news/1.mp4", "somebot") == "train-ai=n"
    assert doc.content_usage("http://h/a.mp4", "somebot") == "train-ai=y"
    ev = c.ConsentEvaluator()
    checks = ev.before_fetch("http://h/videos/x.mp4", doc, None)
    assert c.first_denial(checks).reason == "consent.content_usage_train_ai_n"


def test_robots_star_group_applies_when_no_group_names_us():
    doc = c.RobotsDoc.parse("User-agent: *\nDisallow: /\n")
    assert not doc.allows("http://h/a.mp4", TOKEN)
    assert doc.allows("http://h/robots.txt", TOKEN)
    doc = c.RobotsDoc.parse("User-agent: otherbot\nDisallow: /\n")
    assert doc.allows("http://h/a.mp4", TOKEN)


def test_robots_status_codes_per_rfc9309():
    assert c.RobotsDoc.from_response(404, b"").allows("http://h/a", TOKEN)  # unavailable: allow
    assert c.RobotsDoc.from_response(403, b"").allows("http://h/a", TOKEN)
    for status in (500, 503, 429, None):  # unreachable: disallow everything
        doc = c.RobotsDoc.from_response(status, b"", error="timeout")
        assert doc.state == "unreachable"
        assert not doc.allows("http://h/a", TOKEN)


def test_malformed_robots_is_recorded_and_lenient():
    body = b"<html><body>Not a robots file</body></html>\nUser-agent: *\nDisalow /x\nDisallow: /y\n\xff\xfe garbage"
    doc = c.RobotsDoc.parse(body)
    assert doc.malformed_lines >= 2
    assert "malformed" in doc.note
    assert not doc.allows("http://h/y/1.mp4", TOKEN)  # the valid rule still counts
    check = doc.check("http://h/z.mp4", TOKEN)
    assert check.verdict == c.ALLOW
    assert check.evidence["malformed_lines"] == doc.malformed_lines


def test_robots_wildcards_and_end_anchor():
    doc = c.RobotsDoc.parse("User-agent: clipfactory\nDisallow: /*.mp4$\nAllow: /ok/*.mp4$\n")
    assert not doc.allows("http://h/a/b.mp4", TOKEN)
    assert doc.allows("http://h/a/b.mp4?x=1", TOKEN)
    assert doc.allows("http://h/ok/b.mp4", TOKEN)  # the longer (more specific) rule wins


# -- TDMRep ---------------------------------------------------------------------------------------------
def test_tdmrep_file_first_matching_rule():
    doc = c.TdmRepDoc.parse(
        json.dumps(
            [
                {"location": "/videos/open/*", "tdm-reservation": 0},
                {"location": "/videos/*", "tdm-reservation": 1, "tdm-policy": "https://h/policy.json"},
                {"location": "/bad"},  # no tdm-reservation: ignored
            ]
        )
    )
    assert doc.state == "ok" and "1 invalid" in doc.note
    assert doc.lookup("http://h/videos/open/a.mp4").reservation == 0
    st = doc.lookup("http://h/videos/a.mp4")
    assert st.reservation == 1 and st.policy == "https://h/policy.json"
    assert doc.lookup("http://h/other.mp4") is None


@pytest.mark.parametrize("body", ["{not json", '{"location": "/"}', "", "\x00\x01"])
def test_tdmrep_invalid_is_no_statement(body):
    doc = c.TdmRepDoc.parse(body)
    assert doc.state == "invalid"
    assert doc.lookup("http://h/a.mp4") is None
    assert c.check_tdm(doc.lookup("http://h/a.mp4")).verdict == c.UNSTATED


def test_tdm_priority_file_header_meta():
    file1 = c.TdmStatement(1, None, "tdmrep.json", "/*")
    file0 = c.TdmStatement(0, None, "tdmrep.json", "/*")
    header0 = c.tdm_from_headers(["0"], [])
    header1 = c.tdm_from_headers(["1"], ["https://h/p"])
    meta0 = c.parse_tdm_meta('<html><head><meta name="tdm-reservation" content="0"></head></html>')
    assert c.check_tdm(file1).verdict == c.DENY
    assert c.check_tdm(file1, header0).verdict == c.ALLOW  # the header beats the file
    assert c.check_tdm(file0, header1).verdict == c.DENY
    assert c.check_tdm(file0, header1).evidence["policy"] == "https://h/p"
    assert c.check_tdm(file1, header1, meta0).verdict == c.ALLOW  # metadata inside the file beats both
    assert c.check_tdm(None, None, None).verdict == c.UNSTATED
    assert c.tdm_from_headers(["yes"], []) is None  # not 0/1: no statement


def test_tdm_meta_parsing():
    html = b"<!doctype html><html><head><META NAME='TDM-Reservation' CONTENT='1'><meta name='tdm-policy' content='https://p'></head>"
    st = c.parse_tdm_meta(html)
    assert st.reservation == 1 and st.policy == "https://p"
    assert c.parse_tdm_meta("<html><meta name='description' content='1'></html>") is None


# -- C2PA -----------------------------------------------------------------------------------------------
def _manifest(label: str, entries: dict) -> dict:
    return {
        "active_manifest": "urn:uuid:1",
        "manifests": {
            "urn:uuid:1": {
                "claim_generator": "test",
                "assertions": [
                    {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created"}]}},
                    {"label": label, "data": {"entries": entries}},
                ],
            },
            "urn:uuid:0": {  # an ingredient's manifest: not the active one
                "assertions": [
                    {
                        "label": "cawg.training-mining",
                        "data": {"entries": {"cawg.ai_training": {"use": "notAllowed"}}},
                    }
                ]
            },
        },
    }


@pytest.mark.parametrize(
    "label, entries, verdict",
    [
        ("cawg.training-mining", {"cawg.ai_training": {"use": "notAllowed"}}, c.DENY),
        ("cawg.training-mining", {"cawg.ai_generative_training": {"use": "constrained"}}, c.DENY),
        ("cawg.training-mining", {"cawg.data_mining": {"use": "notAllowed"}}, c.DENY),
        ("c2pa.training-mining", {"c2pa.ai_training": {"use": "notAllowed"}}, c.DENY),  # the old label
        ("c2pa.training-mining__1", {"c2pa.ai_generative_training": {"use": "notAllowed"}}, c.DENY),
        ("cawg.training-mining", {"cawg.ai_inference": {"use": "notAllowed"}}, c.UNSTATED),  # not training
        (
            "cawg.training-mining",
            {"cawg.ai_training": {"use": "allowed"}, "cawg.ai_generative_training": {"use": "allowed"}},
            c.ALLOW,
        ),
        ("c2pa.actions.v2", {"cawg.ai_training": {"use": "notAllowed"}}, c.UNSTATED),  # another assertion
    ],
)
def test_c2pa_training_mining(label, entries, verdict):
    check = c.check_c2pa(_manifest(label, entries))
    assert check.verdict == verdict
    if verdict == c.DENY:
        assert check.reason == "consent.c2pa_training_not_allowed"


def test_c2pa_no_manifest():
    assert c.check_c2pa(None).verdict == c.UNSTATED


@pytest.mark.shared_data
def test_c2pa_reads_a_manifestless_mp4(shared_data):
    pytest.importorskip("c2pa", reason="the c2pa extra (c2pa-python) is not installed")
    path = shared_data / "media" / "bikes.mp4"
    assert c.read_c2pa_manifest(str(path), "video/mp4") is None
    assert c.check_c2pa(c.read_c2pa_manifest(str(path), "video/mp4")).verdict == c.UNSTATED


def test_c2pa_reads_a_synthetic_mp4_without_manifest(tmp_path):
    pytest.importorskip("c2pa", reason="the c2pa extra (c2pa-python) is not installed")
    from cf_acquire_server import fake_mp4

    p = tmp_path / "x.partial"
    p.write_bytes(fake_mp4(4096))
    assert c.read_c2pa_manifest(str(p), "video/mp4") is None
    p.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\xff" * 100)  # box sizes past the end
    with pytest.raises(Exception, match="(?i)parse|bounds"):
        c.read_c2pa_manifest(str(p), "video/mp4")


def _box(kind: bytes, payload: bytes, large: bool = False) -> bytes:
    import struct

    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_bmff_c2pa_box_scan(tmp_path):
    from cf_acquire_server import fake_mp4

    p = tmp_path / "x.partial"
    p.write_bytes(fake_mp4(50_000))
    assert c.bmff_c2pa_box(str(p)) is False  # walked to the end, no C2PA box
    manifest = _box(b"uuid", c.C2PA_BMFF_UUID + b"\x00" * 4 + b"manifest\x00" + b"jumb" * 8)
    p.write_bytes(fake_mp4(50_000) + manifest)
    assert c.bmff_c2pa_box(str(p)) is True
    p.write_bytes(_box(b"ftyp", b"isom" * 4) + _box(b"uuid", c.C2PA_BMFF_UUID + b"x" * 20, large=True))
    assert c.bmff_c2pa_box(str(p)) is True  # 64-bit box size
    p.write_bytes(_box(b"ftyp", b"isom" * 4) + _box(b"uuid", b"\x01" * 16 + b"x" * 20))
    assert c.bmff_c2pa_box(str(p)) is False  # another uuid box is not C2PA
    p.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\xff" * 100)  # sizes past the end: cannot tell
    assert c.bmff_c2pa_box(str(p)) is None
    p.write_bytes(_box(b"ftyp", b"isom" * 4) + b"\x00\x00")  # a torn header
    assert c.bmff_c2pa_box(str(p)) is None


@pytest.mark.shared_data
def test_bmff_c2pa_box_scan_of_real_media(shared_data):
    assert c.bmff_c2pa_box(str(shared_data / "media" / "bikes.mp4")) is False


# -- sniffing and Retry-After -----------------------------------------------------------------------------
def test_sniff_synthetic_containers():
    assert sniff_container(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 20) == "mp4"
    assert sniff_container(b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 20) == "quicktime"
    assert sniff_container(b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01webm") == "webm"
    assert sniff_container(b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01matroska") == "matroska"
    assert sniff_container(b"RIFF\x00\x00\x00\x00AVI LIST") == "avi"
    assert sniff_container(b"FLV\x01\x05") == "flv"
    assert sniff_container(b"OggS\x00\x02") == "ogg"
    ts = (b"\x47" + b"\x00" * 187) * 3
    assert sniff_container(ts) == "mpeg-ts"
    assert sniff_container(b"<!DOCTYPE html><html>") is None
    assert sniff_container(b"GIF89a") is None
    assert sniff_container(b"\x47" + b"x" * 300) is None  # one sync byte is not a transport stream


@pytest.mark.shared_data
def test_sniff_real_media(shared_data):
    media = shared_data / "media"
    for name, want in [
        ("bikes.mp4", "mp4"),
        ("bbb_5s.mp4", "mp4"),
        ("vtest.avi", "avi"),
        ("Megamind_bugy.avi", "avi"),
    ]:
        p = media / name
        if not p.exists():
            pytest.skip(f"{name} missing from shared data")
        assert sniff_container(p.read_bytes()[:512]) == want, name


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_800_000_000.0
    import email.utils

    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
