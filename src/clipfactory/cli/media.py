"""``clipfactory analyse FILE``: the single analysis pass on one file, to tune shot detection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .app import app
from .common import ConfigOpt, JsonOpt, SetOpt, console, emit, settings, table


@app.command("analyse")
def analyse_cmd(
    path: Annotated[Path, typer.Argument(help="A video file.", exists=True, dir_okay=False)],
    config: ConfigOpt = None,
    sets: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Decode FILE once and show its shots, their scores and the clips a run would plan from them.

    Options come from the `\\[media.analyse]` section of the config; try others with
    `--set media.analyse.cut_adaptive_ratio=3.5` (docs/analyse.md lists them). Nothing is written.
    """
    from .. import registry
    from ..media.cut import keyframes_ms

    s = settings(config, sets)
    stage = registry.get("media.analyse")(s.stage_config("media.analyse"))
    cfg = stage.config
    from ..media.analyse import analyse

    result = analyse(str(path), stage.analyse_config())
    spans, too_short = stage.plan_shot_spans(result, keyframes_ms(str(path)) if cfg.snap_to_keyframes else None)
    doc = json.loads(result.to_json())
    out = {
        "path": str(path),
        "frames": result.n_frames,
        "duration_ms": result.duration_ms,
        "decode_errors": result.decode_errors,  # corrupt packets skipped (docs/analyse.md)
        "shots": doc.get("shots", []),
        "clips": [
            {"start_ms": sp.start_ms, "end_ms": sp.end_ms, "shot": sp.shot.index,
             "transition_in": sp.transition_in, "transition_out": sp.transition_out}
            for sp in spans
        ],
        "too_short": too_short,
        "config": {k: getattr(cfg, k) for k in type(cfg).model_fields},
    }

    def render(d):
        confident = any(sh.get("transition_confidence") is not None for sh in d["shots"])
        rows = []
        for sh in d["shots"]:
            row = {"index": sh.get("index"), "frames": f"{sh.get('start_frame')}-{sh.get('end_frame')}"}
            row.update({k: sh.get(k) for k in ("start_ms", "end_ms", "transition_out")})
            if confident:  # TransNetV2's confidence in the boundary that ends the shot (detector transnetv2/both)
                row["confidence"] = sh.get("transition_confidence")
            row.update({k: sh.get(k) for k in ("motion", "sharpness", "luma", "black_fraction", "static_fraction")})
            rows.append(row)
        table(rows, title=f"{d['path']}: {d['frames']} frames, {len(rows)} shots")
        console.print(f"{len(d['clips'])} clip(s) planned, {d['too_short']} shot piece(s) too short")
        if d["decode_errors"]:
            console.print(f"{d['decode_errors']} corrupt packet(s) skipped while decoding", highlight=False)

    emit(out, json_, render)
