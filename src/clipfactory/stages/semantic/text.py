"""``semantic.text``: one text vector per source, and per clip whose manifest span has a caption.

Reads
    :class:`~clipfactory.records.SourceRecord` items, and from the catalog their text: title, dataset
    labels and span captions (:mod:`clipfactory.semantic.texts`).
Writes
    rows of the ``embeddings`` table (modality ``text``), with the model id (name and hash of the weight
    files) and the hash of the text, and the model in ``embedding_models``. Items whose vector for the same
    model and text already exists are not encoded again. Each source is ``kept``; its outcome detail says
    how many vectors it has and whether it had any text (a source without text has no vector, and the
    categories call it ``other`` with zero confidence: it is never dropped).
Drop reasons
    none.
Resources
    the driver process (a catalog stage: it writes its own table): 1 CPU thread per ``threads``, about
    0.5 GB for the model. Encoding runs on ONNX Runtime (:mod:`clipfactory.semantic.text_model`).
"""

from __future__ import annotations

from pydantic import Field

from ...errors import ClipfactoryError
from ...records import Result, SourceRecord
from ...registry import register
from ...resources import Resources
from ...stage import Stage, StageConfig


@register
class SemanticTextStage(Stage):
    name = "semantic.text"
    version = 1
    resources = Resources(cpus=2.0, memory_gb=1.0)
    batch_size = 1_000_000
    input_type = SourceRecord
    output_type = SourceRecord
    driver_side = True
    resume = False  # an item's text can change (a new manifest, a caption); the text hash decides

    class Config(StageConfig):
        model_dir: str | None = Field(
            None, description="Folder of a BERT sentence model; none: the packaged all-MiniLM-L6-v2."
        )
        threads: int = Field(0, description="ONNX Runtime threads (0: one per core).")
        max_captions: int = Field(3, description="Span captions joined into a source's text, at most.")

    def setup(self) -> None:
        self._encoder = None
        self._load_error: str | None = None
        try:
            from ...semantic.text_model import shared_encoder

            self._encoder = shared_encoder(self.config.model_dir, threads=self.config.threads)
        except ClipfactoryError as exc:
            self._load_error = str(exc)

    def process_batch(self, items: list[SourceRecord]) -> list[Result]:
        if not items:
            return []
        if not hasattr(self, "_encoder"):
            self.setup()
        if self._encoder is None:
            return [Result.failed(s.source_id, "terminal", self._load_error or "no text model") for s in items]
        if not self.context.catalog_path:
            return [Result.failed(s.source_id, "terminal", "semantic.text needs the catalog") for s in items]
        from ...catalog import Catalog
        from ...semantic.indexing import embed_sources

        catalog = Catalog(self.context.catalog_path)
        if not catalog.path.is_file():
            return [Result.failed(s.source_id, "terminal", f"no catalog at {catalog.where}") for s in items]
        done = embed_sources(
            catalog, self._encoder, [s.source_id for s in items], max_captions=self.config.max_captions
        )
        out = []
        counts = {"encoded": 0, "vectors": 0, "without_text": 0}
        for s in items:
            d = done.get(s.source_id, {"vectors": 0, "text": False, "encoded": 0})
            counts["encoded"] += d["encoded"]
            counts["vectors"] += d["vectors"]
            counts["without_text"] += not d["text"]
            detail = {"model_id": self._encoder.model_id, "vectors": d["vectors"], "text": d["text"]}
            out.append(Result.kept(s.source_id, s, detail=detail))
        self.last_counts = counts
        return out
