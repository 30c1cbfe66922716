"""The web UI's security cases, through FastAPI's TestClient: files only by a hash the catalog references,
operator routes closed without a session, CSRF on every form, rate limits, cookie flags, headers, no stack
traces, upload limits with the temporary file gone on every path, and --public-only."""

from __future__ import annotations

import asyncio
import http.client
import os
import re

import pytest

from .conftest import TOKEN, Server

fastapi = pytest.importorskip("fastapi", reason="the web UI needs the [web] extra")
from fastapi.testclient import TestClient  # noqa: E402

from clipfactory.web import WebConfig, create_app  # noqa: E402
from clipfactory.web.uploads import UploadError, received_upload, sniff_video  # noqa: E402

pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


@pytest.fixture(scope="module")
def tmp_uploads(tmp_path_factory):
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="module")
def app(world, tmp_uploads):
    return create_app(
        world.settings,
        WebConfig(
            operator_token=TOKEN,
            tmp_dir=str(tmp_uploads),
            max_upload_bytes=2 * 1024 * 1024,
            login_limit=(1000, 60.0),
        ),
    )


def _client(app, host="127.0.0.1", scheme="http"):
    return TestClient(
        app, base_url=f"{scheme}://{host}", raise_server_exceptions=False, follow_redirects=False
    )


def _csrf(client) -> str:
    r = client.get("/")
    return re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)


def _login(app, name="olga"):
    c = _client(app)
    r = c.post("/operator/login", data={"csrf": _csrf(c), "name": name, "token": TOKEN})
    assert r.status_code == 303, r.text
    return c


def _sha(uri: str) -> str:
    return uri.rsplit(":", 1)[-1]


def _secret_outside(world):
    p = world.root / "secret.txt"
    p.write_text("secret outside the store")
    return p


TRAVERSALS = [
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "..%252f..%252fetc%252fpasswd",
    "%2fetc%2fpasswd",
    "/etc/passwd",
    "..",
    "%2e%2e",
    "....//....//etc/passwd",
]


@pytest.fixture(scope="module")
def server(app):
    with Server(app) as srv:
        yield srv


def _raw_get(server, path: str, cookie: str | None = None) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (an HTTP client library would resolve ``..`` before sending)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        if cookie:
            conn.putheader("Cookie", cookie)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.mark.parametrize("prefix", ["/thumb/", "/operator/blob/", "/static/", "/transparency/b-v1/"])
def test_traversal_and_absolute_paths_are_404(app, world, server, prefix):
    c = _login(app)
    cookie = f"cf_session={c.cookies.get('cf_session')}"
    secret = _secret_outside(world)
    for t in TRAVERSALS + [str(secret), str(secret).lstrip("/"), str(world.store.root / "blobs")]:
        status, body = _raw_get(server, prefix + t, cookie)
        assert status == 404, (prefix, t, status)
        assert b"secret outside" not in body and b"root:" not in body


def test_only_blobs_the_catalog_references_are_served(app, world):
    c = _login(app)
    a, a_clips = world.sources["a"]
    thumb, clip = _sha(a_clips[0].thumb_uri), _sha(a_clips[0].blob_uri)
    r = c.get(f"/thumb/{thumb}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == world.store.path(thumb).read_bytes()
    # a clip's media is for operators only; the source's media and its fingerprint blob are never served
    assert c.get(f"/thumb/{clip}").status_code == 404
    assert c.get(f"/operator/blob/{clip}").status_code == 200
    for uri in (a.blob_uri, a.fingerprint_uri, a.analysis_uri):
        assert world.store.path(_sha(uri)).exists()
        assert c.get(f"/thumb/{_sha(uri)}").status_code == 404
        assert c.get(f"/operator/blob/{_sha(uri)}").status_code == 404
    # a hash in another spelling is not a hash
    for bad in (thumb.upper(), thumb[:-1], thumb + "0", f"blob:sha256:{thumb}", f"sha256:{thumb}"):
        assert c.get(f"/thumb/{bad}").status_code == 404


def test_a_blob_that_is_a_symlink_is_not_followed(app, world):
    c = _login(app)
    _b, b_clips = world.sources["b"]
    sha = _sha(b_clips[-1].blob_uri)
    path = world.store.path(sha)
    kept = path.with_name(path.name + ".kept")
    path.rename(kept)
    try:
        os.symlink(_secret_outside(world), path)
        r = c.get(f"/operator/blob/{sha}")
        assert r.status_code == 404 and "secret outside" not in r.text
    finally:
        path.unlink()
        kept.rename(path)
    assert c.get(f"/operator/blob/{sha}").status_code == 200


def test_clip_media_honours_http_range(app, world):
    c = _login(app)
    sha = _sha(world.sources["a"][1][0].blob_uri)
    data = world.store.path(sha).read_bytes()
    r = c.get(f"/operator/blob/{sha}", headers={"Range": "bytes=10-99"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 10-99/{len(data)}"
    assert r.content == data[10:100]
    r = c.get(f"/operator/blob/{sha}", headers={"Range": "bytes=-16"})
    assert r.status_code == 206 and r.content == data[-16:]
    assert c.get(f"/operator/blob/{sha}", headers={"Range": f"bytes={len(data)}-"}).status_code == 416


OPERATOR_GETS = [
    "/operator",
    "/operator/clips",
    "/operator/search?q=x",
    "/operator/requests",
    "/operator/requests/tr-x",
]


def test_operator_routes_refuse_without_a_session(app, world):
    c = _client(app)
    clip = world.sources["a"][1][0]
    for path in OPERATOR_GETS + [f"/operator/clips/{clip.clip_id}", f"/operator/blob/{_sha(clip.blob_uri)}"]:
        r = c.get(path)
        assert r.status_code == 401, path
        assert clip.source_id not in r.text
    csrf = _csrf(c)
    for action in ("approve", "reject", "info"):
        assert c.post(f"/operator/requests/tr-x/{action}", data={"csrf": csrf}).status_code == 401
    # a forged session cookie is no session
    c.cookies.set("cf_session", "forged")
    assert c.get("/operator").status_code == 401


def test_every_form_needs_its_csrf_token(app, world):
    c = _login(app)
    assert c.get("/operator").status_code == 200
    for path, data in [
        ("/operator/requests/tr-x/reject", {"note": "n"}),
        ("/operator/logout", {}),
        (
            "/request",
            {"url": "https://example.org/b", "contact": "c", "relationship": "owner", "statement": "s"},
        ),
        ("/lookup/url", {"url": "https://example.org/b"}),
    ]:
        for token in (None, "wrong"):
            r = c.post(path, data={**data, **({"csrf": token} if token else {})})
            assert r.status_code == 403, (path, token, r.status_code)
    anon = _client(app)
    anon.get("/")
    r = anon.post("/operator/login", data={"name": "x", "token": TOKEN})
    assert r.status_code == 403 and "cf_session" not in r.cookies


def test_login_cookies_and_rate_limit(world):
    # four attempts a minute; every TestClient comes from the same address
    app = create_app(world.settings, WebConfig(operator_token=TOKEN, login_limit=(4, 60.0)))
    local = _client(app)
    r = local.post("/operator/login", data={"csrf": _csrf(local), "name": "olga", "token": TOKEN})
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("cf_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP on localhost
    # another host: Secure even where the request came as plain HTTP (a proxy in front ends TLS)
    assert "Secure" in _client(app, host="clips.example.org").get("/").headers["set-cookie"]
    remote = _client(app, host="clips.example.org", scheme="https")
    csrf = _csrf(remote)
    for _ in range(2):
        assert (
            remote.post("/operator/login", data={"csrf": csrf, "name": "x", "token": "wrong"}).status_code
            == 401
        )
    r = remote.post("/operator/login", data={"csrf": csrf, "name": "olga", "token": TOKEN})
    assert r.status_code == 303
    assert "Secure" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
    # the fifth attempt from this address within the minute is refused, even with the right token
    remote.cookies.delete("cf_session")
    r = remote.post("/operator/login", data={"csrf": csrf, "name": "olga", "token": TOKEN})
    assert r.status_code == 429 and "cf_session" not in r.headers.get("set-cookie", "")


def test_no_token_configured_refuses_every_login(world, monkeypatch):
    monkeypatch.delenv("CLIPFACTORY_WEB_TOKEN", raising=False)
    app = create_app(world.settings, WebConfig())
    c = _client(app)
    csrf = _csrf(c)
    for token in ("", "None", "null"):
        assert c.post("/operator/login", data={"csrf": csrf, "name": "x", "token": token}).status_code == 401


def test_headers_on_every_answer_and_no_inline_script(app, world):
    c = _login(app)
    clip = world.sources["a"][1][0]
    for path in [
        "/",
        "/request",
        "/transparency",
        "/nope",
        "/operator",
        "/operator/clips",
        f"/operator/clips/{clip.clip_id}",
        "/operator/requests",
        "/static/style.css",
    ]:
        r = c.get(path)
        csp = r.headers["content-security-policy"]
        script_src = re.search(r"script-src ([^;]+)", csp).group(1)
        assert "unsafe-inline" not in script_src and "unsafe-eval" not in script_src, path
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        if r.headers["content-type"].startswith("text/html"):
            assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), path
            assert not re.search(r"\son[a-z]+=", r.text), path  # no inline event handlers


def test_no_stack_trace_in_an_error(app, monkeypatch):
    import clipfactory.fingerprints.requests as requests_mod

    def broken(*a, **k):
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(requests_mod, "get_request", broken)
    r = _client(app).get("/request/tr-anything")
    assert r.status_code == 500
    assert "internal detail" not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
    assert r.headers["x-content-type-options"] == "nosniff"


def test_public_only_serves_only_the_public_pages(world):
    app = create_app(world.settings, WebConfig(public_only=True, operator_token=TOKEN))
    c = _client(app)
    assert c.get("/").status_code == 200 and c.get("/transparency").status_code == 200
    assert "/operator" not in c.get("/").text
    for path in OPERATOR_GETS + ["/operator/login"]:
        assert c.get(path).status_code == 404, path
    assert c.post("/operator/login", data={"csrf": _csrf(c), "name": "x", "token": TOKEN}).status_code in (
        404,
        405,
    )


# -- uploads -----------------------------------------------------------------------------------------------
def _post_file(client, name, data: bytes, csrf: str | None):
    return client.post(
        "/lookup", data={"csrf": csrf} if csrf else {}, files={"file": (name, data, "video/mp4")}
    )


def test_uploads_are_limited_sniffed_and_always_deleted(app, world, tmp_uploads):
    c = _client(app)
    csrf = _csrf(c)
    video = world.files["excerpt"].read_bytes()
    cases = [
        ("too large", b"\x00\x00\x00\x18ftypisom" + os.urandom(3 * 1024 * 1024), csrf, 413),
        ("not a video", b"<html><script>alert(1)</script></html>" * 100, csrf, 415),
        ("an image", bytes.fromhex("ffd8ffe000104a464946") + b"\x00" * 1000, csrf, 415),
        ("no csrf", video, None, 403),
        ("wrong csrf", video, "forged", 403),
        ("empty", b"", csrf, 400),
        ("sniffs as mp4 but is not", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 5000, csrf, 400),
    ]
    for what, data, token, status in cases:
        r = _post_file(c, "x.mp4", data, token)
        assert r.status_code == status, (what, r.status_code, r.text[-300:])
        assert "Traceback" not in r.text and str(tmp_uploads) not in r.text
        assert list(tmp_uploads.iterdir()) == [], what
    r = _post_file(c, "excerpt.mp4", video, csrf)
    assert r.status_code == 200 and 'id="verdict"' in r.text and "Match" in r.text
    assert list(tmp_uploads.iterdir()) == []


def test_the_size_limit_is_checked_while_the_body_streams(tmp_path):
    consumed = []

    async def body():
        for i in range(1000):  # 1000 chunks of 64 KB: 62.5 MB if it were all read
            consumed.append(i)
            yield (
                b'--BOUND\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
                if i == 0
                else b""
            ) + b"\x00" * 65536

    async def run():
        async with received_upload(
            "multipart/form-data; boundary=BOUND", None, body(), limit=256 * 1024, tmp_dir=tmp_path
        ):
            pass

    with pytest.raises(UploadError) as e:
        asyncio.run(run())
    assert e.value.status == 413
    assert len(consumed) <= 6  # stopped at the limit (4 chunks) plus the one that crossed it
    assert list(tmp_path.iterdir()) == []


def test_sniffing_knows_video_containers():
    assert sniff_video(b"\x00\x00\x00\x20ftypmp42" + b"\x00" * 20) == "mp4"
    assert sniff_video(b"\x1a\x45\xdf\xa3" + b"\x00" * 20) == "matroska"
    assert sniff_video(b"RIFF\x00\x00\x00\x00AVI LIST") == "avi"
    assert sniff_video(b"GIF89a" + b"\x00" * 20) is None
    assert sniff_video(b"%PDF-1.7" + b"\x00" * 20) is None


# -- requests, lookups by URL and the transparency page -----------------------------------------------------
def test_takedown_request_by_url_rejected_and_info_requested_with_who_and_when(app, world):
    c = _client(app)
    csrf = _csrf(c)
    r = c.post(
        "/request",
        data={
            "csrf": csrf,
            "url": "https://example.org/b",
            "contact": "bob@example.org",
            "relationship": "owner",
            "statement": "This is my video.",
        },
    )
    assert r.status_code == 303
    rid = r.headers["location"].rsplit("/", 1)[-1]
    assert re.fullmatch(r"tr-[A-Za-z0-9_-]{16}", rid)
    page = c.get(f"/request/{rid}")
    assert 'id="request-status">pending<' in page.text
    op = _login(app, name="olga")
    assert rid in op.get("/operator/requests?status=pending").text
    detail = op.get(f"/operator/requests/{rid}").text
    ocsrf = re.search(r'name="csrf" value="([^"]+)"', detail).group(1)
    assert (
        op.post(f"/operator/requests/{rid}/info", data={"csrf": ocsrf, "note": "Which upload?"}).status_code
        == 200
    )
    assert "The operator asks: Which upload?" in c.get(f"/request/{rid}").text
    r = op.post(f"/operator/requests/{rid}/reject", data={"csrf": ocsrf, "note": "Not the rights holder."})
    assert r.status_code == 200 and 'id="request-status">rejected<' in r.text
    status = c.get(f"/request/{rid}").text
    assert "rejected" in status and "Not the rights holder." in status and "olga" not in status
    rows = world.catalog.query(
        "SELECT action, actor, note, acted_at FROM takedown_request_actions WHERE request_id = ? ORDER BY acted_at",
        [rid],
    )
    assert [(x["action"], x["actor"]) for x in rows] == [
        ("submitted", "requester"),
        ("info_requested", "olga"),
        ("rejected", "olga"),
    ]
    assert all(x["acted_at"] is not None for x in rows)
    # decided once: a second decision is refused, and the source is still there
    assert op.post(f"/operator/requests/{rid}/approve", data={"csrf": ocsrf}).status_code == 400
    assert world.catalog.scalar("SELECT count(*) FROM sources WHERE url = 'https://example.org/b'") == 1
    assert c.get("/request/tr-doesnotexist0000").status_code == 404


def test_request_for_a_url_the_catalog_does_not_hold_is_refused(app):
    c = _client(app)
    r = c.post(
        "/request",
        data={
            "csrf": _csrf(c),
            "url": "https://example.org/never",
            "contact": "x",
            "relationship": "owner",
            "statement": "s",
        },
    )
    assert r.status_code == 400 and "no source with this URL" in r.text


def test_takedown_requests_are_rate_limited_per_address(world):
    app = create_app(world.settings, WebConfig(operator_token=TOKEN, request_limit=(2, 3600.0)))
    c = _client(app)
    csrf = _csrf(c)
    data = {
        "csrf": csrf,
        "url": "https://example.org/never",
        "contact": "x",
        "relationship": "owner",
        "statement": "s",
    }
    assert [c.post("/request", data=data).status_code for _ in range(3)] == [400, 400, 429]


def test_lookup_by_url(app, world):
    c = _client(app)
    csrf = _csrf(c)
    r = c.post("/lookup/url", data={"csrf": csrf, "url": "https://example.org/a"})
    assert r.status_code == 200 and "Match" in r.text and world.sources["a"][0].source_id in r.text
    assert world.build["build_id"] in r.text
    r = c.post("/lookup/url", data={"csrf": csrf, "url": "https://example.org/elsewhere"})
    assert r.status_code == 200 and "No match" in r.text and "holds no source at this URL" in r.text


def test_transparency_lists_builds_and_serves_only_their_reports(app, world):
    c = _client(app)
    r = c.get("/transparency")
    assert world.build["build_id"] in r.text
    bid = world.build["build_id"]
    for role in ("datasheet", "build.json", "..%2fbuild.json", "index"):
        assert c.get(f"/transparency/{bid}/{role}").status_code == 404


def test_dashboard_counts_and_clip_filters(app, world):
    c = _login(app)
    page = c.get("/operator").text
    runs = re.search(r'<table id="runs">(.*?)</table>', page, re.S).group(1)
    # the run of the fixture, one stage: 2 kept, 1 dropped, 1 failed
    assert re.search(r"<td>finished</td>.*?<td>quality.filter</td><td>2</td><td>1</td><td>1</td>", runs, re.S)
    failures = re.search(r'<table id="failures">(.*?)</table>', page, re.S).group(1)
    assert "<td>quality.filter</td><td>dropped</td><td>quality.too_dark</td><td>1</td>" in failures
    assert "<td>quality.filter</td><td>failed</td><td>media.decode</td><td>1</td>" in failures
    b_clips = world.sources["b"][1]
    every = c.get("/operator/clips").text
    assert "Clips <small>(4)</small>" in every
    dropped = c.get("/operator/clips?drop_reason=quality").text
    assert "Clips <small>(1)</small>" in dropped and f"/operator/clips/{b_clips[0].clip_id}" in dropped
    assert c.get(f"/operator/clips?build={world.build['build_id']}").text.count('class="tile"') == 4
    assert "Clips <small>(0)</small>" in c.get("/operator/clips?build=nope-v9").text
    # every clip of the fixture has sharpness 100
    assert "Clips <small>(4)</small>" in c.get("/operator/clips?min_sharpness=99&max_sharpness=101").text
    assert "Clips <small>(0)</small>" in c.get("/operator/clips?min_sharpness=100.5").text
    assert (
        "Clips <small>(4)</small>" in c.get("/operator/clips?min_sharpness=abc").text
    )  # not a number: no filter


def test_disclosure_documents_are_served_sandboxed(app, world):
    from clipfactory.disclosures import REPORTS, report

    bid = world.build["build_id"]
    report(world.catalog, world.settings, bid)
    c = _client(app)
    page = c.get("/transparency").text
    for role in REPORTS:
        assert f'href="/transparency/{bid}/{role}"' in page
    r = c.get(f"/transparency/{bid}/datasheet")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.content == (world.root / "builds" / "b" / "v1" / "datasheet.html").read_bytes()
    # the datasheet inlines its chart library: an opaque sandboxed origin, not the site's policy
    csp = r.headers["content-security-policy"]
    assert csp.startswith("sandbox allow-scripts;") and "allow-same-origin" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    r = c.get(f"/transparency/{bid}/croissant")
    assert r.status_code == 200 and r.json()["name"]
    assert c.get(f"/transparency/{bid}/build").status_code == 404


def test_serve_command(world, tmp_path, monkeypatch):
    """The command's wiring: its options reach the app and uvicorn (the server itself runs in the browser
    tests and in bench/bench_web.py, which starts `clipfactory serve`)."""
    import uvicorn
    from typer.testing import CliRunner

    from clipfactory.cli.app import app as cli_app

    missing = CliRunner().invoke(cli_app, ["serve", "--catalog", str(tmp_path / "none.duckdb")])
    assert missing.exit_code == 1 and "no catalog at" in missing.output
    assert not (tmp_path / "none.duckdb").exists()
    ran = {}
    monkeypatch.setattr(uvicorn, "run", lambda web, **kw: ran.update(app=web, **kw))
    monkeypatch.delenv("CLIPFACTORY_WEB_TOKEN", raising=False)
    args = [
        "serve",
        "--public-only",
        "--host",
        "0.0.0.0",
        "--port",
        "9999",
        "--max-upload-mb",
        "1",
        "--catalog",
        str(world.catalog.path),
        "--store",
        str(world.store.root),
    ]
    res = CliRunner().invoke(cli_app, args)
    assert res.exit_code == 0, res.output
    assert (ran["host"], ran["port"], ran["proxy_headers"], ran["server_header"]) == (
        "0.0.0.0",
        9999,
        True,
        False,
    )
    c = _client(ran["app"])
    r = c.get("/")
    assert r.status_code == 200 and "Was my work used?" in r.text and "up to 1 MB" in r.text
    assert c.get("/operator/login").status_code == 404
    big = b"\x00\x00\x00\x18ftypisom" + b"\x00" * (1024 * 1024 + 10)
    assert _post_file(c, "big.mp4", big, _csrf(c)).status_code == 413
    # without --public-only and without a token: the operator pages exist and refuse every login
    res = CliRunner().invoke(cli_app, [a for a in args if a != "--public-only"])
    assert res.exit_code == 0 and "CLIPFACTORY_WEB_TOKEN is not set" in res.output
    c = _client(ran["app"])
    assert c.get("/operator/login").status_code == 200
    assert c.post("/operator/login", data={"csrf": _csrf(c), "name": "x", "token": ""}).status_code == 401


def test_what_visitors_send_is_escaped(app, world):
    c = _client(app)
    csrf = _csrf(c)
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    r = c.post("/lookup/url", data={"csrf": csrf, "url": "https://example.org/" + evil})
    assert r.status_code == 200 and "<script>alert" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;" in r.text
    r = _post_file(c, evil + ".mp4", world.files["unrelated"].read_bytes(), csrf)
    # the file's name is shown (its last path part: "script><img ...>.mp4"), escaped
    assert r.status_code == 200 and "<img src=x" not in r.text and "&lt;img src=x" in r.text
    r = c.post(
        "/request",
        data={
            "csrf": csrf,
            "url": "https://example.org/b",
            "contact": evil,
            "relationship": "other",
            "statement": evil,
        },
    )
    rid = r.headers["location"].rsplit("/", 1)[-1]
    op = _login(app)
    detail = op.get(f"/operator/requests/{rid}").text
    assert "<script>alert" not in detail and detail.count("&lt;script&gt;") >= 2
    assert "<script>alert" not in op.get("/operator/requests").text
    ocsrf = re.search(r'name="csrf" value="([^"]+)"', detail).group(1)
    op.post(f"/operator/requests/{rid}/reject", data={"csrf": ocsrf, "note": "test of escaping"})


def test_a_source_url_that_is_not_a_web_address_is_no_link(app, world):
    from clipfactory.catalog import upsert_records
    from clipfactory.records import SourceRecord

    bad = SourceRecord(
        source_id="url:badlink",
        platform="web",
        url="javascript:alert(1)",
        title="bad link",
        content_license="CC-BY-4.0",
        duration_ms=1000,
    )
    with world.catalog.write() as con:
        upsert_records(con, [bad])
    try:
        c = _client(app)
        r = c.post("/lookup/url", data={"csrf": _csrf(c), "url": "javascript:alert(1)"})
        assert r.status_code == 200 and "url:badlink" in r.text
        assert 'href="javascript:' not in r.text and "from javascript:alert(1)" in r.text
        r = c.post("/lookup/url", data={"csrf": _csrf(c), "url": "https://example.org/a"})
        assert 'href="https://example.org/a"' in r.text
    finally:
        with world.catalog.write() as con:
            con.execute("DELETE FROM sources WHERE source_id = 'url:badlink'")


def test_dashboard_reloads_while_a_run_is_running(app, world):
    from clipfactory.catalog.outcomes import finish_run, outcome_row, start_run, write_outcomes

    c = _login(app)
    assert 'http-equiv="refresh"' not in c.get("/operator").text
    with world.catalog.write() as con:
        run_id = start_run(con, "run", "local")  # this process: alive, so the run stays running
        write_outcomes(con, [outcome_row(run_id, "media.cut", 1, "h", "item-1", "kept")])
    page = c.get("/operator").text
    assert '<meta http-equiv="refresh" content="5">' in page
    assert re.search(rf"<code>{run_id}</code></td><td>run</td><td>running</td>", page)
    assert "<td>media.cut</td><td>kept</td><td></td><td>1</td>" in page  # its stage counts, open
    with world.catalog.write() as con:
        finish_run(con, run_id, "finished")
    assert 'http-equiv="refresh"' not in c.get("/operator").text


def test_fingerprinting_past_the_time_limit_answers_503_and_deletes_the_file(world, tmp_path):
    app = create_app(
        world.settings, WebConfig(operator_token=TOKEN, tmp_dir=str(tmp_path), lookup_timeout_s=0.0001)
    )
    c = _client(app)
    r = _post_file(c, "excerpt.mp4", world.files["excerpt"].read_bytes(), _csrf(c))
    assert r.status_code == 503 and "longer than" in r.text
    assert list(tmp_path.iterdir()) == []


def test_request_errors_name_the_field(world):
    from clipfactory.errors import ConfigError, NotFoundError
    from clipfactory.fingerprints.requests import get_request, reject_request, submit_request

    ok = {
        "contact": "c@example.org",
        "relationship": "owner",
        "statement": "mine",
        "work_url": "https://example.org/b",
    }
    for change, item in [
        ({"relationship": "cousin"}, "relationship"),
        ({"contact": "  "}, "contact"),
        ({"statement": ""}, "statement"),
        ({"statement": "x" * 4001}, "statement"),
        ({"work_url": None}, "work"),
    ]:
        with pytest.raises(ConfigError) as e:
            submit_request(world.catalog, **{**ok, **change})
        assert e.value.item == item
    # a lookup answer without a confident match names nothing to take down
    with pytest.raises(NotFoundError):
        submit_request(
            world.catalog,
            **{**ok, "work_url": None},
            lookup_result={"matches": [{"confidence": 0.2, "source_id": "x"}]},
        )
    r = submit_request(world.catalog, **ok)
    assert r["status"] == "pending" and r["source_ids"] == [world.sources["b"][0].source_id]
    with pytest.raises(ConfigError):
        reject_request(world.catalog, request_id=r["request_id"], actor="olga", reason=" ")
    assert get_request(world.catalog, r["request_id"])["status"] == "pending"
    reject_request(world.catalog, request_id=r["request_id"], actor="olga", reason="test")


def test_error_pages_show_no_server_paths(app, world, monkeypatch):
    import clipfactory.fingerprints.requests as requests_mod
    from clipfactory.errors import CatalogError, NotFoundError

    where = str(world.catalog.path)

    def read_only(*a, **k):
        raise CatalogError(
            f"the catalog {where} is read-only: the file is not writable", fix=f"chmod u+w {where}"
        )

    monkeypatch.setattr(requests_mod, "submit_request", read_only)
    c = _client(app)
    r = c.post(
        "/request",
        data={
            "csrf": _csrf(c),
            "url": "https://example.org/b",
            "contact": "x",
            "relationship": "owner",
            "statement": "s",
        },
    )
    assert r.status_code == 400 and "cannot be read or written right now" in r.text
    assert where not in r.text and str(world.root) not in r.text

    def store_gone(*a, **k):
        raise NotFoundError(
            f"fingerprints of 2 sources cannot be searched: they are not in the store {world.store.root}",
            item="sources",
            fix=f"give --store {world.store.root}/../elsewhere",
        )

    import clipfactory.fingerprints.lookup as lookup_mod

    monkeypatch.setattr(lookup_mod, "lookup", store_gone)
    r = _post_file(c, "x.mp4", world.files["excerpt"].read_bytes(), _csrf(c))
    assert r.status_code == 400 and "cannot be searched" in r.text
    assert str(world.root) not in r.text and "[a server path]" in r.text


def test_the_clip_browser_filters_by_the_sources_category(app, world):
    """A manifest label the taxonomy maps ("Drone" -> drone-aerial) puts a source's clips in that category."""
    c = _login(app)
    b_source, b_clips = world.sources["b"]
    with world.catalog.write() as con:
        con.execute(
            "INSERT INTO memberships (dataset, source_id, label) VALUES ('web-test-labels', ?, 'Drone')",
            [b_source.source_id],
        )
    try:
        page = c.get("/operator/clips?category=drone-aerial").text
        assert f"Clips <small>({len(b_clips)})</small>" in page
        assert all(f"/operator/clips/{x.clip_id}" in page for x in b_clips)
        assert "Clips <small>(0)</small>" in c.get("/operator/clips?category=gameplay").text
        assert '<option selected>drone-aerial</option>' in page
    finally:
        with world.catalog.write() as con:
            con.execute("DELETE FROM memberships WHERE dataset = 'web-test-labels'")


def test_search_ranks_by_meaning_once_the_catalog_has_text_vectors(tmp_path):
    """With `semantic index` run, the search page ranks by the text vectors, with licence decisions."""
    pytest.importorskip("onnxruntime")
    from clipfactory.catalog import Catalog
    from clipfactory.catalog.db import upsert_records
    from clipfactory.config import load_settings
    from clipfactory.policy.gate import evaluate
    from clipfactory.records import SourceRecord
    from clipfactory.semantic.indexing import index_catalog

    cat = Catalog(tmp_path / "cat.duckdb", create=True)
    titles = {
        "web:fox": "a red fox running through deep snow",
        "web:bread": "a baker slicing a loaf of fresh bread",
        "web:race": "cars racing around a track",
    }
    with cat.write() as con:
        upsert_records(con, [SourceRecord(sid, "web", title=t, content_license="CC-BY-4.0") for sid, t in titles.items()])
    s = load_settings(None, overrides={"catalog": str(cat.path), "store": str(tmp_path / "store")})
    index_catalog(s)
    evaluate(cat, "research", settings=s)
    c = _client(create_app(s, WebConfig(operator_token=TOKEN)))
    r = c.post("/operator/login", data={"csrf": _csrf(c), "name": "olga", "token": TOKEN})
    assert r.status_code in (200, 303), r.text
    page = c.get("/operator/search", params={"q": "someone cutting bread"}).text
    rows = re.findall(r"<tr><td>([0-9.-]+)</td><td>([^<]+)</td>", page)
    assert rows and rows[0][1] == "web:bread", page
    assert "nearest of 3 vectors" in page and "semantic search is not available" not in page


def test_search_without_vectors_says_why_without_a_server_path(app, world):
    c = _login(app)
    page = c.get("/operator/search", params={"q": "anything"}).text
    assert "semantic search is not available here (the catalog has no text vectors)" in page
    assert str(world.root) not in page and "catalog.duckdb" not in page
