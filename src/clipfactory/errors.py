"""One exception tree for the whole project.

Every error names the item it concerns and the fix, so that the CLI can print one clear line.
All types pickle cleanly (they only carry plain strings), so they cross process and Ray boundaries.
"""

from __future__ import annotations

from typing import Any


class ClipfactoryError(Exception):
    """Root of every error clipfactory raises on purpose.

    ``item`` names what the error is about (a file, a source id, a config key); ``fix`` tells the user
    what to do about it.
    """

    transient: bool = False

    def __init__(self, message: str, *, item: str | None = None, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.item = item
        self.fix = fix

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.item, self.fix))

    def __str__(self) -> str:
        parts = []
        if self.item:
            parts.append(f"{self.item}: ")
        parts.append(self.message)
        if self.fix:
            parts.append(f" (fix: {self.fix})")
        return "".join(parts)


def _rebuild(cls, message, item, fix):
    return cls(message, item=item, fix=fix)


class TransientError(ClipfactoryError):
    """Worth retrying with backoff: timeouts, 429, 5xx, a busy catalog."""

    transient = True


class TerminalError(ClipfactoryError):
    """Retrying will not help: unreadable media, 404, a denied licence."""


class ConfigError(TerminalError):
    """The configuration or a command-line argument is wrong."""


class StorageLocationError(ConfigError):
    """An object-store location in the settings (``store``, ``build.out``) cannot be listed or written with
    this machine's credentials and endpoint. ``item`` is the setting, e.g. ``store = s3://bucket/x``."""


class CatalogError(ClipfactoryError):
    """The catalog cannot be opened or is in an unexpected state."""


class CatalogBusyError(TransientError, CatalogError):
    """Another process holds the catalog's write lock for longer than we were willing to wait."""


class ManifestError(TerminalError):
    """A manifest cannot be read as the format it claims (or was told) to be."""


class MediaError(TerminalError):
    """A media file cannot be probed, decoded or cut."""


class MediaReasonError(MediaError):
    """A :class:`MediaError` with a namespaced outcome ``reason`` (one of the subclass's ``REASONS``); the
    message starts with it. Survives pickling (Ray workers send it back whole)."""

    REASONS: tuple[str, ...] = ()

    def __init__(self, reason: str, detail: str, *, item: str | None = None, fix: str | None = None):
        if reason not in self.REASONS:
            raise ValueError(f"unknown {type(self).__name__} reason {reason!r}")
        super().__init__(f"{reason}: {detail}", item=item, fix=fix)
        self.reason = reason
        self.detail = detail

    def __reduce__(self):
        return (_rebuild_reason_error, (type(self), self.reason, self.detail, self.item, self.fix))


def _rebuild_reason_error(cls, reason, detail, item, fix):
    return cls(reason, detail, item=item, fix=fix)


class PolicyError(TerminalError):
    """A policy file, purpose profile or licence entry is invalid."""


class NotFoundError(TerminalError):
    """A named item (source, clip, build, dataset) does not exist in the catalog."""


class MissingExtraError(ClipfactoryError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, *, feature: str | None = None, install: str | None = None):
        what = feature or package
        super().__init__(
            f"{what} needs the optional package '{package}'",
            item=package,
            fix=install or f"pip install 'clipfactory[{extra}]'",
        )
        self.package = package
        self.extra = extra
        self.feature = feature
        self.install = install

    def __reduce__(self):
        return (_rebuild_missing, (self.package, self.extra, self.feature, self.install))


def _rebuild_missing(package, extra, feature, install):
    return MissingExtraError(package, extra, feature=feature, install=install)


class ErrorBudgetExceeded(ClipfactoryError):
    """Too many items failed with ``bug`` errors; the run stopped to avoid wasting work."""


def require(module: str, extra: str, feature: str | None = None):
    """Import an optional module or raise :class:`MissingExtraError` naming the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(module.split(".")[0], extra, feature=feature) from exc


def _known_fields(model: Any, path: tuple) -> list[str]:
    """The field names of the pydantic model at ``path`` below ``model`` (nested models followed through
    their annotations); empty when the path leads elsewhere."""
    for key in path:
        field = getattr(model, "model_fields", {}).get(key)
        if field is None:
            return []
        model = field.annotation
    return sorted(getattr(model, "model_fields", {}))


def describe_invalid(exc: Exception, model: Any = None) -> str:
    """One readable line per invalid field of a pydantic ``ValidationError`` (no links, no type codes).

    ``cut_min_score: Input should be a valid number (got 'abc')``; an unknown key is ``bogus: unknown option
    (known: a, b, c); did you mean b?`` when ``model`` (the validated class) is given; other exceptions come back as
    ``str(exc)``.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    try:
        items = errors(include_url=False)
    except TypeError:  # not a pydantic error after all
        return str(exc)
    parts = []
    for err in items:
        where = ".".join(str(p) for p in err.get("loc", ())) or "value"
        got = err.get("input")
        shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
        if err.get("type") == "extra_forbidden":
            known = _known_fields(model, tuple(err.get("loc", ()))[:-1]) if model is not None else []
            import difflib

            near = difflib.get_close_matches(str(err["loc"][-1]), known, n=1, cutoff=0.6) if known else []
            parts.append(
                f"{where}: unknown option"
                + (f" (known: {', '.join(known)})" if known else "")
                + (f"; did you mean {near[0]}?" if near else "")
            )
            continue
        parts.append(f"{where}: {err.get('msg', 'invalid')}{shown}")
    return "; ".join(parts) or str(exc)
