"""The web UI (``clipfactory serve``): see :mod:`clipfactory.web.app` and docs/web.md."""

from .app import TOKEN_ENV, WebConfig, create_app

__all__ = ["TOKEN_ENV", "WebConfig", "create_app"]
