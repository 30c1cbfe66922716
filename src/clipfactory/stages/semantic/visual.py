"""``semantic.visual``: one visual vector per clip, from the shot thumbnail of the analysis pass, and one per
source (the mean of its clips'), when an image–text model is configured.

Reads
    :class:`~clipfactory.records.SourceRecord` items, and from the catalog their clips' ``thumb_uri`` (the
    JPEG that ``media.analyse`` kept of each shot: no second decode).
Writes
    rows of the ``embeddings`` table (modality ``visual``) with the model id (name and hash of the weight
    files), and the model, with its licence, in ``embedding_models``
    (:mod:`clipfactory.semantic.visual`). Each source is ``kept``. With no model configured every source
    is kept with the detail ``{"visual": "skipped", "reason": ...}``: nothing fails.
Drop reasons
    none.
Resources
    the driver process (a catalog stage); the model's own memory (a CLIP ViT-B/32 is about 0.6 GB).
"""

from __future__ import annotations

from pydantic import Field

from ...errors import ClipfactoryError
from ...records import Result, SourceRecord
from ...registry import register
from ...resources import Resources
from ...stage import Stage, StageConfig

NO_MODEL = "no visual model configured: set semantic.visual.model to a model folder or name (docs/semantic.md)"


@register
class SemanticVisualStage(Stage):
    name = "semantic.visual"
    version = 1
    resources = Resources(cpus=2.0, memory_gb=1.0)
    batch_size = 100_000
    input_type = SourceRecord
    output_type = SourceRecord
    driver_side = True
    resume = False  # a thumbnail can change; its hash decides

    class Config(StageConfig):
        model: str | None = Field(
            None,
            description="An image-text model: a transformers folder or hub name (CLIP, SigLIP), or an ONNX "
            "folder (docs/semantic.md). None: visual vectors are skipped.",
        )
        license: str | None = Field(None, description="Licence of the model's weights, recorded with the model.")
        threads: int = Field(0, description="Threads for the model (0: the runtime's default).")
        batch: int = Field(32, ge=1, description="Images per forward pass.")

    def setup(self) -> None:
        self._encoder = None
        self._skip: str | None = None
        if not self.config.model:
            self._skip = NO_MODEL
            return
        from ...semantic.visual_model import shared_visual_encoder

        try:
            self._encoder = shared_visual_encoder(
                self.config.model, license=self.config.license, threads=self.config.threads
            )
        except ClipfactoryError as exc:
            self._skip = str(exc)
            self._error = exc

    def process_batch(self, items: list[SourceRecord]) -> list[Result]:
        if not items:
            return []
        if not hasattr(self, "_skip"):
            self.setup()
        self.last_counts = {"vectors": 0, "encoded": 0, "frames": 0, "skipped": self._skip}
        if self._encoder is None:
            if self.config.model:  # configured but not loadable: each source says why, as a terminal failure
                return [Result.failed(s.source_id, "terminal", self._skip or "visual model") for s in items]
            return [Result.kept(s.source_id, s, detail={"visual": "skipped", "reason": self._skip}) for s in items]
        if not self.context.catalog_path:
            return [Result.failed(s.source_id, "terminal", "semantic.visual needs the catalog") for s in items]
        from ...catalog import Catalog
        from ...semantic.visual import embed_visual

        done = embed_visual(
            Catalog(self.context.catalog_path), self.context.store(), self._encoder,
            [s.source_id for s in items], batch=self.config.batch,
        )
        out = []
        for s in items:
            d = done.get(s.source_id, {"vectors": 0, "encoded": 0, "frames": 0})
            for k in ("vectors", "encoded", "frames"):
                self.last_counts[k] += d[k]
            out.append(Result.kept(s.source_id, s, detail={"model_id": self._encoder.model_id, **d}))
        return out
