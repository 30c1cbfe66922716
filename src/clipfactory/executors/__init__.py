"""Executors run a pipeline of stages. Stages never import this package."""

from .local import LocalExecutor, RunSummary, StageSummary

__all__ = [
    "LocalExecutor",
    "RunSummary",
    "StageSummary",
    "executor_from_settings",
    "get_executor",
]


def executor_from_settings(settings, catalog, **kwargs):
    """The executor that ``settings.executor`` names, configured from the settings."""
    common = {
        "workers": settings.workers,
        "retries": settings.retries,
        "error_budget": settings.error_budget,
        "parts": settings.parts,
    }
    if settings.executor == "ray":
        common["address"] = settings.ray_address
    return get_executor(settings.executor, catalog, **{**common, **kwargs})


def get_executor(name: str, catalog, **kwargs):
    """``local`` (default) or ``ray`` (needs the ``ray`` extra)."""
    if name == "local":
        return LocalExecutor(catalog, **kwargs)
    if name == "ray":
        from .ray import RayExecutor

        return RayExecutor(catalog, **kwargs)
    from ..errors import ConfigError

    raise ConfigError(f"unknown executor {name!r}", fix="use 'local' or 'ray'")
