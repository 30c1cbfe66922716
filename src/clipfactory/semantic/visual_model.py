"""Image–text models for visual embeddings (CLIP, SigLIP and the like), loaded from a local path or a hub name.

No image–text weights ship with clipfactory or with any package it installs: a visual model is
configured (``semantic.visual.model``) or the visual vectors are skipped with that reason recorded.
Two layouts load:

* **A transformers model** (``CLIPModel``, ``SiglipModel`` or any model with ``get_image_features`` and
  ``get_text_features``): a folder written by ``save_pretrained`` with its processor files, or a hub name
  (``openai/clip-vit-base-patch32``) where a hub is reachable and its cache holds the files. Needs the
  ``aesthetic`` extra (torch and transformers). The text tower comes with it.
* **An ONNX folder** (no torch): ``image_encoder.onnx`` (input ``pixel_values`` float32 ``[N, 3, S, S]``,
  output ``[N, D]``), optionally ``text_encoder.onnx`` (input ``input_ids`` int64 ``[N, L]``, output
  ``[N, D]``) with ``tokenizer.json`` (Hugging Face ``tokenizers``), and ``visual_config.json``:
  ``{"name": ..., "image_size": S, "mean": [..3], "std": [..3], "context_length": L, "license": ...}``.
  An export of a CLIP model's two towers has this layout.

The model id is ``<name>@sha256:<16 hex>``: the hash of the model's files, by name and bytes, so that
vectors of two different weights never mix. The licence of the weights is recorded with the model
(``semantic.visual.license``, or the one ``visual_config.json`` states).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingExtraError
from .text_model import shrinking_run_options

ONNX_IMAGE = "image_encoder.onnx"
ONNX_TEXT = "text_encoder.onnx"
ONNX_CONFIG = "visual_config.json"
#: the extra that brings torch and transformers (shared with the aesthetic score)
TORCH_EXTRA = "aesthetic"

_LOCK = threading.Lock()
_SHARED: dict[tuple[str, str | None, int], VisualEncoder] = {}


def files_hash(folder: Path) -> str:
    """sha256 over every file of ``folder`` (recursively), by relative name and bytes."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(folder)).encode() + b"\0")
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


#: the fix when torch is missing: the CPU build, whose install line depends on the machine
TORCH_INSTALL = "pip install torch (the CPU build: see docs/semantic.md)"


def _session(ort, path: Path, opts):
    """An onnxruntime session for ``path``; a file it cannot load is a ConfigError naming the file."""
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind classes (InvalidProtobuf, Fail, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"cannot load the ONNX model {path}: {first}",
            item=str(path),
            fix="replace it with a valid ONNX export (docs/semantic.md) or unset semantic.visual.model",
        ) from None


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(n, 1e-12)


class VisualEncoder:
    """One image–text model: ``encode_images`` (PIL images) and, with a text tower, ``encode_text``.

    Vectors are unit length, so that a dot product is the cosine similarity."""

    def __init__(self, model: str, *, license: str | None = None, threads: int = 0):
        self.model = str(model)
        self.threads = int(threads)
        folder = Path(os.path.expanduser(self.model))
        self._license = license
        looks_local = os.path.isabs(self.model) or self.model.startswith((".", "~"))
        if looks_local and not folder.is_dir():
            raise ConfigError(
                "cannot load a visual model: no such folder",
                item=self.model,
                fix="give a model folder (transformers save_pretrained or ONNX, docs/semantic.md) or a hub name",
            )
        if folder.is_dir() and (folder / ONNX_CONFIG).is_file() and not (folder / ONNX_IMAGE).is_file():
            raise ConfigError(
                f"an ONNX visual model folder needs {ONNX_IMAGE}, which is missing",
                item=str(folder / ONNX_IMAGE),
                fix=f"put the image encoder in {folder / ONNX_IMAGE} (docs/semantic.md)",
            )
        if folder.is_dir() and (folder / ONNX_IMAGE).is_file():
            self._load_onnx(folder)
        else:
            self._load_transformers(folder if folder.is_dir() else None)

    # -- loading ------------------------------------------------------------------------------------
    def _load_onnx(self, folder: Path) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingExtraError("onnxruntime", "semantic", feature="ONNX visual models") from exc
        cfg_path = folder / ONNX_CONFIG
        if not cfg_path.is_file():
            raise ConfigError(
                f"an ONNX visual model folder needs {ONNX_CONFIG}",
                item=str(folder),
                fix='write {"name": ..., "image_size": 224, "mean": [...], "std": [...]} (docs/semantic.md)',
            )
        cfg = json.loads(cfg_path.read_text())
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        self._image = _session(ort, folder / ONNX_IMAGE, opts)
        self._run_options = shrinking_run_options()
        self._text = None
        self._tokenizer = None
        if (folder / ONNX_TEXT).is_file() and (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            self._text = _session(ort, folder / ONNX_TEXT, opts)
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.runtime = "onnxruntime"
        self.name = str(cfg.get("name") or folder.name)
        self.size = int(cfg.get("image_size", 224))
        self.mean = np.asarray(cfg.get("mean", [0.48145466, 0.4578275, 0.40821073]), np.float32)
        self.std = np.asarray(cfg.get("std", [0.26862954, 0.26130258, 0.27577711]), np.float32)
        self.context_length = int(cfg.get("context_length", 77))
        self._license = self._license or cfg.get("license")
        self.sha256 = files_hash(folder)
        self.dim = int(self._image.get_outputs()[0].shape[-1])
        self._backend = "onnx"

    def _load_transformers(self, folder: Path | None) -> None:
        try:
            import torch
        except ImportError as exc:
            raise MissingExtraError("torch", TORCH_EXTRA, feature="transformers visual models",
                                    install=TORCH_INSTALL) from exc
        try:
            from transformers import AutoModel, AutoProcessor
        except ImportError as exc:
            raise MissingExtraError("transformers", TORCH_EXTRA, feature="transformers visual models",
                                    install="pip install transformers") from exc
        from ..model_cache import local_model_folder

        where = str(folder) if folder is not None else local_model_folder(self.model)
        if where is None:
            raise ConfigError(
                f"cannot load a visual model from {self.model!r}: neither a folder nor a model in the local "
                "Hugging Face cache (clipfactory downloads no model)",
                item="semantic.visual.model",
                fix="give a folder written by save_pretrained (with its processor files), an ONNX folder "
                "(docs/semantic.md), or a hub name whose files are in the local cache",
            )
        try:
            self._tmodel = AutoModel.from_pretrained(where, local_files_only=True).eval()
            self._processor = AutoProcessor.from_pretrained(where, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load a visual model from {where!r}: {exc}",
                item="semantic.visual.model",
                fix="give a folder written by save_pretrained (with its processor files), an ONNX folder "
                "(docs/semantic.md), or a hub name whose files are in the local cache",
            ) from None
        if not hasattr(self._tmodel, "get_image_features"):
            raise ConfigError(
                f"{type(self._tmodel).__name__} has no image features", item=where,
                fix="use an image-text model such as CLIP or SigLIP",
            )
        if self.threads:
            torch.set_num_threads(self.threads)
        self._torch = torch
        self.runtime = f"transformers {type(self._tmodel).__name__}"
        self.name = Path(where).name if folder is not None else where
        if folder is not None:
            self.sha256 = files_hash(folder)
        else:  # a hub name: hash what the cache holds for it (the weights' own bytes)
            h = hashlib.sha256()
            for name, t in sorted(self._tmodel.state_dict().items()):
                h.update(name.encode() + b"\0" + t.detach().cpu().numpy().tobytes())
            self.sha256 = h.hexdigest()
        self._tokenizer = getattr(self._processor, "tokenizer", None)
        self._backend = "transformers"
        with torch.no_grad():
            probe = self._features_images([_blank(8)])
        self.dim = int(probe.shape[1])

    # -- description ----------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return f"{self.name}@sha256:{self.sha256[:16]}"

    @property
    def has_text(self) -> bool:
        if self._backend == "onnx":
            return self._text is not None
        return self._tokenizer is not None and hasattr(self._tmodel, "get_text_features")

    def describe(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model": self.name,
            "sha256": self.sha256,
            "license": self._license,
            "dim": self.dim,
            "runtime": self.runtime,
            "text_tower": self.has_text,
        }

    # -- encoding ---------------------------------------------------------------------------------------
    def _pixels(self, images) -> np.ndarray:
        from PIL import Image

        out = np.empty((len(images), 3, self.size, self.size), np.float32)
        for i, im in enumerate(images):
            im = im.convert("RGB")
            w, h = im.size
            s = self.size / min(w, h)  # resize the short side, then centre-crop, as CLIP's preprocessing does
            im = im.resize((max(self.size, round(w * s)), max(self.size, round(h * s))), Image.BICUBIC)
            w, h = im.size
            left, top = (w - self.size) // 2, (h - self.size) // 2
            a = np.asarray(im.crop((left, top, left + self.size, top + self.size)), np.float32) / 255.0
            out[i] = ((a - self.mean) / self.std).transpose(2, 0, 1)
        return out

    def _features_images(self, images) -> np.ndarray:
        if self._backend == "onnx":
            name = self._image.get_inputs()[0].name
            return np.asarray(
                self._image.run(None, {name: self._pixels(images)}, self._run_options)[0], np.float32
            )
        inputs = self._processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        feats = self._tmodel.get_image_features(pixel_values=inputs["pixel_values"])
        feats = getattr(feats, "pooler_output", feats)
        return feats.detach().cpu().numpy().astype(np.float32)

    def encode_images(self, images, *, batch: int = 32) -> np.ndarray:
        """Unit vectors ``[N, dim]`` of PIL images."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        parts = []
        ctx = self._torch.no_grad() if self._backend == "transformers" else _Null()
        with ctx:
            for i in range(0, len(images), batch):
                parts.append(self._features_images(images[i : i + batch]))
        return _unit(np.concatenate(parts))

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Unit vectors ``[N, dim]`` of texts through the model's own text tower (for zero-shot and search)."""
        if not self.has_text:
            raise ConfigError(
                f"the visual model {self.model_id} has no text tower", item="semantic.visual.model",
                fix="use a model with its text encoder (and tokenizer) to search or classify by its vectors",
            )
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self._backend == "onnx":
            L = self.context_length
            ids = np.zeros((len(texts), L), np.int64)
            for i, enc in enumerate(self._tokenizer.encode_batch(list(texts))):
                row = enc.ids[:L]
                ids[i, : len(row)] = row
            name = self._text.get_inputs()[0].name
            return _unit(self._text.run(None, {name: ids}, self._run_options)[0])
        with self._torch.no_grad():
            tok = self._tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
            feats = self._tmodel.get_text_features(**{k: v for k, v in tok.items() if k in ("input_ids", "attention_mask")})
            feats = getattr(feats, "pooler_output", feats)
        return _unit(feats.detach().cpu().numpy())


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _blank(size: int):
    from PIL import Image

    return Image.new("RGB", (size, size), (128, 128, 128))


def shared_visual_encoder(model: str, *, license: str | None = None, threads: int = 0) -> VisualEncoder:
    """One encoder per model and process."""
    key = (str(model), license, int(threads))
    with _LOCK:
        enc = _SHARED.get(key)
        if enc is None:
            enc = _SHARED[key] = VisualEncoder(model, license=license, threads=threads)
        return enc
