"""``quality.filter``: keep or drop clips by the scores the analysis pass computed."""

from __future__ import annotations

from pydantic import Field

from ...records import ClipRecord, Result
from ...registry import register
from ...resources import Resources
from ...stage import Stage, StageConfig

#: Every reason this stage can give, in the order it checks them (the first that applies is the reason).
REASONS = (
    "quality.too_short",
    "quality.black_frames",
    "quality.too_dark",
    "quality.too_bright",
    "quality.too_blurry",
    "quality.static",
    "quality.too_much_text",
    "quality.nsfw",
)


@register
class QualityFilterStage(Stage):
    """Drop clips that are too short, dark, bright, blurry, static, black, covered in text or NSFW.

    Reads: a :class:`ClipRecord` with the scores of ``media.analyse`` (``luma``, ``sharpness``,
    ``static_fraction``, ``black_fraction``, ``text_fraction``) and its span.

    Writes: the same record, unchanged, when it passes.

    Drops (the first that applies; the detail lists every failed check with its value and threshold):
    ``quality.too_short``, ``quality.black_frames``, ``quality.too_dark``, ``quality.too_bright``,
    ``quality.too_blurry``, ``quality.static``, ``quality.too_much_text``, ``quality.nsfw`` (the NSFW score
    of ``signals.visual`` above ``max_nsfw``). A score that is missing (``None``) passes its check. A clip
    dropped for its text has the text read in the detail (``screen_text``), so the drop can be checked.

    Resources: negligible; pure arithmetic on the record.
    """

    name = "quality.filter"
    version = 1
    resources = Resources(cpus=0.1, memory_gb=0.1)
    batch_size = 256
    input_type = ClipRecord
    output_type = ClipRecord

    class Config(StageConfig):
        min_duration_s: float = Field(2.0, ge=0, description="Shorter clips are dropped (quality.too_short).")
        max_black_fraction: float = Field(
            0.2, ge=0, le=1, description="Largest share of black frames (quality.black_frames)."
        )
        min_luma: float = Field(
            30.0, ge=0, le=255, description="Smallest mean luma, 0-255 (quality.too_dark)."
        )
        max_luma: float = Field(
            230.0, ge=0, le=255, description="Largest mean luma, 0-255 (quality.too_bright)."
        )
        min_sharpness: float = Field(
            100.0,
            ge=0,
            description="Smallest mean variance of the Laplacian of the analysis-size luma (quality.too_blurry).",
        )
        max_static_fraction: float = Field(
            0.9,
            ge=0,
            le=1,
            description="Largest share of frames that barely differ from the previous one (quality.static).",
        )
        max_text_fraction: float = Field(
            0.5,
            ge=0,
            le=1,
            description="Largest share of a clip's sampled frames with burned-in text, titles or subtitles "
            "(quality.too_much_text). The text read stays in the clip's screen_text; a clip whose text was "
            "not read (media.analyse detect_text off) passes.",
        )
        max_nsfw: float = Field(
            1.0,
            ge=0,
            le=1,
            description="Largest NSFW score of the clip's thumbnail, 0-1 (quality.nsfw); from signals.visual. "
            "1.0 keeps every clip (the score is still recorded); 0.8 is Open-NSFW's 'pornographic', which "
            "animated or skin-toned bodies also reach (docs/signals.md).",
        )

    def checks(self, clip: ClipRecord) -> list[tuple[str, float, float]]:
        """``(reason, value, threshold)`` for every check the clip fails, in :data:`REASONS` order."""
        c = self.config
        failed = []
        duration = (clip.end_ms - clip.start_ms) / 1000
        if duration < c.min_duration_s:
            failed.append(("quality.too_short", duration, c.min_duration_s))
        if clip.black_fraction is not None and clip.black_fraction > c.max_black_fraction:
            failed.append(("quality.black_frames", clip.black_fraction, c.max_black_fraction))
        if clip.luma is not None and clip.luma < c.min_luma:
            failed.append(("quality.too_dark", clip.luma, c.min_luma))
        if clip.luma is not None and clip.luma > c.max_luma:
            failed.append(("quality.too_bright", clip.luma, c.max_luma))
        if clip.sharpness is not None and clip.sharpness < c.min_sharpness:
            failed.append(("quality.too_blurry", clip.sharpness, c.min_sharpness))
        if clip.static_fraction is not None and clip.static_fraction > c.max_static_fraction:
            failed.append(("quality.static", clip.static_fraction, c.max_static_fraction))
        if clip.text_fraction is not None and clip.text_fraction > c.max_text_fraction:
            failed.append(("quality.too_much_text", clip.text_fraction, c.max_text_fraction))
        if clip.nsfw is not None and clip.nsfw > c.max_nsfw:
            failed.append(("quality.nsfw", clip.nsfw, c.max_nsfw))
        return failed

    def process(self, item: ClipRecord) -> Result:
        failed = self.checks(item)
        if failed:
            detail: dict = {r: {"value": round(v, 4), "threshold": t} for r, v, t in failed}
            if "quality.too_much_text" in detail and item.screen_text:
                detail["quality.too_much_text"]["screen_text"] = item.screen_text
            return Result.dropped(item.clip_id, failed[0][0], detail)
        return Result.kept(item.clip_id, item)
