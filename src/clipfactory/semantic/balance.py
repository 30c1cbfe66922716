"""``build.balance``: caps on the share of a build's clips per content category.

``[build] balance = {driving = 0.3, nature = 0.5}`` caps the share of each named category among the clips
of the build; categories not named are not capped. Each clip takes its source's category from the
semantic layer (:func:`clipfactory.semantic.categories.categorise`: a manifest label mapped in the
taxonomy, else zero-shot on the text vectors, else ``other``).

The build keeps the largest set of clips that meets every cap, dropping only clips of capped categories:
with ``U`` clips of categories not capped and ``n_c`` of each capped category ``c``, the build's size
``N`` is the largest fixed point below the number of clips of ``N = U + sum_c min(n_c, floor(share_c * N))``
(reached by iterating from the number of clips down). A category keeps ``min(n_c, floor(share_c * N))``
clips, chosen round-robin over its sources (sources by id, each source's clips by start time), so a cap
keeps as many different sources as it can. A cap can only be met by what else the build holds: a capped
category with too little beside it keeps few clips, or none (listed as ``emptied``). Clips left out are dropped at ``build.export`` with reason
``build.balance_cap``; the build's ``build.json`` and datasheet state the target and achieved shares.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError

REASON = "build.balance_cap"


def capped_counts(counts: dict[str, int], caps: dict[str, float]) -> dict[str, int]:
    """How many clips each category keeps: ``counts`` per category, ``caps`` the largest share of the named
    ones (see the module docstring)."""
    free = sum(n for c, n in counts.items() if c not in caps)
    n_total = sum(counts.values())
    while True:
        keep = {c: (min(n, math.floor(caps[c] * n_total + 1e-9)) if c in caps else n) for c, n in counts.items()}
        new_total = free + sum(v for c, v in keep.items() if c in caps)
        if new_total >= n_total:
            return keep
        n_total = new_total


def round_robin(clips: list) -> list:
    """Clips ordered one per source at a time: sources by id, each source's clips by start time, clip id."""
    by_source: dict[str, list] = {}
    for c in sorted(clips, key=lambda c: (c.source_id, c.start_ms, c.clip_id)):
        by_source.setdefault(c.source_id, []).append(c)
    out = []
    depth = 0
    while len(out) < len(clips):
        for sid in sorted(by_source):
            if depth < len(by_source[sid]):
                out.append(by_source[sid][depth])
        depth += 1
    return out


def check_caps(caps: dict[str, float], known: set[str] | None = None) -> None:
    for c, share in caps.items():
        if not isinstance(share, int | float) or not 0 <= share <= 1:
            raise ConfigError(f"build.balance share of {c!r} must be a number from 0 to 1, not {share!r}",
                              item=f"[build] balance.{c}", fix='e.g. balance = {driving = 0.3}')
    if known is not None:
        unknown = sorted(set(caps) - known)
        if unknown:
            raise ConfigError(f"build.balance names unknown categories: {', '.join(unknown)}", item="[build] balance",
                              fix=f"use categories of the taxonomy: {', '.join(sorted(known))}")


def balance(clips: list, category_of: dict[str, str], caps: dict[str, float]) -> tuple[list, list, dict[str, Any]]:
    """(kept clips, dropped clips with their detail, summary) of ``clips`` under ``caps``; ``category_of``
    maps a source id to its category (a source it does not name is ``other``)."""
    check_caps(caps)
    groups: dict[str, list] = {}
    for c in clips:
        groups.setdefault(category_of.get(c.source_id, "other"), []).append(c)
    counts = {k: len(v) for k, v in groups.items()}
    keep_n = capped_counts(counts, caps)
    kept, dropped = [], []
    total = sum(keep_n.values())
    for cat in sorted(groups):
        ordered = round_robin(groups[cat]) if cat in caps else groups[cat]
        kept += ordered[: keep_n[cat]]
        for c in ordered[keep_n[cat]:]:
            dropped.append((c, {"category": cat, "cap": caps[cat], "category_clips": counts[cat],
                                "kept_in_category": keep_n[cat], "build_clips": total,
                                "why": f"{cat} over its cap of {caps[cat]:g} of the build's clips"}))
    names = list(dict.fromkeys([*caps, *sorted(groups)]))
    summary = {
        "unit": "clips",
        "target": dict(caps),
        "before": {c: counts.get(c, 0) for c in names},
        "kept": {c: keep_n.get(c, 0) for c in names},
        "achieved": {c: round(keep_n.get(c, 0) / total, 4) if total else 0.0 for c in names},
        "dropped": len(dropped),
        # capped categories that had clips and keep none: their cap cannot be met with what else the build holds
        "emptied": sorted(c for c in caps if counts.get(c, 0) and not keep_n.get(c, 0)),
    }
    return kept, dropped, summary


def categories_of(catalog, source_ids: list[str], taxonomy=None) -> tuple[dict[str, str], set[str]]:
    """(source id → category, the taxonomy's category names) from the semantic layer."""
    from .categories import categorise

    r = categorise(catalog, sorted(set(source_ids)), taxonomy=taxonomy)
    tax = r["taxonomy"]
    return {x["source_id"]: x["category"] for x in r["rows"]}, set(tax["categories"]) | {tax["other"]}
