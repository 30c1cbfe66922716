"""The web UI: :func:`create_app` builds the FastAPI app that ``clipfactory serve`` runs.

Public pages (no login): the creator lookup (an uploaded file or a URL of the catalog), the takedown
request form and its status page, and the transparency page (builds and their disclosure documents).
Operator pages (login with the token in ``CLIPFACTORY_WEB_TOKEN``): the dashboard, the clip browser,
search and the request queue. Pages are rendered on the server from Jinja2 templates; there is no inline
script. Every answer comes from a library function; this module only turns requests into calls and
results into pages (docs/web.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..errors import ClipfactoryError, MissingExtraError, NotFoundError

log = logging.getLogger(__name__)

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates
except ImportError as exc:  # pragma: no cover - the [web] extra is missing
    raise MissingExtraError(exc.name or "fastapi", "web", feature="clipfactory serve") from None

from .security import (  # noqa: E402 - after the check for the [web] extra
    LOCAL_HOSTS,
    REPORT_CSP,
    RateLimiter,
    Sessions,
    add_headers,
    file_response,
    same_token,
)
from .uploads import UploadError, received_upload  # noqa: E402

HERE = Path(__file__).parent
TOKEN_ENV = "CLIPFACTORY_WEB_TOKEN"
SESSION_COOKIE = "cf_session"
CSRF_COOKIE = "cf_csrf"


@dataclass
class WebConfig:
    """How the web UI runs. The operator token comes from :data:`TOKEN_ENV` unless given; without one the
    operator pages refuse every login."""

    public_only: bool = False
    operator_token: str | None = None
    store: str | None = None  # the blob store; default: the one the catalog's runs recorded
    max_upload_bytes: int = 500 * 1024 * 1024
    lookup_timeout_s: float = 300.0
    lookups_at_once: int = 2
    login_limit: tuple[int, float] = (5, 60.0)  # attempts per address and window (seconds)
    request_limit: tuple[int, float] = (5, 3600.0)  # takedown requests per address and window
    lookup_limit: tuple[int, float] = (30, 3600.0)
    session_ttl_s: float = 8 * 3600
    tmp_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _ReadOnlyCatalog(Catalog):
    """The catalog as the public pages see it: read, never written (no schema migration either)."""

    def _write_problem(self) -> str | None:
        return "the web UI's public pages open the catalog read-only"


class _Lookups:
    """Recent upload lookups, by a random token, for an hour: a takedown request filed from a lookup's
    answer takes the file's match and fingerprints from here (the file itself is gone by then)."""

    def __init__(self, ttl_s: float = 3600.0, size: int = 1000):
        self.ttl_s, self.size = ttl_s, size
        self._d: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def put(self, result: dict[str, Any]) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            now = time.monotonic()
            for k in [k for k, (t, _) in self._d.items() if t < now]:
                del self._d[k]
            while len(self._d) >= self.size:
                del self._d[next(iter(self._d))]
            self._d[token] = (now + self.ttl_s, result)
        return token

    def get(self, token: str | None) -> dict[str, Any] | None:
        with self._lock:
            got = self._d.get(token or "")
            return got[1] if got and got[0] >= time.monotonic() else None


#: An absolute file path inside a message (two or more parts): visitors never see the server's paths.
_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/:;,()'\"<>]+/)+[^\s/:;,()'\"<>]*")


def visible(exc: Exception, *, replace: dict[str, str] | None = None) -> str:
    """The words of an error for a page: its message and fix, without the server's file paths; a catalog
    that cannot be read or written is one sentence."""
    from ..errors import CatalogError

    if isinstance(exc, CatalogError):
        return "The catalog cannot be read or written right now; try again later."
    text = getattr(exc, "message", None) or str(exc)
    fix = getattr(exc, "fix", None)
    if fix:
        text = f"{text} ({fix})"
    for k, v in (replace or {}).items():
        text = text.replace(k, v)
    return _PATH.sub("[a server path]", text)


def _ms(v) -> str:
    return "" if v is None else f"{v / 1000:.1f}s"


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def create_app(settings=None, config: WebConfig | None = None) -> FastAPI:
    """The web UI for the catalog of ``settings`` (:class:`~clipfactory.config.Settings`)."""
    from ..config import load_settings

    s = settings or load_settings()
    cfg = config or WebConfig()
    token = cfg.operator_token if cfg.operator_token is not None else os.environ.get(TOKEN_ENV) or None
    catalog = Catalog(s.catalog, create=False)
    catalog.require()
    public_catalog = _ReadOnlyCatalog(s.catalog, create=False)
    if cfg.store:
        store_root = cfg.store
    else:
        from ..catalog.meta import recorded_store

        store_root = recorded_store(public_catalog) if "store" not in s.model_fields_set else None
        store_root = store_root or s.store
    from ..storage import BlobStore

    store = BlobStore(store_root)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["ms"] = _ms
    templates.env.filters["pretty"] = lambda v: json.dumps(v, indent=2, default=str, sort_keys=True)
    templates.env.filters["sha"] = lambda uri: (uri or "").rsplit(":", 1)[-1]
    templates.env.filters["when"] = lambda t: (
        t.strftime("%Y-%m-%d %H:%M:%S") if hasattr(t, "strftime") else (t or "")
    )
    # a catalog URL is a link only when it is a web address (never javascript:, data:, ...)
    templates.env.tests["web_url"] = lambda u: (
        isinstance(u, str) and u.lower().startswith(("http://", "https://"))
    )
    sessions = Sessions(cfg.session_ttl_s)
    limits = {
        "login": RateLimiter(*cfg.login_limit),
        "request": RateLimiter(*cfg.request_limit),
        "lookup": RateLimiter(*cfg.lookup_limit),
    }
    lookups = _Lookups()
    busy = asyncio.Semaphore(max(1, cfg.lookups_at_once))

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, debug=False)
    app.state.catalog, app.state.store, app.state.config = catalog, store, cfg
    app.mount("/static", StaticFiles(directory=str(HERE / "static"), follow_symlink=False), name="static")

    # -- plumbing ---------------------------------------------------------------------------------------
    def secure(request: Request) -> bool:
        host = (request.url.hostname or "").lower()
        return host not in LOCAL_HOSTS or request.url.scheme == "https"

    def csrf_of(request: Request) -> str:
        sess = sessions.get(request.cookies.get(SESSION_COOKIE))
        if sess is not None:
            return sess.csrf
        tok = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
        if not tok:
            tok = request.state.new_csrf = secrets.token_urlsafe(32)
        return tok

    def page(request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        sess = sessions.get(request.cookies.get(SESSION_COOKIE))
        ctx.update(
            request=request,
            csrf=csrf_of(request),
            operator=sess.operator if sess else None,
            public_only=cfg.public_only,
        )
        resp = templates.TemplateResponse(request, name, ctx, status_code=status)
        new = getattr(request.state, "new_csrf", None)
        if new and not request.cookies.get(CSRF_COOKIE):
            resp.set_cookie(
                CSRF_COOKIE, new, httponly=True, samesite="strict", secure=secure(request), path="/"
            )
        return resp

    def error(request: Request, status: int, message: str, fix: str | None = None) -> HTMLResponse:
        return page(request, "error.html", status=status, message=message, fix=fix)

    def check_csrf(request: Request, form_token: str | None) -> bool:
        sess = sessions.get(request.cookies.get(SESSION_COOKIE))
        expected = sess.csrf if sess is not None else request.cookies.get(CSRF_COOKIE)
        return same_token(expected, form_token)

    def operator_of(request: Request):
        return sessions.get(request.cookies.get(SESSION_COOKIE))

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        try:
            resp = await call_next(request)
        except Exception:  # never a stack trace in a response
            log.exception("error serving %s", request.url.path)
            resp = HTMLResponse("<!doctype html><title>Error</title><p>Internal error.</p>", status_code=500)
        if request.url.path.startswith("/transparency/") and resp.headers.get("x-cf-report"):
            del resp.headers["x-cf-report"]
            return add_headers(resp, REPORT_CSP)
        return add_headers(resp)

    @app.exception_handler(404)
    async def _not_found(request: Request, exc):
        return error(request, 404, "Not found.")

    @app.exception_handler(405)
    async def _not_allowed(request: Request, exc):
        return error(request, 405, "Method not allowed.")

    @app.exception_handler(ClipfactoryError)
    async def _cf_error(request: Request, exc: ClipfactoryError):
        log.info("%s: %s", request.url.path, exc)
        return error(request, 404 if isinstance(exc, NotFoundError) else 400, visible(exc))

    @app.exception_handler(Exception)
    async def _any_error(request: Request, exc: Exception):
        log.error("error serving %s: %s", request.url.path, exc, exc_info=exc)
        return error(request, 500, "Internal error: the server could not answer this request.")

    # -- public pages -----------------------------------------------------------------------------------
    def index_freshness() -> dict[str, Any]:
        from ..catalog.browse import index_freshness as freshness

        return freshness(public_catalog, store)

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        return page(request, "lookup.html", freshness=index_freshness(), limit_mb=cfg.max_upload_bytes >> 20)

    def answer_page(
        request: Request, result: dict[str, Any], *, lookup_token: str | None, filename: str | None
    ):
        return page(
            request,
            "lookup_result.html",
            result=result,
            lookup_token=lookup_token,
            filename=filename,
            freshness=index_freshness(),
        )

    @app.post("/lookup", response_class=HTMLResponse)
    async def lookup_upload(request: Request):
        from starlette.concurrency import run_in_threadpool

        from ..fingerprints.lookup import lookup

        if not limits["lookup"].allow(_client(request)):
            return error(request, 429, "Too many lookups from this address; try again later.")
        try:
            async with received_upload(
                request.headers.get("content-type", ""),
                request.headers.get("content-length"),
                request.stream(),
                limit=cfg.max_upload_bytes,
                tmp_dir=cfg.tmp_dir,
            ) as up:
                if not check_csrf(request, up.fields.get("csrf")):
                    return error(request, 403, "The form has expired; reload the page and try again.")
                async with busy:
                    try:
                        result = await asyncio.wait_for(
                            run_in_threadpool(
                                lookup, public_catalog, up.path, settings=s, store=store, keep_hashes=True
                            ),
                            timeout=cfg.lookup_timeout_s,
                        )
                    except TimeoutError:
                        return error(
                            request, 503, f"Fingerprinting took longer than {cfg.lookup_timeout_s:.0f} s."
                        )
                    except ClipfactoryError as exc:
                        msg = visible(exc, replace={str(up.path): up.filename or "the file"})
                        return error(request, 400, msg)
                filename = up.filename
        except UploadError as exc:
            return error(request, exc.status, str(exc))
        result["query"]["path"] = filename
        tok = lookups.put(result) if result["status"] == "matched" else None
        return answer_page(request, result, lookup_token=tok, filename=filename)

    @app.post("/lookup/url", response_class=HTMLResponse)
    async def lookup_by_url(request: Request):
        from ..fingerprints.lookup import lookup_url

        form = await request.form()
        if not check_csrf(request, form.get("csrf")):
            return error(request, 403, "The form has expired; reload the page and try again.")
        if not limits["lookup"].allow(_client(request)):
            return error(request, 429, "Too many lookups from this address; try again later.")
        result = lookup_url(public_catalog, str(form.get("url") or ""), settings=s)
        return answer_page(request, result, lookup_token=None, filename=None)

    @app.get("/thumb/{sha}")
    def thumb(sha: str, request: Request):
        from ..catalog.browse import referenced_blob

        uri = referenced_blob(public_catalog, sha, kinds=("thumb",))
        resp = uri and file_response(store.path(sha), store.root, "image/jpeg", request.headers.get("range"))
        return resp or error(request, 404, "Not found.")

    @app.get("/request", response_class=HTMLResponse)
    def request_form(request: Request, lookup: str | None = None, url: str | None = None):
        from ..fingerprints.requests import RELATIONSHIPS

        found = lookups.get(lookup) if lookup else None
        return page(
            request,
            "request_form.html",
            relationships=RELATIONSHIPS,
            lookup_token=lookup if found else None,
            found=found,
            url=url or "",
            form={},
        )

    @app.post("/request")
    async def request_submit(request: Request):
        from ..fingerprints.requests import RELATIONSHIPS, submit_request

        form = await request.form()
        if not check_csrf(request, form.get("csrf")):
            return error(request, 403, "The form has expired; reload the page and try again.")
        if not limits["request"].allow(_client(request)):
            return error(request, 429, "Too many takedown requests from this address; try again later.")
        found = lookups.get(str(form.get("lookup") or "")) if form.get("lookup") else None
        try:
            r = submit_request(
                catalog,
                contact=str(form.get("contact") or ""),
                relationship=str(form.get("relationship") or ""),
                statement=str(form.get("statement") or ""),
                work_url=str(form.get("url") or "") or None,
                lookup_result=found,
            )
        except ClipfactoryError as exc:
            return page(
                request,
                "request_form.html",
                status=400,
                relationships=RELATIONSHIPS,
                lookup_token=form.get("lookup") if found else None,
                found=found,
                url=str(form.get("url") or ""),
                form=dict(form),
                problem=visible(exc),
            )
        return RedirectResponse(f"/request/{r['request_id']}", status_code=303)

    @app.get("/request/{request_id}", response_class=HTMLResponse)
    def request_status(request: Request, request_id: str):
        from ..fingerprints.requests import get_request, public_view

        try:
            r = get_request(public_catalog, request_id)
        except NotFoundError:
            return error(request, 404, "No takedown request with this id.")
        return page(request, "request_status.html", r=public_view(r))

    def builds() -> list[dict[str, Any]]:
        from ..catalog.browse import builds_with_reports

        return builds_with_reports(public_catalog)

    @app.get("/transparency", response_class=HTMLResponse)
    def transparency(request: Request):
        return page(request, "transparency.html", builds=builds())

    @app.get("/transparency/{build_id}/{role}")
    def report_file(request: Request, build_id: str, role: str):
        for b in builds():
            if b["build_id"] == build_id and role in b["reports"]:
                from ..buildfolder import BuildFolder

                folder = BuildFolder(b["out_dir"], build_id)
                name = b["reports"][role]
                kind = {
                    ".html": "text/html; charset=utf-8",
                    ".json": "application/json",
                    ".md": "text/plain; charset=utf-8",
                    ".csv": "text/csv; charset=utf-8",
                }.get(Path(name).suffix, "application/octet-stream")
                if folder.remote:  # a build on object storage: the report is read from the bucket
                    try:
                        data = folder.read_bytes(name)
                    except ClipfactoryError:
                        data = None
                    resp = (
                        None if data is None
                        else Response(data, media_type=kind, headers={"Cache-Control": "private, max-age=3600"})
                    )
                else:
                    out = Path(b["out_dir"])
                    resp = file_response(out / name, out, kind, None)
                if resp is not None:
                    resp.headers["x-cf-report"] = "1"
                    return resp
        return error(request, 404, "Not found.")

    if not cfg.public_only:
        _operator_routes(
            app, page, error, check_csrf, operator_of, sessions, limits, token, catalog, store, s, secure
        )
    return app


def _operator_routes(
    app, page, error, check_csrf, operator_of, sessions, limits, token, catalog, store, s, secure
):
    def need(request: Request):
        sess = operator_of(request)
        if sess is None:
            return None, error(request, 401, "Log in to see the operator pages.", "/operator/login")
        return sess, None

    @app.get("/operator/login", response_class=HTMLResponse)
    def login_form(request: Request):
        return page(request, "login.html", configured=bool(token))

    @app.post("/operator/login")
    async def login(request: Request):
        form = await request.form()
        if not check_csrf(request, form.get("csrf")):
            return error(request, 403, "The form has expired; reload the page and try again.")
        if not limits["login"].allow(request.client.host if request.client else "?"):
            return error(request, 429, "Too many login attempts from this address; wait a minute.")
        name = str(form.get("name") or "").strip()[:100]
        if not token or not same_token(token, str(form.get("token") or "")) or not name:
            return page(
                request, "login.html", status=401, configured=bool(token), problem="wrong name or token"
            )
        sid, _sess = sessions.create(name)
        resp = RedirectResponse("/operator", status_code=303)
        resp.set_cookie(
            "cf_session",
            sid,
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path="/",
            max_age=int(sessions.ttl_s),
        )
        return resp

    @app.post("/operator/logout")
    async def logout(request: Request):
        form = await request.form()
        if operator_of(request) is None:
            return error(request, 401, "Not logged in.")
        if not check_csrf(request, form.get("csrf")):
            return error(request, 403, "The form has expired; reload the page and try again.")
        sessions.drop(request.cookies.get("cf_session"))
        resp = RedirectResponse("/", status_code=303)
        resp.delete_cookie("cf_session", path="/")
        return resp

    @app.get("/operator", response_class=HTMLResponse)
    def dashboard(request: Request):
        from ..acquire.health import link_health
        from ..catalog.browse import failures_by_reason
        from ..catalog.outcomes import list_runs, run_detail

        sess, deny = need(request)
        if deny:
            return deny
        runs = list_runs(catalog)[:20]
        details = {r["run_id"]: run_detail(catalog, r["run_id"]) for r in runs[:5]}
        running = any(r["status"] == "running" for r in runs)
        return page(
            request,
            "dashboard.html",
            runs=runs,
            details=details,
            running=running,
            failures=failures_by_reason(catalog),
            health=link_health(catalog, load_pending=False),
        )

    @app.get("/operator/clips", response_class=HTMLResponse)
    def clips(request: Request):
        from ..catalog.browse import SCORES, browse_clips, filter_options

        sess, deny = need(request)
        if deny:
            return deny
        q = request.query_params

        def num(name):
            v = q.get(name)
            try:
                return float(v) if v not in (None, "") else None
            except ValueError:
                return None

        scores = {
            n: (num(f"min_{n}"), num(f"max_{n}"))
            for n in SCORES
            if num(f"min_{n}") is not None or num(f"max_{n}") is not None
        }
        page_no = max(0, int(q.get("page", "0")) if q.get("page", "0").isdigit() else 0)
        res = browse_clips(
            catalog,
            build=q.get("build") or None,
            dataset=q.get("dataset") or None,
            license_class=q.get("license_class") or None,
            drop_reason=q.get("drop_reason") or None,
            category=q.get("category") or None,
            scores=scores,
            limit=48,
            offset=48 * page_no,
        )
        return page(
            request, "clips.html", res=res, options=filter_options(catalog), q=dict(q), page_no=page_no
        )

    @app.get("/operator/clips/{clip_id}", response_class=HTMLResponse)
    def clip(request: Request, clip_id: str):
        from ..catalog.browse import clip_detail
        from ..explain import explain_source

        sess, deny = need(request)
        if deny:
            return deny
        d = clip_detail(catalog, clip_id)
        if d is None:
            return error(request, 404, "No such clip.")
        try:
            explained = explain_source(catalog, d["clip"]["source_id"], settings=s)
        except ClipfactoryError as exc:
            explained = {"error": str(exc)}
        return page(request, "clip.html", d=d, explained=explained)

    @app.get("/operator/blob/{sha}")
    def blob(request: Request, sha: str):
        from ..catalog.browse import referenced_blob

        sess, deny = need(request)
        if deny:
            return deny
        found = referenced_blob(catalog, sha, kinds=("clip", "thumb"))
        if found is None:
            return error(request, 404, "Not found.")
        is_thumb = found[1] == "thumb"
        resp = file_response(
            store.path(sha),
            store.root,
            "image/jpeg" if is_thumb else "video/mp4",
            request.headers.get("range"),
        )
        return resp or error(request, 404, "Not found.")

    @app.get("/operator/search", response_class=HTMLResponse)
    def search(request: Request, q: str = ""):
        from ..catalog.browse import text_search

        sess, deny = need(request)
        if deny:
            return deny
        semantic, results, note = None, [], None
        if q.strip():
            try:
                from ..semantic.search import search as semantic_search

                semantic = semantic_search(catalog, q, k=20)
            except (ClipfactoryError, ImportError) as exc:
                why = exc.message if isinstance(exc, ClipfactoryError) else "its extra is not installed"
                note = f"semantic search is not available here ({why}); text matches in captions and titles instead"
                results = text_search(catalog, q)
        return page(request, "search.html", q=q, semantic=semantic, results=results, note=note)

    @app.get("/operator/requests", response_class=HTMLResponse)
    def queue(request: Request, status: str | None = None):
        from ..fingerprints.requests import STATUSES, list_requests

        sess, deny = need(request)
        if deny:
            return deny
        st = status if status in STATUSES else None
        return page(request, "requests.html", rows=list_requests(catalog, st), shown=st, statuses=STATUSES)

    @app.get("/operator/requests/{request_id}", response_class=HTMLResponse)
    def request_detail(request: Request, request_id: str):
        from ..fingerprints.requests import get_request

        sess, deny = need(request)
        if deny:
            return deny
        r = get_request(catalog, request_id)
        return page(request, "request_detail.html", r=r, receipt=None)

    @app.post("/operator/requests/{request_id}/{action}", response_class=HTMLResponse)
    async def request_action(request: Request, request_id: str, action: str):
        from ..fingerprints.requests import approve_request, ask_for_info, get_request, reject_request

        sess, deny = need(request)
        if deny:
            return deny
        form = await request.form()
        if not check_csrf(request, form.get("csrf")):
            return error(request, 403, "The form has expired; reload the page and try again.")
        note = str(form.get("note") or "")
        receipt = None
        from starlette.concurrency import run_in_threadpool

        if action == "approve":
            out = await run_in_threadpool(
                approve_request, catalog, s, request_id=request_id, actor=sess.operator, store=store
            )
            receipt = out["receipt"]
        elif action == "reject":
            reject_request(catalog, request_id=request_id, actor=sess.operator, reason=note)
        elif action == "info":
            ask_for_info(catalog, request_id=request_id, actor=sess.operator, question=note)
        else:
            return error(request, 404, "Not found.")
        return page(request, "request_detail.html", r=get_request(catalog, request_id), receipt=receipt)
