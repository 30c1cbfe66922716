"""Aesthetic score: a head on CLIP image embeddings, both loaded from configured paths.

The head is the layout of LAION's improved aesthetic predictor: a chain of linear layers saved as a torch
state dict whose keys are ``layers.<i>.weight`` and ``layers.<i>.bias`` (``sac+logos+ava1-l14-linearMSE.pth``
is ``768 → 1024 → 128 → 64 → 16 → 1``, with dropout between them in training and no activation), or one
linear layer (``weight``, ``bias``: LAION's first linear aesthetic heads). ``.pth``/``.pt`` files are read
with ``torch.load(weights_only=True)``; ``.safetensors`` files with safetensors. The input is the CLIP
image embedding divided by its L2 norm, as the predictor was trained; the output is the score (about 1-10
for LAION's heads).

The CLIP model is a transformers ``CLIPModel`` folder (or a hub name where a hub can be reached; this
project never downloads one itself), with its image processor. Its embedding width must be the head's
input width: the head of ViT-L/14 needs ``openai/clip-vit-large-patch14``.

Nothing is loaded without ``aesthetic_head``: the stage records why the score is missing.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path

import numpy as np

from ..errors import ConfigError, MissingExtraError
from . import AESTHETIC_EXTRA

_LOCK = threading.Lock()
_MODELS: dict[tuple[str, str], AestheticModel] = {}


def _torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("transformers", AESTHETIC_EXTRA, feature="the aesthetic score") from exc
    return torch


def load_head(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The linear layers ``[(weight (out, in), bias (out,)), ...]`` of a head file, in order."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            "no aesthetic head file here", item=str(path), fix="set signals.visual.aesthetic_head to a .pth file"
        )
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        state = dict(load_file(str(path)))
    else:
        torch = _torch()
        try:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConfigError(f"not a torch state dict ({exc})", item=str(path)) from exc
        if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
            raw = raw["state_dict"]
        if not isinstance(raw, dict):
            raise ConfigError("the file holds no state dict", item=str(path))
        state = {k: v.detach().float().numpy() for k, v in raw.items() if hasattr(v, "detach")}
    if "weight" in state and "bias" in state:
        layers = [(state["weight"], state["bias"])]
    else:
        idx = sorted({int(m.group(1)) for k in state if (m := re.fullmatch(r"layers\.(\d+)\.weight", k))})
        layers = []
        for i in idx:
            b = state.get(f"layers.{i}.bias")
            if b is None:
                raise ConfigError(f"layers.{i}.bias is missing", item=str(path))
            layers.append((state[f"layers.{i}.weight"], b))
    if not layers:
        raise ConfigError(
            "no linear layers (keys layers.<i>.weight/bias, or weight/bias)",
            item=str(path),
            fix="give the state dict of an MLP head such as LAION's improved aesthetic predictor",
        )
    for k, (w, b) in enumerate(layers):
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise ConfigError(f"layer {k} has weight {w.shape} and bias {b.shape}", item=str(path))
        if k and w.shape[1] != layers[k - 1][0].shape[0]:
            raise ConfigError(
                f"layer {k} takes {w.shape[1]} inputs but layer {k - 1} gives {layers[k - 1][0].shape[0]}",
                item=str(path),
            )
    if layers[-1][0].shape[0] != 1:
        raise ConfigError(f"the head gives {layers[-1][0].shape[0]} outputs, not one score", item=str(path))
    return [(w.astype(np.float32), b.astype(np.float32)) for w, b in layers]


def apply_head(layers: list[tuple[np.ndarray, np.ndarray]], emb: np.ndarray) -> np.ndarray:
    """Scores of the rows of ``emb`` (already normalised): the linear layers in turn."""
    x = emb.astype(np.float32)
    for w, b in layers:
        x = x @ w.T + b
    return x[:, 0]


class AestheticModel:
    """A CLIP image encoder and an aesthetic head."""

    def __init__(self, clip_model: str, head_path: str) -> None:
        torch = _torch()
        from transformers import CLIPImageProcessor, CLIPModel

        from ..model_cache import local_model_folder

        self.layers = load_head(head_path)
        folder = local_model_folder(clip_model)
        try:
            if folder is None:
                raise FileNotFoundError("neither a folder nor a model in the local Hugging Face cache")
            self._model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
            self._processor = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)
        except Exception as exc:
            raise ConfigError(
                f"could not load the CLIP model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                item=clip_model,
                fix="set signals.visual.aesthetic_clip to a local CLIPModel folder (config.json, weights and "
                "preprocessor_config.json)",
            ) from exc
        self._torch = torch
        dim = int(self._model.config.projection_dim)
        want = self.layers[0][0].shape[1]
        if dim != want:
            raise ConfigError(
                f"the head takes {want}-wide embeddings but this CLIP model gives {dim}",
                item=head_path,
                fix="use the CLIP model the head was trained on (768: ViT-L/14)",
            )
        h = hashlib.sha256()
        with open(head_path, "rb") as f:
            h.update(f.read())
        name = Path(clip_model).name or clip_model
        self.model_id = f"{name}+{Path(head_path).name}@{h.hexdigest()[:12]}"

    def embed(self, images: list) -> np.ndarray:
        """L2-normalised CLIP image embeddings of PIL images."""
        torch = self._torch
        inputs = self._processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        with torch.inference_mode():
            # CLIP's image embedding: the vision tower's pooled output through the visual projection (what
            # get_image_features returns, spelt out: its return type differs between transformers versions).
            pooled = self._model.vision_model(pixel_values=inputs["pixel_values"]).pooler_output
            emb = self._model.visual_projection(pooled).float().numpy()
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def score(self, images: list) -> np.ndarray:
        if not images:
            return np.empty(0, dtype=np.float32)
        return apply_head(self.layers, self.embed(images))


def shared_model(clip_model: str, head_path: str) -> AestheticModel:
    key = (clip_model, str(head_path))
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = AestheticModel(clip_model, str(head_path))
        return _MODELS[key]
