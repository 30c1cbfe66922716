"""The C2PA training-mining check on a genuinely signed MP4, from the reader up to the fetcher's store."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("c2pa", reason="the c2pa extra (c2pa-python) is not installed")
pytest.importorskip("cryptography", reason="cryptography is needed to make the signing certificates")

from cf_acquire_helpers import leftovers  # noqa: E402

from clipfactory.acquire import consent as c  # noqa: E402
from clipfactory.records import SourceRecord  # noqa: E402


def _load_fixtures():
    name = "cf_acquire_c2pa_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("c2pa_fixtures.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fx = _load_fixtures()

DENIES = {"ai_generative_training": "notAllowed", "ai_training": "constrained", "data_mining": "allowed"}
CONSTRAINED = {"ai_generative_training": "allowed", "ai_training": "constrained", "data_mining": "allowed"}
ALLOWS = {"ai_generative_training": "allowed", "ai_training": "allowed", "data_mining": "allowed"}
LABELS = [fx.TRAINING_MINING, fx.CAWG_TRAINING_MINING]


@pytest.fixture(scope="module")
def source_mp4(tmp_path_factory) -> Path:
    """A small H.264 MP4 written here with PyAV: a second of 64x48 frames at 25 fps (a few KB)."""
    path = tmp_path_factory.mktemp("c2pa-source") / "source.mp4"
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=25)
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        for i in range(25):
            img = np.full((48, 64, 3), (i * 9) % 256, np.uint8)
            img[:, : 2 + 2 * i] = 255  # a bar that grows: the frames differ
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def signed(source_mp4, tmp_path_factory):
    """``signed(entries, label) -> Path``: each variant signed once per module."""
    made: dict[tuple, Path] = {}
    folder = tmp_path_factory.mktemp("c2pa-signed")

    def make(entries: dict[str, str], label: str = fx.TRAINING_MINING) -> Path:
        key = (label, tuple(sorted(entries.items())))
        if key not in made:
            made[key] = fx.signed_mp4(source_mp4, folder / f"signed-{len(made)}.mp4", entries, label=label)
        return made[key]

    return make


def _active(store: dict) -> dict:
    return store["manifests"][store["active_manifest"]]


# -- the file and its manifest ---------------------------------------------------------------------------
def test_the_manifest_sits_in_a_top_level_c2pa_uuid_box(signed, source_mp4):
    path = signed(DENIES)
    before = [b[0] for b in fx.top_level_boxes(source_mp4)]
    boxes = fx.top_level_boxes(path)
    c2pa_boxes = [b for b in boxes if b[0] == "uuid" and b[3] == fx.C2PA_UUID]
    assert "uuid" not in before and len(c2pa_boxes) == 1
    assert [b[0] for b in boxes if b not in c2pa_boxes] == before  # the source's boxes, all kept
    assert boxes[0][0] == "ftyp" and c2pa_boxes[0][1] < next(b[1] for b in boxes if b[0] == "mdat")
    with open(path, "rb") as fh:  # full-box header, then the purpose string
        fh.seek(c2pa_boxes[0][1] + 8 + 16)
        assert fh.read(13) == b"\x00\x00\x00\x00manifest\x00"


@pytest.mark.parametrize("label", LABELS)
def test_the_reader_returns_the_signed_store(signed, label):
    store = c.read_c2pa_manifest(str(signed(DENIES, label)), "video/mp4")
    assert store is not None
    manifest = _active(store)
    # Really signed, by our throwaway chain: the signature validates, the signer is simply not trusted.
    assert manifest["signature_info"]["alg"].lower() == "es256"
    assert manifest["signature_info"]["issuer"] == "clipfactory tests"
    codes = {s["code"] for s in store.get("validation_status", [])}
    assert "signingCredential.untrusted" in codes
    assert not any(code.startswith(("claimSignature.", "assertion.")) for code in codes)
    success = {s["code"] for s in store["validation_results"]["activeManifest"]["success"]}
    assert {"claimSignature.validated", "assertion.bmffHash.match"} <= success
    (assertion,) = c.training_mining_assertions(store)
    assert assertion["label"] == label
    namespace = label.split(".", 1)[0]
    assert assertion["data"]["entries"][f"{namespace}.ai_generative_training"] == {"use": "notAllowed"}


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize(
    "entries, verdict, value",
    [
        (DENIES, c.DENY, "ai_generative_training=notAllowed"),
        (CONSTRAINED, c.DENY, "ai_training=constrained"),
        (ALLOWS, c.ALLOW, None),
    ],
    ids=["notAllowed", "constrained", "allowed"],
)
def test_check_c2pa_on_the_signed_file(signed, label, entries, verdict, value):
    check = c.check_c2pa(c.read_c2pa_manifest(str(signed(entries, label)), "video/mp4"))
    assert check.verdict == verdict
    if verdict == c.DENY:
        assert check.reason == c.REASON_C2PA == "consent.c2pa_training_not_allowed"
        assert check.value == f"{label.split('.', 1)[0]}.{value}"
    else:
        assert check.reason is None
        assert {d["use"] for d in check.evidence["decisions"]} == {"allowed"}


def test_the_reader_finds_the_format_from_the_file_name(signed):
    check = c.check_c2pa(c.read_c2pa_manifest(str(signed(DENIES))))
    assert check.verdict == c.DENY


# -- end to end through the fetcher ----------------------------------------------------------------------
def _media_blobs(store) -> list[str]:
    from clipfactory.acquire.http import sniff_container

    out = []
    for uri in store.iter_blobs():
        with open(store.path_of(uri), "rb") as fh:
            if sniff_container(fh.read(512)) is not None:
                out.append(uri)
    return out


def _c2pa_checks(out) -> list[dict]:
    return [ch for ch in out.evidence.consent if ch["signal"] == "c2pa"]


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("entries", [DENIES, CONSTRAINED], ids=["notAllowed", "constrained"])
def test_fetcher_drops_a_signed_file_and_keeps_no_bytes(server, fetch, store, signed, label, entries):
    body = signed(entries, label).read_bytes()
    sha = hashlib.sha256(body).hexdigest()
    url = server.add("/v/signed.mp4", body=body, etag=f'"{sha[:16]}"')
    (out,), _ = fetch([url], c2pa="require")
    assert out.status == "dropped", (out.reason, out.error)
    assert out.reason == "consent.c2pa_training_not_allowed"
    assert out.blob_uri is None
    assert server.hits["/v/signed.mp4"] == 1  # downloaded whole, then judged
    # The bytes of a denied file are never kept: no blob under its hash, no media blob, nothing in incoming/.
    assert not store.exists(sha)
    assert _media_blobs(store) == []
    assert leftovers(store) == []
    (check,) = _c2pa_checks(out)
    assert check["phase"] == "content" and check["verdict"] == "deny"
    assert check["reason"] == "consent.c2pa_training_not_allowed"
    assert check["value"].endswith(("=notAllowed", "=constrained"))
    assert check["evidence"]["manifest"] is True
    assert [a["label"] for a in check["evidence"]["assertions"]] == [label]
    # ... and the stage result carries it as JSON detail.
    result = out.to_result(SourceRecord(source_id="url:0", platform="web", url=url))
    assert result.status == "dropped" and result.reason == "consent.c2pa_training_not_allowed"
    recorded = [ch for ch in json.loads(result.detail)["fetch"]["consent"] if ch["signal"] == "c2pa"]
    assert [(ch["verdict"], ch["reason"]) for ch in recorded] == [
        ("deny", "consent.c2pa_training_not_allowed")
    ]


@pytest.mark.parametrize("label", LABELS)
def test_fetcher_keeps_a_signed_file_that_allows_training(server, fetch, store, signed, label):
    body = signed(ALLOWS, label).read_bytes()
    sha = hashlib.sha256(body).hexdigest()
    url = server.add("/v/signed.mp4", body=body, etag=f'"{sha[:16]}"')
    (out,), _ = fetch([url], c2pa="require")
    assert out.status == "kept", (out.reason, out.error)
    assert out.content_sha256 == sha and out.container == "mp4"
    assert store.exists(sha) and store.path_of(out.blob_uri).read_bytes() == body
    assert leftovers(store) == []
    (check,) = _c2pa_checks(out)
    assert check["phase"] == "content" and check["verdict"] == "allow" and check["reason"] is None
