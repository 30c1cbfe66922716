"""``caption.vlm``: a caption per clip from a vision-language model behind an OpenAI-compatible endpoint.

Reads
    :class:`~clipfactory.records.ClipRecord` items (planned clips; they need not be cut yet) and their
    source's media: ``frames`` JPEGs evenly spaced in the clip's span (the clip's shot thumbnail when
    ``frames`` is 0 or no frame decodes).
Writes
    the same clip with the model's caption added to ``captions`` as ``{"origin": "vlm", "model", "caption"}``
    (and, with ``enhance``, each manifest caption rewritten by the model, ``{"origin": "vlm", "model",
    "caption", "enhances": <the manifest caption>}``). The clip's ``caption`` becomes the VLM's when it has
    none from a manifest, or always with ``primary = "vlm"``; ``caption_origin`` says which it is. No model
    runs in clipfactory: the endpoint is a server the operator runs (vLLM, llama.cpp's server) or a hosted API.
Failures
    a timeout, a connection error, HTTP 429/5xx or a reply that is not a caption fails the clip as
    ``transient`` (the executor retries it with backoff); other HTTP 4xx is ``terminal``. After the retries
    the run sends the clip on without a VLM caption, unless ``required = true``; a later run asks again.
Drop reasons
    none.
Runs
    inside ``clipfactory run`` when ``endpoint`` is set.
Resources
    one CPU (JPEG encoding; the requests wait on the network, ``concurrency`` at a time).
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import Field

from ...catalog import Catalog
from ...catalog.db import load_records
from ...errors import ClipfactoryError, NotFoundError
from ...media.probe import MediaProbeError
from ...records import ClipRecord, Result, SourceRecord
from ...registry import register
from ...resources import Resources
from ...signals.faces import BlurDetectorOpt, BlurMinScoreOpt
from ...stage import Stage, StageConfig

DEFAULT_PROMPT = (
    "These images are frames of one short video clip, in order. Describe the clip in one sentence: "
    "who or what is in it, what happens, and where. Answer with the caption only."
)
DEFAULT_ENHANCE_PROMPT = (
    'A dataset describes this video clip as: "{caption}". Using the frames, rewrite that description as '
    "one accurate, detailed sentence. Answer with the caption only."
)


@register
class VlmCaptionStage(Stage):
    name = "caption.vlm"
    version = 1
    resources = Resources(cpus=1.0, memory_gb=0.5)
    batch_size = 32  # concurrency is bounded by the batch: at most 32 requests in flight
    input_type = ClipRecord
    output_type = ClipRecord

    class Config(StageConfig):
        endpoint: str | None = Field(
            None,
            description="Base URL of an OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1); the stage "
            "runs in `clipfactory run` only when it is set.",
        )
        model: str = Field("", description="Model name sent with each request (as the server knows it).")
        prompt: str = Field(DEFAULT_PROMPT, description="The instruction sent with the frames.")
        frames: int = Field(3, ge=0, le=16, description="Frames per clip (0: the shot thumbnail only).")
        frame_size: int = Field(512, ge=64, le=2048, description="Longer side of each frame sent, in pixels.")
        concurrency: int = Field(
            4, ge=1, le=32, description="Requests in flight at once (within a batch of 32 clips)."
        )
        timeout_s: float = Field(60.0, gt=0, description="Seconds to wait for one answer.")
        api_key_env: str | None = Field(
            None,
            description="Name of the environment variable holding the API key (the key itself is never "
            "stored); none: no Authorization header.",
        )
        max_tokens: int = Field(120, ge=1, description="Longest answer, in tokens.")
        temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
        enhance: bool = Field(
            False, description="Also ask the model to rewrite each manifest caption against the frames."
        )
        enhance_prompt: str = Field(
            DEFAULT_ENHANCE_PROMPT, description="The rewrite instruction; {caption} is the manifest caption."
        )
        primary: Literal["manifest", "vlm"] = Field(
            "manifest",
            description="Which caption becomes the clip's caption: a manifest's where there is one (else "
            "the VLM's), or always the VLM's (its rewrite, with enhance).",
        )
        only_uncaptioned: bool = Field(
            False, description="Ask only for clips without a manifest caption (enhance still rewrites)."
        )
        required: bool = Field(
            False, description="A clip left without a VLM caption after the retries stays out of the build."
        )
        blur_faces: bool = Field(
            False,
            description="Blur the faces of the frames sent (set by the run from privacy.blur_faces), as "
            "media.cut blurs the clips (docs/signals.md).",
        )
        face_detector: BlurDetectorOpt = "blazeface"
        face_min_score: BlurMinScoreOpt = 0.5

    @property
    def config_hash(self) -> str:
        """Without ``blur_faces`` the face options change nothing: they are left out of the hash, so captions
        asked for before the options existed are not asked for again."""
        import hashlib

        from ...signals.faces import BLUR_VERSION

        payload = self.config.model_dump(mode="json")
        if payload["blur_faces"]:
            payload["blur_version"] = BLUR_VERSION
        else:
            for key in ("blur_faces", "face_detector", "face_min_score"):
                payload.pop(key)
        return hashlib.sha256(f"{self.name}|{json.dumps(payload, sort_keys=True)}".encode()).hexdigest()[:16]

    @classmethod
    def wanted(cls, config: dict) -> bool:
        """Whether `clipfactory run` includes this stage: an endpoint is configured."""
        return bool(config.get("endpoint"))

    def check(self) -> None:
        """Configuration errors (no model, a bad URL, an unset key variable, an endpoint whose port takes no
        connection) stop the run before any work."""
        from ...caption.client import completions_url
        from ...errors import ConfigError

        if not self.config.endpoint:
            raise ConfigError("caption.vlm needs an endpoint", item="[caption.vlm] endpoint")
        url = completions_url(self.config.endpoint)
        if not self.config.model:
            raise ConfigError(
                "caption.vlm needs the model name the server serves", item="[caption.vlm] model",
                fix="set model = \"...\" (see the server's /v1/models)",
            )
        self._client()  # an unset API key variable is named here
        self._close()
        if self.config.blur_faces:
            self._detector()  # a missing face detector stops the run before any frame is sent unblurred
        _check_reachable(url, min(5.0, float(self.config.timeout_s)))

    # -- lifecycle ---------------------------------------------------------------------------------
    def _client(self):
        from ...caption.client import VlmClient

        cfg = self.config
        self._vlm = VlmClient(
            cfg.endpoint or "", cfg.model, timeout_s=cfg.timeout_s, api_key_env=cfg.api_key_env,
            max_tokens=cfg.max_tokens, temperature=cfg.temperature,
        )
        return self._vlm

    def _close(self) -> None:
        vlm = getattr(self, "_vlm", None)
        if vlm is not None:
            vlm.close()
        self._vlm = None

    def _detector(self):
        from ...signals.faces import blur_detector

        if getattr(self, "_faces", None) is None:
            self._faces = blur_detector(self.config.face_detector, min_score=self.config.face_min_score)
        return self._faces

    def setup(self) -> None:
        if self.config.blur_faces:
            self._detector()
        self._sources: dict[str, SourceRecord] = {}
        self._setup_error: ClipfactoryError | None = None
        try:
            self._client()
        except ClipfactoryError as exc:
            self._vlm = None
            self._setup_error = exc

    def teardown(self) -> None:
        self._close()

    # -- work ----------------------------------------------------------------------------------------
    def process_batch(self, items: list[ClipRecord]) -> list[Result]:
        if not hasattr(self, "_sources"):
            self.setup()
        if self._setup_error is not None:
            return [Result.failed(c.clip_id, "terminal", str(self._setup_error)) for c in items]
        want = sorted({c.source_id for c in items} - set(self._sources))
        if want and self.context.catalog_path:
            with Catalog(self.context.catalog_path).read() as con:
                for rec in load_records(con, SourceRecord, want):
                    self._sources[rec.source_id] = rec
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(items)) or 1) as pool:
            return list(pool.map(self.safe_process, items))

    def process(self, item: ClipRecord) -> Result:
        try:
            jpegs = self._frames(item)
            vlm = self._vlm
            cfg = self.config
            manifest = [c for c in _captions(item) if c.get("origin", "manifest") == "manifest" and c.get("caption")]
            entries = []
            if not (cfg.only_uncaptioned and manifest):
                text = vlm.complete(cfg.prompt, jpegs, item=item.clip_id)
                entries.append({"origin": "vlm", "model": cfg.model, "caption": text})
            if cfg.enhance:
                for m in manifest:
                    text = vlm.complete(cfg.enhance_prompt.replace("{caption}", m["caption"]), jpegs, item=item.clip_id)
                    entries.append({"origin": "vlm", "model": cfg.model, "caption": text, "enhances": m["caption"]})
        except ClipfactoryError as exc:
            kind = "transient" if exc.transient else "terminal"
            res = Result.failed(item.clip_id, kind, str(exc))
            code = str(exc.message).split(":", 1)[0]
            return dataclasses.replace(res, reason=code) if code.startswith(("caption.", "media.")) else res
        kept = [c for c in _captions(item) if c.get("origin", "manifest") != "vlm"]
        caption, origin = item.caption, item.caption_origin or ("manifest" if item.caption else None)
        if entries and (cfg.primary == "vlm" or origin != "manifest" or not caption):
            best = next((e for e in entries if "enhances" in e), entries[0]) if cfg.primary == "vlm" else entries[0]
            caption, origin = best["caption"], "vlm"
        rec = item.replace(
            captions=json.dumps(kept + entries, ensure_ascii=False, sort_keys=True),
            caption=caption,
            caption_origin=origin,
        )
        return Result.kept(item.clip_id, rec, detail={"model": cfg.model, "frames": len(jpegs), "captions": len(entries)})

    def _frames(self, item: ClipRecord) -> list[bytes]:
        jpegs = self._unblurred_frames(item)
        return self._blurred(item, jpegs) if self.config.blur_faces else jpegs

    def _blurred(self, item: ClipRecord, jpegs: list[bytes]) -> list[bytes]:
        """The frames with their faces blurred as ``media.cut`` blurs a clip: every detector, each face held
        over the later frames, the thumbnail's faces as seeds (:class:`clipfactory.signals.faces.FaceBlur`).
        A face reported on the thumbnail that no detector finds again blurs the whole of every frame until
        a detection finds one."""
        from ...signals.faces import FaceBlur, jpeg_bytes, jpeg_rgb, thumbnail_faces

        store = self.context.store()
        detector = self._detector()
        seed: list[tuple[float, float, float, float]] = []
        if item.thumb_uri and store.exists(item.thumb_uri):
            try:
                rgb, boxes = thumbnail_faces(store.path_of(item.thumb_uri).read_bytes(), detector)
            except OSError:  # an unreadable thumbnail: the frames' own detections decide
                boxes, rgb = [], None
            if rgb is not None:
                h, w = rgb.shape[:2]
                seed = [(x / w, y / h, bw / w, bh / h) for x, y, bw, bh in boxes]
        if not seed and (item.face_count or 0) > 0:
            seed = [(0.0, 0.0, 1.0, 1.0)]
        blur = FaceBlur(detector, detect_every=1, seed=seed)
        out = []
        for jpeg in jpegs:
            rgb = jpeg_rgb(jpeg)
            done = blur(rgb)
            out.append(jpeg if done is rgb else jpeg_bytes(done, quality=85))
        return out

    def _unblurred_frames(self, item: ClipRecord) -> list[bytes]:
        from ...caption.frames import clip_frames

        store = self.context.store()
        src = self._sources.get(item.source_id)
        if self.config.frames and src is not None and src.blob_uri:
            try:
                return clip_frames(
                    store.path_of(src.blob_uri), item.start_ms, item.end_ms,
                    n=self.config.frames, size=self.config.frame_size,
                )
            except MediaProbeError:
                pass
        if item.thumb_uri and store.exists(item.thumb_uri):
            return [store.path_of(item.thumb_uri).read_bytes()]
        raise NotFoundError(
            "media.no_frames: neither the clip's frames nor its thumbnail can be read", item=item.clip_id,
            fix="run the pipeline from media.analyse again",
        )


def _captions(clip: ClipRecord) -> list[dict]:
    if not clip.captions:
        return []
    try:
        return [c for c in json.loads(clip.captions) if isinstance(c, dict)]
    except ValueError:
        return []


def _check_reachable(url: str, timeout_s: float) -> None:
    """Refuse, before any work, an endpoint whose host does not resolve or whose port takes no connection:
    every clip would otherwise fail ``caption.unreachable`` after its own retries. A server that accepts the
    connection but answers slowly or badly is each clip's transient failure, as before."""
    from urllib.parse import urlsplit

    from ...errors import ConfigError
    from ...net import connect_error, why

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    err = connect_error(host, port, max(0.5, timeout_s))
    if err is not None and not isinstance(err, TimeoutError):  # slow to accept: each clip's timeout decides
        raise ConfigError(
            f"the VLM endpoint {host}:{port} cannot be reached ({why(err)})",
            item=f"[caption.vlm] endpoint = {url}",
            fix="start the server first (vLLM, llama.cpp's server, ...) or correct the endpoint; "
            "caption.vlm is on only when its endpoint is set",
        )
