"""``clipfactory serve``: the web UI (public lookup, takedown requests, transparency; operator pages)."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app
from .common import CatalogOpt, ConfigOpt, StoreOpt, err_console, existing_catalog, settings


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8765,
    public_only: Annotated[
        bool,
        typer.Option("--public-only", help="Serve the public pages only (lookup, requests, transparency)."),
    ] = False,
    store: StoreOpt = None,
    max_upload_mb: Annotated[
        int, typer.Option("--max-upload-mb", help="Largest upload accepted (MB).")
    ] = 500,
    catalog: CatalogOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the web UI. Operator pages need the token in CLIPFACTORY_WEB_TOKEN (see docs/web.md)."""
    from ..errors import MissingExtraError, require

    require("uvicorn", "web", feature="clipfactory serve")
    s = settings(config, None, catalog=catalog, store=store)
    existing_catalog(s)  # names the path and the fix where there is no catalog
    from ..web import TOKEN_ENV, WebConfig, create_app

    try:
        web = create_app(
            s,
            WebConfig(
                public_only=public_only,
                store=str(store) if store else None,
                max_upload_bytes=max_upload_mb * 1024 * 1024,
            ),
        )
    except ImportError as exc:  # pragma: no cover - fastapi/jinja2 missing
        raise MissingExtraError(exc.name or "fastapi", "web", feature="clipfactory serve") from None
    import os

    import uvicorn

    if not public_only and not os.environ.get(TOKEN_ENV):
        err_console.print(f"{TOKEN_ENV} is not set: the operator pages refuse every login", highlight=False)
    err_console.print(f"serving {s.catalog} on http://{host}:{port}/", highlight=False)
    uvicorn.run(web, host=host, port=port, log_level="warning", proxy_headers=True, server_header=False)
