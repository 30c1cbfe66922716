"""The stage contract.

A stage is one module with one class. It declares a stable ``name`` (a catalog key, config section and
CLI word; never renamed), a ``version`` (bump it when outputs change; that invalidates resume), the
``resources`` a worker needs, a ``batch_size`` and a nested pydantic ``Config`` whose fields carry
documented defaults. ``setup()`` loads models once per worker, ``process_batch()`` returns exactly one
:class:`~clipfactory.records.Result` per input, ``teardown()`` releases what ``setup`` took.

Stages never import an executor. Everything a stage needs from its surroundings comes through the
picklable :class:`StageContext`, so the same object runs in the local executor and in a Ray actor.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from .errors import ClipfactoryError, ConfigError, describe_invalid
from .records import Record, Result
from .resources import Resources

log = logging.getLogger(__name__)


class StageConfig(BaseModel):
    """Base for every stage's ``Config``: unknown keys are an error, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StageContext:
    """Picklable surroundings of a stage: where blobs go, where scratch files go, which run this is."""

    store_root: str | None = None
    work_dir: str | None = None
    run_id: str | None = None
    catalog_path: str | None = None  # stages may open it read-only; only the executor writes
    extras: dict[str, Any] = field(default_factory=dict)

    def store(self):
        from .storage import BlobStore

        if not self.store_root:
            raise ConfigError("this stage needs a blob store", fix="set [store] root or --store")
        return BlobStore(self.store_root)

    def scratch(self, name: str) -> Path:
        base = Path(self.work_dir or (Path(self.store_root or ".") / "tmp"))
        path = base / name
        path.mkdir(parents=True, exist_ok=True)
        return path


class Stage:
    """Base class of every stage. See the module docstring for the contract."""

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    resources: ClassVar[Resources] = Resources()
    batch_size: ClassVar[int] = 8
    input_type: ClassVar[type[Record]] = Record
    output_type: ClassVar[type[Record] | None] = None
    #: A catalog stage (the policy gate, the build export) decides with vectorised SQL over the whole
    #: catalog and may write catalog tables of its own (decisions, builds). It runs in the driver process
    #: over all its items in one batch, on every executor; its outcome rows still go through the executor.
    driver_side: ClassVar[bool] = False
    #: Whether items finished earlier are skipped. A stage whose output depends on all its items together
    #: (the build export) is run over every item each time and is idempotent instead.
    resume: ClassVar[bool] = True
    #: Whether the stage's workers count limits together (per-origin connections and requests per second
    #: when fetching): an executor that runs it in several processes then gives every worker one shared
    #: :class:`~clipfactory.limits.SharedLimits` as ``context.extras["shared_limits"]``.
    shared_limits: ClassVar[bool] = False

    class Config(StageConfig):
        pass

    def __init__(self, config: BaseModel | dict[str, Any] | None = None, context: StageContext | None = None):
        if config is None:
            config = {}
        if isinstance(config, dict):
            unknown = sorted(set(config) - set(self.Config.model_fields))
            if unknown:
                raise ConfigError(
                    f"unknown option(s) of stage {self.name}: {', '.join(unknown)}",
                    item=f"[{self.name}]",
                    fix=f"the options are {', '.join(self.Config.model_fields)} (docs/config.md)",
                )
            try:
                config = self.Config(**config)
            except Exception as exc:  # pydantic.ValidationError
                raise ConfigError(
                    f"invalid config for stage {self.name}: {describe_invalid(exc)}", item=f"[{self.name}]"
                ) from exc
        self.config = config
        self.context = context or StageContext()

    # -- lifecycle -------------------------------------------------------------------------------
    def setup(self) -> None:
        """Load models or open resources, once per worker."""

    def prefetch(self, items: list[Record]) -> None:
        """Optional: read what every item will need in one go (an executor running the stage in its own
        process calls it once, after :meth:`setup`, with all the items to process). Results must not
        depend on whether it was called: a stage without prefetched data reads per batch."""

    def process_batch(self, items: list[Record]) -> list[Result]:
        """Default: call :meth:`process` per item, turning exceptions into failure rows."""
        return [self.safe_process(item) for item in items]

    def process(self, item: Record) -> Result:
        raise NotImplementedError

    def teardown(self) -> None:
        """Release what :meth:`setup` acquired."""

    def progress_info(self, results: list[Result]) -> dict[str, float]:
        """Extra figures for the progress display after a batch (e.g. frames per second); none by default."""
        return {}

    # -- helpers -----------------------------------------------------------------------------------
    def item_id(self, item: Record) -> str:
        return item.id

    def safe_process(self, item: Record) -> Result:
        """Run :meth:`process` for one item; one bad item never kills a batch."""
        item_id = self.item_id(item)
        try:
            return self.process(item)
        except ClipfactoryError as exc:
            kind = "transient" if exc.transient else "terminal"
            return Result.failed(item_id, kind, str(exc))
        except Exception as exc:  # a bug in our code: counted against the error budget
            log.exception("stage %s failed on %s", self.name, item_id)
            return Result.failed(item_id, "bug", f"{type(exc).__name__}: {exc}")

    @property
    def config_hash(self) -> str:
        payload = json.dumps(self.config.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(f"{self.name}|{payload}".encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "resources": vars(self.resources) if hasattr(self.resources, "__dict__") else str(self.resources),
            "batch_size": self.batch_size,
            "config": self.config.model_dump(mode="json"),
            "config_hash": self.config_hash,
        }


def config_docs(config_cls: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Field name → {default, description}; used by docs and by the stage contract test."""
    out = {}
    for name, info in config_cls.model_fields.items():
        out[name] = {"default": info.default, "description": info.description}
    return out
