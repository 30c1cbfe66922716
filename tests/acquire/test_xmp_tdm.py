"""TDMRep inside the media file: ``tdm:reservation`` in the MP4's XMP packet, the highest-priority statement."""

from __future__ import annotations

import struct

from cf_acquire_server import fake_mp4

from clipfactory.acquire import consent as c

NS = "http://www.w3.org/ns/tdmrep/"


def xmp(reservation: str | None = "1", policy: str | None = None, attribute: bool = False) -> bytes:
    props = ""
    attrs = ""
    if attribute:
        if reservation is not None:
            attrs += f' tdm:reservation="{reservation}"'
        if policy:
            attrs += f' tdm:policy="{policy}"'
    else:
        if reservation is not None:
            props += f"<tdm:reservation>{reservation}</tdm:reservation>"
        if policy:
            props += f"<tdm:policy>{policy}</tdm:policy>"
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:tdm="{NS}"{attrs}>{props}</rdf:Description>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mp4_with_xmp(packet: bytes, size: int = 40_000, seed: int = 1) -> bytes:
    return fake_mp4(size, seed) + box(b"uuid", c.XMP_BMFF_UUID + packet)


def test_parse_element_and_attribute_forms():
    s = c.parse_tdm_xmp(xmp("1", "https://example.org/policy.json"))
    assert (s.reservation, s.policy, s.source) == (1, "https://example.org/policy.json", "xmp")
    assert c.parse_tdm_xmp(xmp("0", attribute=True)).reservation == 0
    assert c.parse_tdm_xmp(xmp("1", "https://p.example", attribute=True)).policy == "https://p.example"


def test_no_statement_when_absent_invalid_or_hostile():
    assert c.parse_tdm_xmp(None) is None
    assert c.parse_tdm_xmp(xmp(None)) is None  # no tdm:reservation
    assert c.parse_tdm_xmp(xmp("yes")) is None  # not 0 or 1
    assert c.parse_tdm_xmp(b"<x:xmpmeta><broken") is None
    other_ns = xmp("1").replace(NS.encode(), b"http://example.org/not-tdmrep/")
    assert c.parse_tdm_xmp(other_ns) is None
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><r xmlns:tdm="http://www.w3.org/ns/tdmrep/">'
        b"<tdm:reservation>&b;</tdm:reservation></r></x:xmpmeta>"
    )
    assert c.parse_tdm_xmp(bomb) is None  # entities are refused (defusedxml)


def test_bmff_scan_finds_xmp_at_top_level_and_in_moov_udta(tmp_path):
    p = tmp_path / "a.partial"
    p.write_bytes(mp4_with_xmp(xmp("1")))
    scan = c.bmff_scan(str(p))
    assert scan.c2pa is False and c.parse_tdm_xmp(scan.xmp).reservation == 1
    # QuickTime keeps XMP in moov/udta/XMP_
    moov = box(b"moov", box(b"mvhd", b"\0" * 100) + box(b"udta", box(b"XMP_", xmp("0"))))
    p.write_bytes(box(b"ftyp", b"qt  \0\0\0\0qt  ") + box(b"mdat", b"\0" * 1000) + moov)
    assert c.parse_tdm_xmp(c.bmff_scan(str(p)).xmp).reservation == 0
    p.write_bytes(fake_mp4(40_000, 2))
    assert c.bmff_scan(str(p)).xmp is None


def test_a_reservation_in_the_file_drops_it_and_keeps_no_bytes(server, fetch, store):
    denied = server.add("/r.mp4", body=mp4_with_xmp(xmp("1", "https://example.org/p.json"), seed=3))
    allowed = server.add("/o.mp4", body=mp4_with_xmp(xmp("0"), seed=4))
    plain = server.add("/p.mp4", body=fake_mp4(40_000, 5))
    outs, _ = fetch([denied, allowed, plain])
    by = {o.final_url: o for o in outs}
    d = by[denied]
    assert d.status == "dropped" and d.reason == c.REASON_TDM and d.blob_uri is None
    (tdm,) = [ch for ch in d.evidence.consent if ch["signal"] == "tdmrep" and ch["phase"] == "content"]
    assert tdm["verdict"] == "deny"
    assert [s["source"] for s in tdm["evidence"]["statements"]] == ["xmp"]
    assert by[allowed].status == "kept"
    assert any(
        ch["signal"] == "tdmrep" and ch["phase"] == "content" and ch["verdict"] == "allow"
        for ch in by[allowed].evidence.consent
    )
    assert by[plain].status == "kept"
    assert not any(ch["signal"] == "tdmrep" and ch["phase"] == "content" for ch in by[plain].evidence.consent)
    kept = {o.content_sha256 for o in outs if o.status == "kept"}
    on_disk = {p.name for p in (store.root / "blobs").glob("*/*/*")}
    assert on_disk == kept  # the reserved file's bytes are gone
    assert not any((store.root / "incoming").iterdir())
