"""The Spawning Do-Not-Train registry check, against a real stand-in for its API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import threading

import pytest
from cf_acquire_helpers import allow_all
from cf_acquire_server import Route, fake_mp4

from clipfactory.records import SourceRecord

KEY = "spawning-test-key-7f3a9c1e5b2d4f60"
KEY_ENV = "CLIPFACTORY_SPAWNING_API_KEY"
API_PATH = "/api/v2/query/urls"
FAST = {
    "allow_private_addresses": True,
    "backoff_base_s": 0.005,
    "backoff_max_s": 0.02,
    "connect_timeout_s": 2.0,
    "read_timeout_s": 5.0,
}


class FakeSpawningAPI:
    """Answers ``POST /api/v2/query/urls`` like the registry (one entry per line, in order) and records each
    request's headers and lines. ``fail`` answers come first, in order; ``always`` replaces every answer."""

    class _HTTPServer(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass

    class _Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - quiet
            pass

        def do_POST(self):  # noqa: N802
            api: FakeSpawningAPI = self.server.api  # type: ignore[attr-defined]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            lines = body.decode("utf-8").split("\n")
            with api.lock:
                api.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "lines": lines}
                )
                answer = api.fail.pop(0) if api.fail else api.always
            if self.path != API_PATH:
                answer = (404, [], b"not found")
            if answer is None:
                entries = [{"url": u, "optIn": u in api.opt_in, "optOut": u in api.opt_out} for u in lines]
                answer = (200, [("Content-Type", "application/json")], json.dumps({"urls": entries}).encode())
            status, headers, payload = answer
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def __init__(self):
        self.opt_out: set[str] = set()
        self.opt_in: set[str] = set()
        self.requests: list[dict] = []
        self.fail: list[tuple[int, list[tuple[str, str]], bytes]] = []
        self.always: tuple[int, list[tuple[str, str]], bytes] | None = None
        self.lock = threading.Lock()
        self.httpd = self._HTTPServer(("127.0.0.1", 0), self._Handler)
        self.httpd.api = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{API_PATH}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeSpawningAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def queried(self) -> list[str]:
        """Every URL asked about (padding lines left out), in the order the requests arrived."""
        return [u for r in self.requests for u in r["lines"] if u]


@pytest.fixture
def api(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeSpawningAPI() as srv:
        yield srv


@pytest.fixture
def run(store, transport):
    """``run(api, work, **options)``: ``await work(fetcher)`` in a fresh Fetcher; returns ``(result, fetcher)``."""
    from clipfactory.acquire.http import Fetcher, FetchOptions

    def go(api_server, work, **options):
        opts = FetchOptions(**{**FAST, "spawning_api_url": api_server.url, **options})

        async def main():
            async with Fetcher(opts, store, platform_check=allow_all, transport=transport) as f:
                return await work(f), f

        return asyncio.run(main())

    return go


def src(url: str, n: int = 0) -> SourceRecord:
    return SourceRecord(source_id=f"url:{n}", platform="web", url=url)


def fetch_all(run, api, urls, **options):
    return run(api, lambda f: f.fetch_many([src(u, i) for i, u in enumerate(urls)]), **options)


def spawning_checks(out) -> list[dict]:
    return [ch for ch in out.evidence.to_dict()["consent"] if ch["signal"] == "spawning"]


# -- verdicts ------------------------------------------------------------------------------------------
def test_opt_out_drops_before_any_request(server, api, run):
    from clipfactory.acquire.evidence import link_status_of

    url = server.add("/out.mp4", body=fake_mp4(5_000))
    api.opt_out.add(url)
    (out,), _ = fetch_all(run, api, [url])
    assert out.status == "dropped" and out.reason == "consent.spawning_opt_out", out
    # Nothing was asked of the media server: not the file, not even robots.txt.
    assert server.hits["/out.mp4"] == 0 and server.hits["/robots.txt"] == 0
    (check,) = spawning_checks(out)
    assert check["verdict"] == "deny" and check["phase"] == "before_fetch" and check["url"] == url
    assert check["reason"] == "consent.spawning_opt_out" and check["value"] == "optOut"
    assert check["evidence"]["entry"] == {"url": url, "optIn": False, "optOut": True}
    assert check["evidence"]["api"] == api.url and check["evidence"]["queried_at"]
    assert link_status_of(out.status, out.reason) == "opted_out"  # revalidation queues it for takedown


def test_opt_in_and_unlisted_urls_are_kept(server, api, run):
    yes = server.add("/in.mp4", body=fake_mp4(5_000, 1))
    unlisted = server.add("/plain.mp4", body=fake_mp4(5_000, 2))
    api.opt_in.add(yes)
    (a, b), f = fetch_all(run, api, [yes, unlisted])
    assert a.status == b.status == "kept"
    assert server.hits["/in.mp4"] == server.hits["/plain.mp4"] == 1
    (ca,), (cb,) = spawning_checks(a), spawning_checks(b)
    assert (ca["verdict"], ca["value"]) == ("allow", "optIn")
    assert ca["evidence"]["entry"] == {"url": yes, "optIn": True, "optOut": False}
    assert (cb["verdict"], cb["value"]) == ("unstated", None)
    # Two URLs make one query of two lines (no padding needed); both fetches found their answer cached.
    assert [r["lines"] for r in api.requests] == [[yes, unlisted]]
    assert f.stats["spawning.requests"] == 1 and f.stats["spawning.cache_hits"] == 2


def test_key_is_sent_as_api_authorization_and_kept_out_of_evidence(server, api, run):
    kept = server.add("/k.mp4", body=fake_mp4(5_000, 3))
    out_url = server.add("/o.mp4", body=fake_mp4(5_000, 4))
    api.opt_out.add(out_url)
    outs, f = fetch_all(run, api, [kept, out_url])
    assert [o.status for o in outs] == ["kept", "dropped"]
    (req,) = api.requests
    assert req["headers"]["Authorization"] == f"API {KEY}"
    assert req["headers"]["Content-Type"].startswith("text/plain")
    assert req["headers"]["User-Agent"].startswith("clipfactory/")
    for out in outs:
        assert KEY not in json.dumps(out.evidence.to_dict())
        assert KEY not in json.dumps(out.detail()) and KEY not in (out.error or "")
    assert KEY not in repr(f.spawning)


def test_no_key_records_not_checked_and_asks_nothing(server, api, run, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    url = server.add("/a.mp4", body=fake_mp4(5_000))
    (out,), f = fetch_all(run, api, [url])
    assert out.status == "kept" and f.spawning is None
    (check,) = spawning_checks(out)
    assert check["verdict"] == "not_checked"
    assert check["evidence"]["why"] == "no Spawning API key configured"
    assert api.requests == []


# -- batching ------------------------------------------------------------------------------------------
def test_sources_are_looked_up_in_batches(server, api, run):
    urls = [server.add(f"/b{i}.mp4", body=fake_mp4(3_000, i)) for i in range(5)]
    outs, f = fetch_all(run, api, urls, spawning_batch_size=2)
    assert [o.status for o in outs] == ["kept"] * 5
    # 5 URLs in batches of 2: three queries (the last one, a lone URL, padded with an empty line).
    assert len(api.requests) == 3
    assert sorted(len(r["lines"]) for r in api.requests) == [2, 2, 2]
    assert sorted(api.queried()) == sorted(urls)
    assert sum(r["lines"] == [r["lines"][0], ""] for r in api.requests) == 1
    # ... and no query per URL afterwards: every fetch found its answer in the cache.
    assert f.stats["spawning.requests"] == 3 and f.stats["spawning.cache_hits"] == 5


def test_a_single_lookup_is_padded_to_two_lines(server, api, run):
    url = server.add("/one.mp4", body=fake_mp4(5_000))
    out, _ = run(api, lambda f: f.fetch(src(url)))  # fetch() alone: no prefetch
    assert out.status == "kept"
    assert [r["lines"] for r in api.requests] == [[url, ""]]


def test_concurrent_checks_of_one_url_share_a_query(api, run):
    url = "http://127.0.0.1:9/shared.mp4"

    async def work(f):
        return await asyncio.gather(*(f.spawning.check(url) for _ in range(5)))

    checks, _ = run(api, work)
    assert {ch.verdict for ch in checks} == {"unstated"}
    assert len(api.requests) == 1


def test_a_redirect_to_an_opted_out_url_is_dropped(server, api, run):
    target = server.add("/target.mp4", body=fake_mp4(5_000))
    start = server.add("/start", Route(status=302, redirect=target))
    api.opt_out.add(target)
    (out,), _ = fetch_all(run, api, [start])
    assert out.status == "dropped" and out.reason == "consent.spawning_opt_out"
    assert out.final_url == target
    assert server.hits["/start"] == 1 and server.hits["/target.mp4"] == 0
    # The source URL came with the batch; the hop was asked about on its own, before its request.
    assert [r["lines"] for r in api.requests] == [[start, ""], [target, ""]]
    assert [(ch["url"], ch["verdict"]) for ch in spawning_checks(out)] == [
        (start, "unstated"),
        (target, "deny"),
    ]


# -- an API that is slow to answer, or broken ----------------------------------------------------------
def test_429_with_retry_after_is_retried(server, api, run):
    url = server.add("/r.mp4", body=fake_mp4(5_000))
    api.fail = [(429, [("Retry-After", "0")], b"slow down")]
    (out,), f = fetch_all(run, api, [url])
    assert out.status == "kept"
    assert len(api.requests) == 2 and f.stats["spawning.retries"] == 1
    (check,) = spawning_checks(out)
    assert check["verdict"] == "unstated"


def test_a_long_retry_after_ends_the_attempts(server, api, run):
    url = server.add("/r.mp4", body=fake_mp4(5_000))
    api.fail = [(429, [("Retry-After", "3600")], b"slow down")]
    (out,), _ = fetch_all(run, api, [url])
    assert out.status == "failed" and out.reason == "fetch.spawning_unavailable"
    assert "Retry-After" in out.error and len(api.requests) == 1


def test_an_api_failing_every_time_fails_the_fetch_as_transient(server, api, run):
    urls = [server.add(f"/f{i}.mp4", body=fake_mp4(5_000, i)) for i in range(3)]
    api.always = (500, [], b"oops")
    outs, _ = fetch_all(run, api, urls, max_attempts=3)
    for out in outs:
        assert out.status == "failed" and out.reason == "fetch.spawning_unavailable", out
        assert out.error_kind == "transient" and "HTTP 500" in out.error
        (check,) = spawning_checks(out)
        assert check["verdict"] == "error" and "HTTP 500" in check["evidence"]["error"]
        assert check["evidence"]["attempts"] == 3
        result = out.to_result(src(urls[0]))
        assert (result.status, result.error_kind) == ("failed", "transient")
    assert all(server.hits[f"/f{i}.mp4"] == 0 for i in range(3))
    # One batch, three attempts; the failure is remembered briefly instead of asked again per source.
    assert len(api.requests) == 3


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"<html>not json</html>", "not JSON"),
        (b'{"error": "nope"}', "no 'urls' list"),
        (b'{"urls": []}', "0 entries"),
        (b'{"urls": [{"url": "x", "optOut": false}, {"url": ""}]}', "no boolean optIn and optOut"),
        (b'{"urls": [{"url": "x", "optIn": false, "optOut": "yes"}, {"url": ""}]}', "no boolean"),
    ],
)
def test_an_unreadable_answer_fails_the_fetch(server, api, run, payload, message):
    url = server.add("/m.mp4", body=fake_mp4(5_000))
    api.always = (200, [("Content-Type", "application/json")], payload)
    (out,), _ = fetch_all(run, api, [url])
    assert out.status == "failed" and out.reason == "fetch.spawning_unavailable"
    assert message in out.error and server.hits["/m.mp4"] == 0
    assert len(api.requests) == 1  # an answer that cannot be read is not asked for again at once


def test_proceed_keeps_the_file_and_records_the_error(server, api, run):
    url = server.add("/p.mp4", body=fake_mp4(5_000))
    api.always = (200, [("Content-Type", "application/json")], b"not json")
    (out,), _ = fetch_all(run, api, [url], spawning_on_error="proceed")
    assert out.status == "kept"
    (check,) = spawning_checks(out)
    assert check["verdict"] == "error" and "not JSON" in check["evidence"]["error"]
    assert KEY not in json.dumps(out.evidence.to_dict())


def test_a_refused_key_is_not_retried(server, api, run):
    url = server.add("/k.mp4", body=fake_mp4(5_000))
    api.always = (401, [], b"bad key")
    (out,), _ = fetch_all(run, api, [url])
    assert out.reason == "fetch.spawning_unavailable" and "refused" in out.error
    assert len(api.requests) == 1


def test_an_unreachable_api_fails_the_fetch(server, api, run):
    url = server.add("/u.mp4", body=fake_mp4(5_000))
    api.__exit__()  # nothing listens on its port any more
    (out,), _ = fetch_all(run, api, [url], max_attempts=2)
    assert out.reason == "fetch.spawning_unavailable" and out.error_kind == "transient"
    assert server.hits["/u.mp4"] == 0


# -- revalidation ----------------------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path, monkeypatch):
    from clipfactory.config import load_settings

    def settings(api_url: str):
        return load_settings(
            overrides={"catalog": str(tmp_path / "cat.duckdb"), "store": str(tmp_path / "store")},
            sets=[
                f"acquire.http.spawning_api_url={api_url}",
                "acquire.http.backoff_base_s=0.005",
                "acquire.http.allow_private_addresses=true",
            ],
        )

    monkeypatch.chdir(tmp_path)  # no clipfactory.toml from elsewhere
    for k in list(os.environ):
        if k.startswith("CLIPFACTORY_") and k != KEY_ENV:
            monkeypatch.delenv(k)
    return settings


def test_revalidation_queues_a_new_opt_out_for_takedown(server, api, env):
    from clipfactory.acquire.driver import fetch_sources
    from clipfactory.acquire.revalidate import revalidate_sources, takedown_queue
    from clipfactory.catalog import Catalog, upsert_records

    settings = env(api.url)
    urls = {n: server.add(f"/{n}.mp4", body=fake_mp4(5_000, i), etag=f'"{n}"') for i, n in enumerate("ab")}
    cat = Catalog(settings.catalog)
    with cat.write() as con:
        upsert_records(
            con, [SourceRecord(source_id=f"url:{n}", platform="web", url=u) for n, u in urls.items()]
        )
    fetched = fetch_sources(settings, platform_check=allow_all)
    assert fetched["kept"] == 2
    assert fetched["spawning_queries"] == {"requests": 1, "retries": 0, "errors": 0}  # one batch
    before = len(api.requests)
    api.opt_out.add(urls["b"])  # the owner opts out after we downloaded
    hits = server.hits["/b.mp4"]
    r = revalidate_sources(settings, platform_check=allow_all)
    by = {it["source_id"]: it for it in r["items"]}
    assert by["url:a"]["status"] == "alive"
    assert by["url:b"]["status"] == "opted_out" and by["url:b"]["reason"] == "consent.spawning_opt_out"
    assert server.hits["/b.mp4"] == hits  # dropped before any request
    assert r["queued_for_takedown"] == ["url:b"]
    (entry,) = takedown_queue(cat)
    ev = json.loads(entry["evidence"])
    assert entry["reason"] == "consent.spawning_opt_out" and ev["denial"][0]["signal"] == "spawning"
    assert KEY not in entry["evidence"]
    assert len(api.requests) == before + 1  # one batched query for the whole revalidation
