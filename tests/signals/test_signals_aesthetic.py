"""The aesthetic head: loaded from files by path (a tiny CLIP model and a head in the LAION layout that the
test builds and saves), skipped with a recorded reason without them."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from clipfactory import registry
from clipfactory.errors import ConfigError
from clipfactory.records import ClipRecord
from clipfactory.stage import StageContext
from clipfactory.storage import BlobStore

lazy = sys.modules["cf_lazy"]  # loaded by tests/conftest.py
torch = lazy.module("torch", reason="the aesthetic head needs torch (pip install 'clipfactory[aesthetic]')")
lazy.module("transformers", reason="the aesthetic head needs transformers")

EMB = 12  # the tiny CLIP model's embedding width


pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def LaionMLP(input_size: int):  # noqa: N802 (named after the class it builds)
    """LAION's improved aesthetic predictor (its ``MLP`` class), with the input width as a parameter."""

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(input_size, 1024),
                torch.nn.Dropout(0.2),
                torch.nn.Linear(1024, 128),
                torch.nn.Dropout(0.2),
                torch.nn.Linear(128, 64),
                torch.nn.Dropout(0.1),
                torch.nn.Linear(64, 16),
                torch.nn.Linear(16, 1),
            )

        def forward(self, x):
            return self.layers(x)

    return MLP()


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    d = tmp_path_factory.mktemp("clip")
    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    cfg = CLIPConfig(
        text_config=dict(small, vocab_size=100, max_position_embeddings=16, bos_token_id=0, eos_token_id=1),
        vision_config=dict(small, image_size=32, patch_size=8),
        projection_dim=EMB,
    )
    torch.manual_seed(0)
    model = CLIPModel(cfg).eval()
    model.save_pretrained(d)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(d)
    return d, model, CLIPImageProcessor.from_pretrained(d)


def _pictures() -> list[Image.Image]:
    y, x = np.mgrid[0:48, 0:64]
    grad = np.stack([x * 4, y * 5, np.full_like(x, 120)], axis=-1).astype(np.uint8)
    return [Image.fromarray(grad), Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (40, 40), (0, 0, 0))]


def _thumbs(tmp_path, pictures):
    store = BlobStore(tmp_path / "store")
    clips = []
    for k, im in enumerate(pictures):
        buf = io.BytesIO()
        im.save(buf, "PNG")  # lossless, so the expected scores see the same pixels
        clips.append(ClipRecord(f"{k:020d}", "s", 0, 3000, thumb_uri=store.put_bytes(buf.getvalue())))
    return store, clips


def test_head_in_the_laion_layout_scores_like_the_predictor_itself(tiny_clip, tmp_path):
    clip_dir, model, processor = tiny_clip
    torch.manual_seed(1)
    head = LaionMLP(EMB).eval()
    path = tmp_path / "head.pth"
    torch.save(head.state_dict(), path)
    pictures = _pictures()
    # The expected scores, the way LAION's predictor is used: CLIP image features, L2-normalised, then the MLP.
    with torch.no_grad():
        px = processor(images=pictures, return_tensors="pt")["pixel_values"]
        feats = model.visual_projection(model.vision_model(pixel_values=px).pooler_output)
        expected = head(torch.nn.functional.normalize(feats, dim=-1))[:, 0].numpy()
    store, clips = _thumbs(tmp_path, pictures)
    cfg = {"aesthetic_head": str(path), "aesthetic_clip": str(clip_dir), "nsfw": False, "faces": False}
    stage = registry.get("signals.visual")(cfg, StageContext(store_root=str(store.root)))
    results = stage.process_batch(clips)
    got = np.array([r.records[0].aesthetic for r in results])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert len(set(np.round(got, 5))) == 3  # different pictures, different scores
    detail = json.loads(results[0].detail)
    assert detail["models"]["aesthetic"].startswith(f"{clip_dir.name}+head.pth@")
    assert "aesthetic" not in detail.get("skipped", {})


def test_a_head_that_gives_a_constant_scores_it(tiny_clip, tmp_path):
    clip_dir, _, _ = tiny_clip
    head = LaionMLP(EMB)
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
        head.layers[7].bias.fill_(6.25)
    path = tmp_path / "const.pth"
    torch.save({"state_dict": head.state_dict()}, path)  # a checkpoint that wraps its state dict
    store, clips = _thumbs(tmp_path, _pictures()[:2])
    cfg = {"aesthetic_head": str(path), "aesthetic_clip": str(clip_dir), "nsfw": False, "faces": False}
    results = registry.get("signals.visual")(cfg, StageContext(store_root=str(store.root))).process_batch(clips)
    assert [r.records[0].aesthetic for r in results] == [6.25, 6.25]


def test_wrong_files_are_named_with_the_fix(tiny_clip, tmp_path):
    from clipfactory.signals.aesthetic import AestheticModel

    clip_dir, _, _ = tiny_clip
    wide = tmp_path / "wide.pth"
    torch.save(LaionMLP(768).state_dict(), wide)  # a ViT-L/14 head on the wrong CLIP model
    with pytest.raises(ConfigError, match="768-wide embeddings but this CLIP model gives 12"):
        AestheticModel(str(clip_dir), str(wide))
    with pytest.raises(ConfigError, match="no aesthetic head file"):
        AestheticModel(str(clip_dir), str(tmp_path / "missing.pth"))
    odd = tmp_path / "odd.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, odd)
    with pytest.raises(ConfigError, match="no linear layers"):
        AestheticModel(str(clip_dir), str(odd))
    head = tmp_path / "head.pth"
    torch.save(LaionMLP(EMB).state_dict(), head)
    with pytest.raises(ConfigError, match="could not load the CLIP model"):
        AestheticModel(str(tmp_path / "no-such-clip"), str(head))


def test_a_model_name_not_on_disk_is_refused_without_asking_the_hub(tiny_clip, tmp_path, monkeypatch):
    """clipfactory never downloads model files at run time: a hub name whose files are not in the local cache
    is a ConfigError at once, and no host name is looked up and no connection attempted."""
    import socket

    from clipfactory.signals.aesthetic import AestheticModel

    tried = []

    def no_network(*args, **kwargs):
        tried.append(args[:1])
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    head = tmp_path / "head.pth"
    torch.save(LaionMLP(EMB).state_dict(), head)
    with pytest.raises(ConfigError, match="could not load the CLIP model"):
        AestheticModel("openai/clip-vit-large-patch14-not-cached", str(head))
    assert tried == [], f"the hub was asked: {tried}"
