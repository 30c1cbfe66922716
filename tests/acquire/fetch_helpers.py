"""Helpers of the acquisition tests (imported as ``cf_acquire_helpers``)."""

from __future__ import annotations

from pathlib import Path

import httpx


class LoopbackOnly(httpx.AsyncHTTPTransport):
    """A transport that refuses any host but 127.0.0.1, so no test can reach another machine."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.refused: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "127.0.0.1":
            self.refused.append(str(request.url))
            raise httpx.ConnectError(f"tests only talk to 127.0.0.1, not {request.url.host}", request=request)
        return await super().handle_async_request(request)


def allow_all(platform, host, source_id=None):
    return True, None


def leftovers(store) -> list[str]:
    """Files under incoming/ (partial downloads and temporaries)."""
    d = Path(store.root) / "incoming"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []
