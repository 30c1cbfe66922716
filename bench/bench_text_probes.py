"""How many frames a shot must be read on to find its text, and what each read costs.

The analysis pass reads burned-in text on ``text_probe_frames`` frames of each shot at ``text_width`` pixels
(``media.analyse``); only when one of them carries text are the shot's other text frames read. This compares
layouts of those probes on the same videos, each an analysis pass of its own, interleaved, in one process:

* ``2@384``: two probes at 384 pixels wide (the layout before 2026-12-08; the reference);
* ``1@384``: one probe, the middle frame, at 384;
* ``1@320``: one probe at 320 (the thumbnails' width);
* ``2@320``: two probes at 320;

and the plain pass without text (``detect_text = false``). For each layout: shots in which text was found,
how many of the reference's shots with text it finds too, shots with text that only it finds, frames read,
the OCR worker thread's own CPU seconds, and the pass's CPU seconds (all threads) above the plain pass's.
There is no ground truth of burned-in text in these videos: the reference is the layout that reads most,
and the disagreements are printed (video, shot, text) to be looked at.

Videos: the Big Buck Bunny film (``get-bbb.sh``; the CPU figures), the shared media (``../shared/data/media``)
and the example media (``examples/media``). Nothing here was tuned on them: the layouts are the four above.

    python bench/bench_text_probes.py [--video PATH ...] [--no-film] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LAYOUTS = {"2@384": (2, 384), "1@384": (1, 384), "1@320": (1, 320), "2@320": (2, 320)}


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def videos(args) -> list[Path]:
    if args.video:
        return [Path(v) for v in args.video]
    out = []
    if not args.no_film:
        film = subprocess.run(["bash", str(SHARED / "get-bbb.sh")], capture_output=True, text=True, check=True)
        out.append(Path(film.stdout.strip().splitlines()[-1]))
    for d in (SHARED / "media", ROOT / "examples" / "media"):
        out += sorted(p for p in d.iterdir() if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".webm", ".mov"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", action="append", help="default: the film, the shared media and the example media")
    ap.add_argument("--no-film", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import clipfactory.media.analyse as am
    from clipfactory.media.analyse import AnalyseConfig, analyse

    am.ocr_engine()  # loaded once, out of the timings
    worker = {"cpu": 0.0, "reads": 0}
    read_shot = am._TextSampler._read_shot

    def timed_read_shot(self, *a):
        t = time.thread_time()
        try:
            out = read_shot(self, *a)
            worker["reads"] += len(out)
            return out
        finally:
            worker["cpu"] += time.thread_time() - t

    am._TextSampler._read_shot = timed_read_shot

    per_video = []
    totals = {k: {"shots_with_text": 0, "found_of_reference": 0, "only_here": 0, "reads": 0, "worker_cpu_s": 0.0}
              for k in LAYOUTS}
    for v in videos(args):
        c = cpu()
        plain = analyse(v, AnalyseConfig(detect_text=False))
        plain_cpu = cpu() - c
        texts, row = {}, {"video": v.name, "shots": len(plain.shots), "plain_cpu_s": round(plain_cpu, 2)}
        for name, (k, width) in LAYOUTS.items():
            worker["cpu"], worker["reads"] = 0.0, 0
            c = cpu()
            r = analyse(v, AnalyseConfig(detect_text=True, text_probe_frames=k, text_width=width))
            used = cpu() - c
            texts[name] = {s.index: s.text for s in r.shots if s.text}
            row[name] = {
                "shots_with_text": len(texts[name]),
                "reads": worker["reads"],
                "worker_cpu_s": round(worker["cpu"], 3),
                "pass_cpu_added_s": round(used - plain_cpu, 2),
            }
            totals[name]["shots_with_text"] += len(texts[name])
            totals[name]["reads"] += worker["reads"]
            totals[name]["worker_cpu_s"] += worker["cpu"]
        ref = texts["2@384"]
        for name in LAYOUTS:
            found = set(texts[name]) & set(ref)
            only = set(texts[name]) - set(ref)
            missed = set(ref) - set(texts[name])
            row[name]["found_of_reference"] = f"{len(found)}/{len(ref)}"
            row[name]["missed"] = {i: ref[i] for i in sorted(missed)}
            row[name]["only_here"] = {i: texts[name][i] for i in sorted(only)}
            totals[name]["found_of_reference"] += len(found)
            totals[name]["only_here"] += len(only)
        per_video.append(row)
        if not args.json:
            print(f"{v.name}: {len(plain.shots)} shots, plain pass {plain_cpu:.2f} CPU-s", flush=True)
            for name in LAYOUTS:
                x = row[name]
                print(f"  {name}: text in {x['shots_with_text']} shots ({x['found_of_reference']} of 2@384's), "
                      f"{x['reads']} reads, worker {x['worker_cpu_s']:.2f} CPU-s, pass +{x['pass_cpu_added_s']:.2f} CPU-s"
                      + (f", missed {x['missed']}" if x["missed"] else "")
                      + (f", only here {x['only_here']}" if x["only_here"] else ""), flush=True)
    ref_total = totals["2@384"]["shots_with_text"]
    for t in totals.values():
        t["recall_of_reference"] = round(t["found_of_reference"] / ref_total, 3) if ref_total else None
        t["worker_cpu_s"] = round(t["worker_cpu_s"], 2)
        t["worker_ms_per_read"] = round(1000 * t["worker_cpu_s"] / t["reads"], 1) if t["reads"] else None
    result = {"videos": per_video, "totals": totals}
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print("totals:")
        for name, t in totals.items():
            print(f"  {name}: {t}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
