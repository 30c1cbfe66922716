"""Executors run a pipeline of stages. Stages never import this package."""

from .local import LocalExecutor, RunSummary, StageSummary, new_run_id

__all__ = ["LocalExecutor", "RunSummary", "StageSummary", "new_run_id"]


def get_executor(name: str, catalog, **kwargs):
    """``local`` (default) or ``ray`` (needs the ``ray`` extra)."""
    if name == "local":
        return LocalExecutor(catalog, **kwargs)
    if name == "ray":
        from .ray import RayExecutor

        return RayExecutor(catalog, **kwargs)
    from ..errors import ConfigError

    raise ConfigError(f"unknown executor {name!r}", fix="use 'local' or 'ray'")
