"""The fetcher against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import email.utils
import hashlib
import json
import time

import pytest
from cf_acquire_helpers import leftovers
from cf_acquire_server import Route, fake_mp4

from clipfactory.records import SourceRecord

OK = "kept"


def blobs(store) -> list[str]:
    """Media blobs in the store (robots.txt and tdmrep.json bodies are kept there too, as evidence)."""
    from clipfactory.acquire.http import sniff_container

    out = []
    for uri in store.iter_blobs():
        with open(store.path_of(uri), "rb") as fh:
            if sniff_container(fh.read(512)) is not None:
                out.append(uri)
    return sorted(out)


# -- plain downloads -----------------------------------------------------------------------------------
def test_download_hashes_into_the_store(server, fetch, store):
    body = fake_mp4(200_000, 1)
    url = server.add(
        "/v/a.mp4",
        body=body,
        etag='"a"',
        headers=[("Link", '<https://creativecommons.org/licenses/by/4.0/>; rel="license"')],
    )
    (out,), f = fetch([url])
    assert out.status == OK, out
    assert out.content_sha256 == hashlib.sha256(body).hexdigest()
    assert out.size_bytes == len(body) and out.container == "mp4"
    assert store.path_of(out.blob_uri).read_bytes() == body
    assert leftovers(store) == []
    # The evidence keeps the request, its headers (licence link included) and every check.
    ev = out.evidence.to_dict()
    assert ev["attempts"][0]["status_code"] == 200
    assert "creativecommons" in ev["attempts"][0]["response_headers"]["link"]
    signals = {ch["signal"] for ch in ev["consent"]}
    assert {
        "platform",
        "robots.txt",
        "tdmrep",
        "x-robots-tag",
        "content-usage",
        "c2pa",
        "spawning",
    } <= signals
    spawning = next(ch for ch in ev["consent"] if ch["signal"] == "spawning")
    assert spawning["verdict"] == "not_checked" and "no Spawning API key" in spawning["evidence"]["why"]


def test_user_agent_carries_our_token_and_contact(server, fetch):
    url = server.add("/a.mp4", body=fake_mp4(1000))
    fetch([url], contact_url="https://example.org/our-bot")
    ua = server.headers_of("/a.mp4")[0]["User-Agent"]
    assert ua.startswith("clipfactory/") and "https://example.org/our-bot" in ua
    assert server.headers_of("/robots.txt")[0]["User-Agent"] == ua


@pytest.mark.shared_data
def test_real_media_files(server, fetch, store, shared_data):
    urls, want = [], {}
    for p in sorted((shared_data / "media").iterdir()):
        if p.suffix in (".mp4", ".avi"):
            data = p.read_bytes()
            urls.append(server.add(f"/m/{p.name}", body=data, etag=f'"{len(data)}"'))
            want[urls[-1]] = hashlib.sha256(data).hexdigest()
    outs, _ = fetch(urls)
    for url, out in zip(urls, outs, strict=True):
        assert out.status == OK, (url, out.reason, out.error)
        assert out.content_sha256 == want[url]
    assert leftovers(store) == []


# -- consent signals on the response --------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers, reason",
    [
        ([("X-Robots-Tag", "noai")], "consent.x_robots_noai"),
        ([("X-Robots-Tag", "noimageai")], "consent.x_robots_noai"),
        ([("X-Robots-Tag", "clipfactory: noai")], "consent.x_robots_noai"),
        ([("X-Robots-Tag", "nofollow, noarchive, noai")], "consent.x_robots_noai"),
        ([("X-Robots-Tag", "nofollow"), ("X-Robots-Tag", "noimageai")], "consent.x_robots_noai"),
        ([("X-Robots-Tag", "noindex")], "consent.x_robots_noindex"),
        ([("tdm-reservation", "1"), ("tdm-policy", "https://example.org/tdm")], "consent.tdm_reserved"),
        ([("Content-Usage", "train-ai=n")], "consent.content_usage_train_ai_n"),
        ([("Content-Usage", "bots=n, search=y")], "consent.content_usage_train_ai_n"),
    ],
)
def test_header_denials_keep_no_bytes(server, fetch, store, headers, reason):
    url = server.add("/v.mp4", body=fake_mp4(3_000_000), headers=headers, etag='"v"')
    (out,), _ = fetch([url])
    assert out.status == "dropped" and out.reason == reason
    assert blobs(store) == [] and leftovers(store) == []
    deny = [ch for ch in out.evidence.consent if ch["verdict"] == "deny"]
    assert deny and deny[0]["phase"] == "headers"


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Robots-Tag", "otherbot: noai")],
        [("X-Robots-Tag", "nofollow, noarchive")],
        [("tdm-reservation", "0")],
        [("Content-Usage", "train-ai=y, search=n")],
    ],
)
def test_header_signals_that_allow(server, fetch, headers):
    url = server.add("/v.mp4", body=fake_mp4(1000), headers=headers)
    (out,), _ = fetch([url])
    assert out.status == OK, out.reason


def test_noindex_can_be_allowed_by_config(server, fetch):
    url = server.add("/v.mp4", body=fake_mp4(1000), headers=[("X-Robots-Tag", "noindex")])
    (out,), _ = fetch([url], blocked_directives=["noai", "noimageai"])
    assert out.status == OK


# -- robots.txt -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "robots, path, reason",
    [
        ("User-agent: clipfactory\nDisallow: /v/\n", "/v/a.mp4", "consent.robots_disallow"),
        ("User-agent: *\nDisallow: /\n", "/v/a.mp4", "consent.robots_disallow"),
        ("User-agent: otherbot\nDisallow: /\n", "/v/a.mp4", None),
        ("User-agent: *\nDisallow: /\n\nUser-agent: clipfactory\nAllow: /v/\n", "/v/a.mp4", None),
        ("User-agent: *\nContent-Usage: /v/ train-ai=n\n", "/v/a.mp4", "consent.content_usage_train_ai_n"),
        ("User-agent: *\nContent-Usage: /v/ train-ai=n\n", "/w/a.mp4", None),
        ("<html>oops</html>\n{json: 1}\n", "/v/a.mp4", None),  # malformed: no usable rule
    ],
)
def test_robots_before_any_request(server, fetch, store, robots, path, reason):
    server.robots(robots)
    url = server.add(path, body=fake_mp4(1000))
    (out,), _ = fetch([url])
    if reason is None:
        assert out.status == OK, out.reason
    else:
        assert out.status == "dropped" and out.reason == reason
        assert server.hits[path] == 0  # denied before the resource was requested
        assert blobs(store) == []


def test_malformed_robots_is_recorded(server, fetch, store):
    server.robots("this is not robots.txt\nUser-agent *\nDisallow /x\n")
    url = server.add("/a.mp4", body=fake_mp4(1000))
    (out,), _ = fetch([url])
    assert out.status == OK
    doc = out.evidence.host_documents[0]
    assert doc["kind"] == "robots.txt" and "malformed" in doc["note"]
    assert store.path_of(doc["body_uri"]).read_bytes().startswith(b"this is not")


def test_robots_unreachable_blocks_and_is_not_a_consent_drop(server, fetch):
    server.robots("", status=503)
    url = server.add("/a.mp4", body=fake_mp4(1000))
    (out,), _ = fetch([url])
    assert out.status == "failed" and out.reason == "fetch.robots_unreachable"
    assert out.error_kind == "transient"
    assert server.hits["/a.mp4"] == 0


def test_crawl_delay_slows_requests(server, fetch):
    server.robots("User-agent: clipfactory\nCrawl-delay: 0.3\n")
    urls = [server.add(f"/{i}.mp4", body=fake_mp4(1000, i)) for i in range(4)]
    t0 = time.monotonic()
    outs, _ = fetch(urls, per_host_rate=0)
    assert all(o.status == OK for o in outs)
    times = sorted(server.times_of(f"/{i}.mp4")[0] for i in range(4))
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # The server notes a request when its thread gets to it, which on a busy machine can be late for one
    # request and so shorten one gap; without the delay all four arrive within milliseconds.
    assert min(gaps) >= 0.15 and sum(gaps) / len(gaps) >= 0.25, gaps
    assert time.monotonic() - t0 >= 0.75


# -- host documents are fetched once per host per TTL ---------------------------------------------------
def test_host_documents_once_per_host(server, server2, fetch):
    urls = [server.add(f"/{i}.mp4", body=fake_mp4(500, i)) for i in range(20)]
    urls += [server2.add(f"/{i}.mp4", body=fake_mp4(500, i)) for i in range(20)]
    outs, f = fetch(urls)
    assert all(o.status == OK for o in outs)
    for srv in (server, server2):
        assert srv.hits["/robots.txt"] == 1
        assert srv.hits["/.well-known/tdmrep.json"] == 1
    assert f.stats["host_doc.robots.txt"] == 2
    # Exactly one source carries each host document in its evidence.
    assert sum(len(o.evidence.host_documents) for o in outs) == 4


def test_host_documents_refetched_after_ttl(server, store, transport):
    import asyncio

    from clipfactory.acquire.http import Fetcher, FetchOptions

    url = server.add("/a.mp4", body=fake_mp4(500))
    src = SourceRecord(source_id="url:a", platform="web", url=url)

    async def go():
        async with Fetcher(
            FetchOptions(robots_ttl_s=0.3, tdmrep_ttl_s=0.3, allow_private_addresses=True),
            store,
            platform_check=lambda *a: (True, None),
            transport=transport,
        ) as f:
            await f.fetch(src)
            await f.fetch(src)
            assert server.hits["/robots.txt"] == 1
            await asyncio.sleep(0.4)
            await f.fetch(src)

    asyncio.run(go())
    assert server.hits["/robots.txt"] == 2
    assert server.hits["/.well-known/tdmrep.json"] == 2


# -- TDMRep ---------------------------------------------------------------------------------------------
def test_tdmrep_file_denies_before_the_request(server, fetch):
    server.tdmrep([{"location": "/reserved/*", "tdm-reservation": 1, "tdm-policy": "https://example.org/p"}])
    a = server.add("/reserved/a.mp4", body=fake_mp4(1000))
    b = server.add("/open/b.mp4", body=fake_mp4(1000))
    (oa, ob), _ = fetch([a, b])
    assert oa.reason == "consent.tdm_reserved" and server.hits["/reserved/a.mp4"] == 0
    assert ob.status == OK
    deny = next(ch for ch in oa.evidence.consent if ch["verdict"] == "deny")
    assert deny["evidence"]["policy"] == "https://example.org/p"


def test_tdmrep_header_may_lift_the_file_when_configured(server, fetch, store):
    server.tdmrep([{"location": "/r/*", "tdm-reservation": 1}])
    lifted = server.add("/r/a.mp4", body=fake_mp4(1000), headers=[("tdm-reservation", "0")])
    kept = server.add("/r/b.mp4", body=fake_mp4(3_000_000, 2), etag='"b"')
    (oa, ob), _ = fetch([lifted, kept], tdmrep_prefetch_deny=False)
    assert oa.status == OK  # header beats the well-known file
    assert ob.reason == "consent.tdm_reserved"  # the file's reservation stands; the body was never kept
    assert server.hits["/r/b.mp4"] == 1
    assert len(blobs(store)) == 1 and leftovers(store) == []


def test_tdmrep_invalid_json_is_recorded_as_no_statement(server, fetch):
    server.tdmrep("{this is not json")
    url = server.add("/a.mp4", body=fake_mp4(1000))
    (out,), _ = fetch([url])
    assert out.status == OK
    doc = next(d for d in out.evidence.host_documents if d["kind"] == "tdmrep.json")
    assert doc["state"] == "invalid" and "invalid JSON" in doc["note"]
    tdm = next(
        ch for ch in out.evidence.consent if ch["signal"] == "tdmrep" and ch["phase"] == "before_fetch"
    )
    assert tdm["verdict"] == "unstated" and tdm["evidence"]["state"] == "invalid"


def test_html_served_as_video(server, fetch, store):
    plain = server.add(
        "/page.mp4", body=b"<!DOCTYPE html><html><body>hello</body></html>", content_type="video/mp4"
    )
    meta = server.add(
        "/meta.mp4",
        body=b"<html><head><meta name='tdm-reservation' content='1'></head><body>"
        + b"x" * 5000
        + b"</body></html>",
        content_type="text/html",
    )
    text = server.add("/text.mp4", body=b"just some text, not a video at all" * 40, content_type="text/plain")
    (o1, o2, o3), _ = fetch([plain, meta, text])
    assert o1.reason == "fetch.not_video"
    assert o2.reason == "consent.tdm_reserved"
    assert o3.reason == "fetch.not_video"
    assert blobs(store) == [] and leftovers(store) == []


# -- platform terms and redirects -----------------------------------------------------------------------
def test_platform_terms_checked_before_any_request(server, fetch, transport):
    from clipfactory.acquire.http import default_platform_check

    url = server.add("/a.mp4", body=fake_mp4(1000))
    src = SourceRecord(source_id="youtube:dQw4w9WgXcQ", platform="youtube", url=url)
    (out,), _ = fetch([src], platform_check=default_platform_check())
    assert out.reason == "policy.platform_terms_no_permission:youtube"
    assert sum(server.hits.values()) == 0


def test_redirect_to_a_platform_host_is_refused(server, fetch, transport):
    from clipfactory.acquire.http import default_platform_check

    url = server.add("/go.mp4", status=302, redirect="https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    (out,), _ = fetch([url], platform_check=default_platform_check())
    assert out.reason == "policy.platform_terms_no_permission:youtube"
    assert transport.refused == []  # the policy refused before any connection was tried


def test_redirect_to_a_host_whose_robots_disallows(server, server2, fetch, store):
    server2.robots("User-agent: clipfactory\nDisallow: /\n")
    target = server2.add("/v.mp4", body=fake_mp4(1000))
    url = server.add("/go.mp4", status=301, redirect=target)
    (out,), _ = fetch([url])
    assert out.reason == "consent.robots_disallow"
    assert server2.hits["/robots.txt"] == 1 and server2.hits["/v.mp4"] == 0
    assert [a.get("outcome") for a in out.evidence.attempts] == ["redirect"]
    assert blobs(store) == []


def test_redirect_followed_and_rechecked(server, server2, fetch):
    target = server2.add("/v.mp4", body=fake_mp4(1000), headers=[("X-Robots-Tag", "clipfactory: noai")])
    url = server.add("/go.mp4", status=307, redirect="/hop2.mp4")
    server.add("/hop2.mp4", status=302, redirect=target)
    (out,), _ = fetch([url])
    assert out.reason == "consent.x_robots_noai"
    assert out.final_url == target


def test_too_many_redirects(server, fetch):
    for i in range(10):
        server.add(f"/r{i}", status=302, redirect=f"/r{i + 1}")
    (out,), _ = fetch([server.url("/r0")], max_redirects=3)
    assert out.reason == "fetch.too_many_redirects"
    assert server.hits["/r4"] == 0


# -- errors, retries and limits -------------------------------------------------------------------------
def test_404_and_410(server, fetch):
    server.add("/gone.mp4", status=410, body=b"gone")
    (o1, o2), _ = fetch([server.url("/missing.mp4"), server.url("/gone.mp4")])
    assert (o1.status, o1.reason) == ("dropped", "fetch.http_404")
    assert (o2.status, o2.reason) == ("dropped", "fetch.http_410")


def test_403_is_recorded_not_worked_around(server, fetch):
    url = server.add("/a.mp4", status=403, body=b"no")
    (out,), _ = fetch([url])
    assert out.status == "failed" and out.reason == "fetch.http_403" and out.error_kind == "terminal"
    assert server.hits["/a.mp4"] == 1


def test_429_then_200_honours_retry_after_seconds(server, fetch):
    url = server.add("/a.mp4", body=fake_mp4(1000), fail_times=2, fail_headers=[("Retry-After", "1")])
    (out,), f = fetch([url])
    assert out.status == OK
    times = server.times_of("/a.mp4")
    assert len(times) == 3
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95
    assert f.stats["retries"] == 2


def test_retry_after_http_date(server, fetch):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    url = server.add("/a.mp4", body=fake_mp4(1000), fail_times=1, fail_headers=[("Retry-After", when)])
    (out,), _ = fetch([url])
    assert out.status == OK
    t = server.times_of("/a.mp4")
    assert t[1] - t[0] >= 0.9  # HTTP dates have whole seconds: at least one second later


def test_429_pauses_the_whole_host(server, fetch):
    server.add("/a.mp4", body=fake_mp4(1000), fail_times=1, fail_headers=[("Retry-After", "1")])
    server.add("/b.mp4", body=fake_mp4(1000, 1), delay_s=0.1)
    outs, _ = fetch(
        [server.url("/a.mp4"), server.url("/b.mp4"), server.url("/b.mp4")], per_host_connections=1
    )
    assert all(o.status == OK for o in outs)
    first_429 = server.times_of("/a.mp4")[0]
    later = [t for t in server.times_of("/b.mp4") if t > first_429]
    assert all(t - first_429 >= 0.95 for t in later)


def test_rate_limited_after_bounded_attempts(server, fetch):
    url = server.add("/a.mp4", body=fake_mp4(1000), fail_times=100, fail_headers=[("Retry-After", "0")])
    (out,), _ = fetch([url], max_attempts=3)
    assert out.status == "failed" and out.reason == "fetch.rate_limited" and out.error_kind == "transient"
    assert server.hits["/a.mp4"] == 3


def test_long_retry_after_gives_up_at_once(server, fetch):
    url = server.add("/a.mp4", body=fake_mp4(1000), fail_times=100, fail_headers=[("Retry-After", "3600")])
    t0 = time.monotonic()
    (out,), _ = fetch([url], max_retry_after_s=5)
    assert out.reason == "fetch.rate_limited" and "3600" in out.error
    assert time.monotonic() - t0 < 3 and server.hits["/a.mp4"] == 1


def test_5xx_backoff_then_success(server, fetch):
    url = server.add("/a.mp4", body=fake_mp4(1000), fail_times=2, fail_status=500)
    (out,), _ = fetch([url])
    assert out.status == OK and server.hits["/a.mp4"] == 3


def test_read_timeout_and_total_timeout(server, fetch, store):
    slow_head = server.add("/slow-head.mp4", body=fake_mp4(1000), delay_s=1.5)
    slow_body = server.add("/slow-body.mp4", body=fake_mp4(400_000), chunk_size=20_000, chunk_delay_s=0.1)
    (o1, o2), _ = fetch([slow_head, slow_body], read_timeout_s=0.5, total_timeout_s=0.8, max_attempts=1)
    assert o1.reason == "fetch.timeout" and o1.status == "failed"
    assert o2.reason == "fetch.timeout"
    assert blobs(store) == []


def test_too_large(server, fetch, store):
    url = server.add("/big.mp4", body=fake_mp4(2_000_000))
    (out,), _ = fetch([url], max_bytes=1_000_000)
    assert out.reason == "fetch.too_large"
    assert server.hits["/big.mp4"] == 1 and blobs(store) == [] and leftovers(store) == []


def test_huge_headers(server, fetch):
    url = server.add("/h.mp4", body=fake_mp4(1000), huge_headers=300_000)
    (out,), _ = fetch([url])
    assert out.status == "dropped" and out.reason == "fetch.header_too_large"


def test_bad_url(fetch):
    (out,), _ = fetch(["ftp://127.0.0.1/a.mp4"])
    assert out.reason == "fetch.bad_url"


# -- truncation and resume ------------------------------------------------------------------------------
def test_truncated_body_resumes_with_range(server, fetch, store):
    body = fake_mp4(3_000_000, 7)
    url = server.add("/t.mp4", body=body, etag='"t1"', truncate_at=1_234_567, truncate_times=1)
    (out,), _ = fetch([url])
    assert out.status == OK
    assert out.content_sha256 == hashlib.sha256(body).hexdigest()
    h = server.headers_of("/t.mp4")
    assert h[1]["Range"] == "bytes=1234567-" and h[1]["If-Range"] == '"t1"'
    assert leftovers(store) == []


def test_resume_with_a_small_remainder_appends_to_the_partial(server, fetch, store):
    # The last 100 kB stay in memory (below inline_bytes) and must be appended, not written over the partial.
    body = fake_mp4(3_000_000, 11)
    url = server.add("/t.mp4", body=body, etag='"t1"', truncate_at=2_900_000, truncate_times=1)
    (out,), _ = fetch([url])
    assert out.status == OK and out.content_sha256 == hashlib.sha256(body).hexdigest()
    assert server.headers_of("/t.mp4")[1]["Range"] == "bytes=2900000-"
    assert store.path(out.content_sha256).read_bytes() == body
    assert leftovers(store) == []


@pytest.mark.parametrize("size", [30_000, 3_000_000])  # in memory, and streamed by the writer threads
def test_a_full_disk_is_a_named_transient_failure(server, fetch, store, monkeypatch, size):
    import errno

    from clipfactory.acquire import http

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(http._FileSink, "write", full)  # mid-stream, for the large body
    monkeypatch.setattr(http._BodyWriter, "to_disk", full)  # at the end, for the small one
    url = server.add("/d.mp4", body=fake_mp4(size, 2))
    (out,), _ = fetch([url])
    assert out.status == "failed" and out.reason == "fetch.storage_error" and out.error_kind == "transient"
    assert "No space left on device" in out.error and "free space" in out.error
    assert blobs(store) == []


def test_truncated_after_all_attempts_keeps_the_partial_then_next_run_resumes(server, fetch, store):
    body = fake_mp4(3_000_000, 8)
    url = server.add("/t.mp4", body=body, etag='"t1"', truncate_at=2_000_000, truncate_times=1)
    (out,), _ = fetch([url], max_attempts=1)
    assert out.status == "failed" and out.reason == "fetch.truncated" and out.error_kind == "transient"
    assert blobs(store) == []  # nothing under a final name
    left = leftovers(store)
    assert len(left) == 2 and any(n.endswith(".partial") for n in left)
    # "next run": a new fetcher, the same store
    (out2,), _ = fetch([url])
    assert out2.status == OK and out2.content_sha256 == hashlib.sha256(body).hexdigest()
    assert server.headers_of("/t.mp4")[1]["Range"] == "bytes=2000000-"
    assert out2.evidence.attempts[0]["range_start"] == 2_000_000
    assert leftovers(store) == []


def test_interrupted_download_resumes_after_a_total_timeout(server, fetch, store):
    body = fake_mp4(2_000_000, 9)
    url = server.add("/t.mp4", body=body, etag='"t1"', chunk_size=100_000, chunk_delay_s=0.1)
    (out,), _ = fetch([url], total_timeout_s=0.7, max_attempts=1)
    assert out.reason == "fetch.timeout"
    assert any(n.endswith(".partial") for n in leftovers(store))
    server.routes["/t.mp4"].chunk_delay_s = 0
    (out2,), _ = fetch([url])
    assert out2.status == OK and out2.content_sha256 == hashlib.sha256(body).hexdigest()
    start = int(server.headers_of("/t.mp4")[1]["Range"].split("=")[1].rstrip("-"))
    assert 0 < start < len(body)
    assert leftovers(store) == []


def test_resume_starts_over_when_the_file_changed(server, fetch, store):
    old = fake_mp4(3_000_000, 10)
    url = server.add("/t.mp4", body=old, etag='"v1"', truncate_at=1_000_000, truncate_times=1)
    (out,), _ = fetch([url], max_attempts=1)
    assert out.reason == "fetch.truncated"
    new = fake_mp4(2_500_000, 11)
    server.routes["/t.mp4"] = Route(body=new, etag='"v2"')
    (out2,), _ = fetch([url])
    assert out2.status == OK
    assert out2.content_sha256 == hashlib.sha256(new).hexdigest()  # If-Range failed: full new body
    assert server.headers_of("/t.mp4")[1]["If-Range"] == '"v1"'
    assert leftovers(store) == []


def test_same_url_twice_in_one_batch(server, fetch, store):
    url = server.add("/a.mp4", body=fake_mp4(2_000_000, 3), etag='"a"')
    srcs = [SourceRecord(source_id=f"s{i}", platform="web", url=url) for i in range(3)]
    outs, _ = fetch(srcs)
    assert all(o.status == OK for o in outs)
    assert len({o.blob_uri for o in outs}) == 1 and len(blobs(store)) == 1


def test_evidence_detail_is_json(server, fetch):
    url = server.add("/a.mp4", body=fake_mp4(1000), headers=[("X-Robots-Tag", "noai")])
    (out,), _ = fetch([url])
    src = SourceRecord(source_id="url:0", platform="web", url=url)
    result = out.to_result(src)
    assert result.status == "dropped" and result.reason == "consent.x_robots_noai"
    detail = json.loads(result.detail)
    assert detail["fetch"]["attempts"][0]["response_headers"]["x-robots-tag"] == "noai"
