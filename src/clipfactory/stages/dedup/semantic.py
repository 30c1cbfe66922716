"""``dedup.semantic``: SemDeDup over the clips' vectors (k-means clusters, then an epsilon within each).

Reads
    :class:`~clipfactory.records.ClipRecord` items, all in one batch, and from the catalog their vectors of
    the semantic layer (``embeddings``, kind ``clip``: text now, visual when a visual model is configured)
    and their sources' licences and policy decisions. With ``embed_missing`` (text), the missing text
    vectors of the clips (span captions, VLM captions, transcripts) are computed first, as
    ``clipfactory semantic index`` would.
Writes
    nothing new: each clip is kept, or dropped (see :mod:`clipfactory.semantic.semdedup`).
Drop reasons
    ``dedup.semantic_duplicate_of:<clip_id>`` naming the kept clip; ``dedup.restricted_copy:<clip_id>``
    for a clip whose vector duplicates a clip of a source the purpose may not use. A clip without a vector
    is kept (its detail says ``"vector": false``).
Resources
    the driver process (a catalog stage: it compares across the batch and the catalog); one CPU; memory
    about 1.5 kB per clip for 384-dimensional vectors, plus the text model (0.5 GB) with ``embed_missing``.
    Runs inside ``clipfactory run`` only with ``enabled = true``.
"""

from __future__ import annotations

from typing import Any

from ...records import ClipRecord, Result
from ...registry import register
from ...resources import Resources
from ...semantic.semdedup import STAGE_NAME, STAGE_VERSION, SemDedupConfig, config_of, load, model_for, plan
from ...stage import Stage


@register
class SemanticDedupStage(Stage):
    name = STAGE_NAME
    version = STAGE_VERSION
    resources = Resources(cpus=1.0, memory_gb=1.0)
    batch_size = 1_000_000
    input_type = ClipRecord
    output_type = ClipRecord
    Config = SemDedupConfig
    driver_side = True
    #: every clip is decided again on each run (a better copy may have arrived)
    resume = False

    def __init__(self, config=None, context=None):
        super().__init__(config, context)
        config_of(self.config)  # keep_order and modality are checked here, before any work
        self.last_stats: dict[str, Any] = {}

    @classmethod
    def wanted(cls, config: dict) -> bool:
        """Whether `clipfactory run` includes this stage."""
        return bool(config.get("enabled"))

    def check(self) -> None:
        """Raise :class:`~clipfactory.errors.MissingExtraError` (one line naming the pip install) when the extra is missing."""
        from ...errors import require

        require("faiss", "semantic", feature="semantic dedup (dedup.semantic)")
        if self.config.embed_missing and self.config.modality != "visual":
            require("onnxruntime", "semantic", feature="text vectors (dedup.semantic)")

    def process_batch(self, items: list[ClipRecord]) -> list[Result]:
        if not items:
            return []
        if not self.context.catalog_path:
            return [Result.failed(c.clip_id, "terminal", "dedup.semantic needs the catalog") for c in items]
        from ...catalog import Catalog
        from ...semantic.semdedup import prepare

        catalog = Catalog(self.context.catalog_path)
        if self.config.embed_missing and self.config.modality != "visual":
            from ...semantic.indexing import embed_sources
            from ...semantic.text_model import shared_encoder

            embed_sources(catalog, shared_encoder(), sorted({c.source_id for c in items}))
        model_id, modality = model_for(catalog, self.config.modality)
        if model_id is None:
            why = f"the catalog has no {modality} vectors (run `clipfactory semantic index`)"
            self.last_stats = {"clips": 0, "dropped": 0, "why": why}
            return [Result.kept(c.clip_id, c, detail={"vector": False, "why": why}) for c in items]
        purpose = self.config.purpose
        prepare(catalog, purpose, self.context.extras.get("settings"), model_id)
        clips, vectors, without = load(catalog, items, model_id, purpose)
        results, self.last_stats = plan(clips, vectors, self.config, model_id=model_id, modality=modality)
        self.last_stats["without_vector"] = len(without)
        by_id = {r.item_id: r for r in results}
        out = []
        for c in items:
            r = by_id.get(c.clip_id)
            if r is None:
                out.append(Result.kept(c.clip_id, c, detail={"vector": False, "model_id": model_id}))
            elif r.status == Result.KEPT:
                out.append(Result.kept(c.clip_id, c, detail=r.detail))
            else:
                out.append(r)
        return out
