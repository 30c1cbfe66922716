"""``clipfactory plan``: a target mix of categories, planned before download, within policy.

The candidates are the sources whose stored gate decision for the purpose is ``allow`` (use and
acquisition both allowed: :func:`clipfactory.policy.gate.allowed_source_ids`, read in SQL), one per content hash,
without those that ``dedup.near`` dropped as copies. Each category of the target gets its share of the
budget (sources, or hours), filled with candidates missing from the store first, spread over their manifest
labels: round robin over the labels, each label's best-scored candidate first (:func:`spread_order`).
A category with too few candidates is reported as impossible, with how many there are.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import ConfigError
from .categories import HOW, categorise, category_columns, check_datasets, load_taxonomy


def parse_target(text: str) -> dict[str, float]:
    """``"a=0.4,b=0.6"`` → {"a": 0.4, "b": 0.6}; shares must be positive and add up to 1 (±0.01)."""
    out: dict[str, float] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, sep, value = part.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or not name.strip() or share != share:
            raise ConfigError(f"bad target part {part!r}", item=part, fix='write CATEGORY=SHARE, e.g. "driving=0.5,nature=0.5"')
        if not 0 < share <= 1:
            raise ConfigError(f"target share {value.strip()} for {name.strip()!r} is out of range", item=part,
                              fix="shares must be between 0 and 1 (above 0)")
        if name.strip() in out:
            raise ConfigError(f"category {name.strip()!r} is given twice in the target", item=name.strip(),
                              fix="give each category once")
        out[name.strip()] = share
    if not out or abs(sum(out.values()) - 1.0) > 0.01:
        raise ConfigError(f"the target shares add up to {sum(out.values()):g}, not 1", item=text, fix="make the shares add up to 1")
    return out


def _quotas(
    target: dict[str, float], budget: float, integer: bool, room: dict[str, int] | None = None
) -> dict[str, float]:
    """Each category's share of the budget; in whole sources, the largest remainders get the units left
    after rounding down, first among the categories with a source left for one more (``room``: how many
    each could take), so that a unit is not given to a category that cannot use it while another can
    (a budget of 1 over two equal shares, the first with no candidates)."""
    raw = {c: s * budget for c, s in target.items()}
    if not integer:
        return raw
    q = {c: int(v) for c, v in raw.items()}

    def order(c: str) -> tuple[bool, float]:
        return (room is None or room.get(c, 0) > q[c], raw[c] - q[c])

    for c in sorted(raw, key=order, reverse=True)[: int(round(budget)) - sum(q.values())]:
        q[c] += 1
    return q


#: What a category's picks are spread over: one manifest label of each source, ``dataset:label`` (or its
#: dataset, for a membership without a label). A source with several takes the one whose DuckDB
#: ``hash(dataset, label)`` is the smallest: deterministic, and no string is built per membership (at
#: 10 M sources a minimum over strings costs 5 s of CPU, over hashes 3 s). Sources carry the hash, only
#: the picks the string.
SPREAD_KEY = "min(hash(m.dataset, m.label))"
SPREAD_SQL = "arg_min(m.dataset || coalesce(':' || m.label, ''), hash(m.dataset, m.label))"


def _group_codes(spread: pa.ChunkedArray) -> np.ndarray:
    """One integer per distinct value of ``spread`` (a hash; equal values, equal integers); a source
    without one is a group of its own."""
    a = spread.combine_chunks() if isinstance(spread, pa.ChunkedArray) else spread
    none = a.is_null().to_numpy(zero_copy_only=False)
    out = a.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64).view(np.int64).copy()
    out[none] = np.arange(int(none.sum()))  # its own group (a hash collision with these is harmless)
    return out


def _labels(catalog, ids: list[str], group: np.ndarray) -> dict[str, str]:
    """The spread label (:data:`SPREAD_SQL`) of each of ``ids``, read for one source per ``group``."""
    if not ids:
        return {}
    _, first = np.unique(group, return_index=True)
    one = [ids[i] for i in first]
    with catalog.read() as con:
        got = dict(con.execute(f"SELECT m.source_id, {SPREAD_SQL} FROM memberships m WHERE m.source_id IN "
                               "(SELECT unnest(?)) GROUP BY 1", [one]).fetchall())
    by_group = {int(group[i]): got.get(ids[i]) for i in first}
    return {sid: by_group[int(g)] for sid, g in zip(ids, group.tolist(), strict=True) if by_group[int(g)]}


def spread_order(rows: np.ndarray, score: np.ndarray, held: np.ndarray, group: np.ndarray):
    """The order in which a category's candidates ``rows`` are picked, and each one's round: sources
    missing from the store before held ones; within each, round robin over the groups (manifest labels),
    so that one label does not fill a category: round 0 takes every group's best-scored source (groups by
    their best score), round 1 every group's second best, and so on. Ties: the source id (row order)."""
    if len(rows) == 0:
        return rows, np.zeros(0, np.int64)
    o = np.lexsort((rows, -score, group, held))  # held, group, best first
    rs, sc, h, g = rows[o], score[o], held[o], group[o]
    start = np.r_[True, (h[1:] != h[:-1]) | (g[1:] != g[:-1])]
    first = np.flatnonzero(start)
    seg = np.cumsum(start) - 1
    rank = np.arange(len(rs)) - first[seg]
    best = sc[first][seg]
    o2 = np.lexsort((rs, -sc, g, -best, rank, h))
    return rs[o2], rank[o2]


def _why(category: str, how: str, score: float, held: bool, label: str | None, rank: int) -> str:
    if how == "label":
        base = f"its manifest label maps to {category} in the taxonomy file"
    else:
        base = f"{category} score {score:.3f} (zero-shot on its text)"
    parts = [base, "already in the store" if held else "missing from the store"]
    if label:
        parts.append(f"pick {rank + 1} of {label}")
    return "; ".join(parts)


def plan_mix(
    catalog,
    target: dict[str, float],
    *,
    purpose: str,
    budget_sources: int | None = None,
    budget_hours: float | None = None,
    datasets: list[str] | None = None,
    taxonomy=None,
    settings=None,
    encoder=None,
    out: str | os.PathLike | None = None,
    empty_ok: bool = True,
    keep_shares: bool = False,
) -> dict[str, Any]:
    """The plan (see the module's doc). With ``empty_ok=False`` a plan that picks nothing (every target
    category impossible) is a :class:`ConfigError` naming the categories and the fix, and no file is
    written; with the default it is returned, its ``impossible`` list saying why. A category without
    enough candidates leaves its shortfall unplanned, so the other categories' shares grow; with
    ``keep_shares`` the budget shrinks instead to the largest whose every share can be filled, and
    ``shrunk`` names the budget asked for, the one planned and the categories that limited it."""
    from ..policy.gate import check_decisions

    if (budget_sources is None) == (budget_hours is None):
        raise ConfigError("give one budget", fix="use --budget-sources N or --budget-hours H")
    if budget_sources is not None and (isinstance(budget_sources, bool) or int(budget_sources) != budget_sources
                                       or budget_sources <= 0):
        raise ConfigError(f"--budget-sources {budget_sources} is not allowed", item="--budget-sources",
                          fix="give a positive integer")
    if budget_hours is not None and not (math.isfinite(float(budget_hours)) and float(budget_hours) > 0):
        raise ConfigError(f"--budget-hours {budget_hours} is not allowed", item="--budget-hours",
                          fix="give a positive finite number of hours")
    tax = taxonomy if isinstance(taxonomy, dict) else load_taxonomy(taxonomy)
    known = set(tax["categories"]) | {tax["other"]}
    unknown = [c for c in target if c not in known]
    if unknown:
        raise ConfigError(f"unknown categories in the target: {', '.join(unknown)}", item=unknown[0],
                          fix=f"use categories of {tax['where']}: {', '.join(sorted(known))}")
    check_datasets(catalog, datasets)
    check_decisions(catalog, purpose, settings=settings)
    # one pass over the sources: category (vectors in batches), the stored decision, dedup.near's drops and
    # a number per content hash; then NumPy, no loop over sources
    r = category_columns(
        catalog, taxonomy=tax, encoder=encoder, datasets=datasets,
        extra=""", s.source_id IN (SELECT source_id FROM policy_decisions
                                   WHERE purpose = ? AND decision = 'allow') AS allowed,
                   s.source_id IN (SELECT item_id FROM latest_outcomes
                                   WHERE stage = 'dedup.near' AND status = 'dropped') AS dup,
                   CASE WHEN s.content_sha256 IS NULL THEN -1
                        ELSE dense_rank() OVER (ORDER BY s.content_sha256) END AS sha_code""",
        extra_params=[purpose],
        # a number per label (a hash: no string per source crosses into Arrow); the picks' labels after
        member_agg=SPREAD_KEY,
    )
    t, order, code, held = r["table"], r["order"], r["code"], r["held"]
    allowed = t.column("allowed").to_numpy(zero_copy_only=False).astype(bool)
    dup = t.column("dup").to_numpy(zero_copy_only=False).astype(bool)
    sha = t.column("sha_code").to_numpy(zero_copy_only=False).astype(np.int64)
    tcode = {c: order.index(c) for c in target}
    in_target = np.isin(code, list(tcode.values()))
    held_count = np.bincount(code[in_target & held], minlength=len(order))
    in_catalog = np.bincount(code, minlength=len(order))  # whatever their decision
    cand = in_target & allowed & ~dup
    # one source per content hash: the first in source id order
    hashed = np.flatnonzero(cand & (sha >= 0))
    first = np.zeros(len(cand), bool)
    first[hashed[np.unique(sha[hashed], return_index=True)[1]]] = True
    cand &= (sha < 0) | first
    by_hours = budget_hours is not None
    budget = float(budget_hours) if by_hours else int(budget_sources)
    room = None if by_hours else {c: int((cand & (code == tcode[c])).sum()) for c in target}
    quotas = _quotas(target, budget, not by_hours, room)
    picked: dict[str, np.ndarray] = {}
    ranks: dict[str, np.ndarray] = {}
    amounts: dict[str, float] = {}
    held_amounts: dict[str, float] = {}  # of the planned, what the store already holds
    available: dict[str, int] = {}
    capacity: dict[str, float] = {}  # all that the category's candidates could give
    impossible: list[dict[str, Any]] = []
    group = _group_codes(t.column("member_agg"))

    def select(quotas: dict[str, float]) -> None:
        impossible.clear()
        for c, quota in quotas.items():
            rows = np.flatnonzero(cand & (code == tcode[c]))  # in source id order
            available[c] = len(rows)
            rows, rank = spread_order(rows, r["own_score"][rows], held[rows], group[rows])
            each = r["hours"][rows] if by_hours else np.ones(len(rows))
            # by hours, a source whose hours are unknown (no duration, no spans) would count as none: not taken
            usable = each > 0 if by_hours else np.ones(len(rows), bool)
            capacity[c] = float(each[usable].sum())
            before = np.cumsum(each) - each
            take = (before < quota - 1e-9) & usable
            picked[c] = rows[take]
            ranks[c] = rank[take]
            amount = float(each[take].sum()) if by_hours else int(take.sum())
            amounts[c] = amount
            got_held = held[rows][take].astype(bool)
            held_amounts[c] = float(each[take][got_held].sum()) if by_hours else int(got_held.sum())
            if amount < quota - 1e-9:
                why = (f"{len(rows)} acquirable sources for {purpose!r} give {amount:g} of {quota:g} "
                       f"{'hours' if by_hours else 'sources'} ({int(in_catalog[tcode[c]])} {c} sources "
                       f"{'in ' + ', '.join(datasets) if datasets else 'in the catalog'})")
                if by_hours and not usable.all():
                    why += f"; {int((~usable).sum())} of them have no known hours (no duration, no spans)"
                if r["model_id"] is None:
                    why += "; the catalog has no text vectors, so only mapped labels give categories: run " \
                           "`clipfactory semantic index`"
                impossible.append({"category": c, "wanted": round(quota, 3), "available": round(amount, 3),
                                   "sources": int(in_catalog[tcode[c]]), "acquirable": len(rows),
                                   "without_hours": int((~usable).sum()) if by_hours else 0, "why": why})

    select(quotas)
    shrunk = None
    if keep_shares and impossible:
        # the largest budget whose every share the candidates can fill (in whole sources, each share
        # rounded down is then within its candidates, and _quotas adds a unit only where one is left)
        fits = min(capacity[c] / share for c, share in target.items() if share > 0)
        smaller: float = fits if by_hours else int(fits + 1e-9)
        if smaller > 0:
            shrunk = {"budget": budget, "planned_budget": round(smaller, 3) if by_hours else smaller,
                      "limited_by": [dict(p) for p in impossible]}
            quotas = _quotas(target, smaller, not by_hours, room)
            select(quotas)
    total = sum(amounts.values())
    if not total and not empty_ok:
        raise _empty_plan_error(impossible, purpose, datasets, by_hours, r["model_id"] is None)
    cats = [{"category": c, "target": target[c], "planned": round(amounts[c], 3),
             "planned_share": round(amounts[c] / total, 4) if total else 0.0,
             "held": int(held_count[tcode[c]]), "available": available[c],
             "planned_held": round(held_amounts[c], 3),
             "held_share": round(held_amounts[c] / total, 4) if total else 0.0} for c in target]
    sources = []
    how = r["how"]
    ids_of = {c: t.column("source_id").take(pa.array(rows)).to_pylist() for c, rows in picked.items()}
    label_of = _labels(catalog, [x for ids in ids_of.values() for x in ids],
                       np.concatenate([group[rows] for rows in picked.values()]) if picked else np.zeros(0, np.int64))
    for c, rows in picked.items():
        ids = ids_of[c]
        for k, (sid, score, h) in enumerate(zip(ids, r["own_score"][rows].tolist(), held[rows].tolist(), strict=True)):
            g = label_of.get(sid)
            sources.append({"source_id": sid, "category": c, "score": round(score, 4), "held": h,
                            "label": g, "why": _why(c, HOW[how[rows[k]]], score, h, g, int(ranks[c][k]))})
    result = {
        "purpose": purpose,
        "unit": "hours" if by_hours else "sources",
        "budget": budget,
        "planned": round(total, 3),
        "categories": cats,
        "impossible": impossible,
        "shrunk": shrunk,
        "sources": sources,
        "chart": chart(cats),
        "taxonomy": tax["where"],
    }
    if out:
        Path(out).write_text(json.dumps(result, indent=2))
        result["written"] = str(out)
    return result


def _empty_plan_error(impossible: list[dict[str, Any]], purpose: str, datasets, by_hours: bool,
                      not_indexed: bool) -> ConfigError:
    """Nothing to plan: each target category named with what the catalog has of it, and what to do."""
    where = "in " + ", ".join(datasets) if datasets else "in the catalog"
    parts = []
    for p in impossible:
        if not p["sources"]:
            parts.append(f"{p['category']} (no sources {where})")
        elif not p["acquirable"]:
            parts.append(f"{p['category']} ({p['sources']} sources, none that {purpose!r} may acquire and use)")
        else:
            parts.append(f"{p['category']} ({p['acquirable']} acquirable sources, {p['without_hours']} of them "
                         "without known hours)")
    names = ", ".join(p["category"] for p in impossible)
    fixes = []
    if not_indexed and any(not p["sources"] for p in impossible):
        fixes.append("run `clipfactory semantic index` (the catalog has no text vectors, so only mapped labels "
                     "give categories)")
    if any(p["sources"] and not p["acquirable"] for p in impossible):
        fixes.append(f"run `clipfactory policy check --purpose {purpose}` (with --permissions for platforms "
                     "that need a recorded permission) so that they may be acquired")
    if by_hours and any(p["acquirable"] for p in impossible):
        fixes.append("use --budget-sources, or fetch the sources so that their durations are known")
    fixes.append(f"ingest sources of {names} with `clipfactory ingest`, or target categories the catalog has "
                 "(`clipfactory categories` shows the mix)")
    return ConfigError(
        f"nothing to plan for {purpose!r}: every category of the target is impossible: {'; '.join(parts)}",
        item=names, fix="; or ".join(fixes),
    )


def chart(cats: list[dict[str, Any]], width: int = 40) -> str:
    """Target against planned share, the share of the plan the store already holds, and the achieved share
    after a build: one group of bars per category (text)."""
    lines = []
    pad = max((len(c["category"]) for c in cats), default=0)
    for c in cats:
        lines.append(f"{c['category']:<{pad}}  target   {'#' * round(c['target'] * width):<{width}} {c['target']:.0%}")
        lines.append(f"{'':<{pad}}  planned  {'=' * round(c['planned_share'] * width):<{width}} {c['planned_share']:.0%}")
        if "held_share" in c:
            lines.append(f"{'':<{pad}}  held     {'+' * round(c['held_share'] * width):<{width}} {c['held_share']:.0%}")
        if "achieved_share" in c:
            lines.append(f"{'':<{pad}}  achieved {'*' * round(c['achieved_share'] * width):<{width}} {c['achieved_share']:.0%}")
    return "\n".join(lines)


def load_plan(path: str | os.PathLike) -> dict[str, Any]:
    """A plan written by ``clipfactory plan --out``: its sources, categories, purpose and unit."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no plan file at {p}", item=str(p), fix="write one with `clipfactory plan ... --out PLAN`")
    try:
        plan = json.loads(p.read_text())
    except ValueError as exc:
        raise ConfigError(f"{p} is not a plan (not JSON: {exc})", item=str(p),
                          fix="use the file `clipfactory plan --out` wrote") from None
    missing = [k for k in ("sources", "categories", "purpose", "unit") if not isinstance(plan, dict) or k not in plan]
    if missing:
        raise ConfigError(f"{p} is not a plan: it has no {', '.join(missing)}", item=str(p),
                          fix="use the file `clipfactory plan --out` wrote")
    return plan


def plan_source_ids(plan: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(str(s["source_id"]) for s in plan["sources"]))


def _plan_taxonomy(plan: dict[str, Any], taxonomy=None):
    if taxonomy is not None:
        return taxonomy
    where = plan.get("taxonomy")
    return where if where and Path(where).is_file() else None


def _resolve_build(catalog, build: str | None) -> dict[str, Any]:
    from ..errors import NotFoundError

    if build:
        rows = catalog.query("SELECT build_id, name, version FROM builds WHERE build_id = ?", [build]) or catalog.query(
            "SELECT build_id, name, version FROM builds WHERE name = ? ORDER BY version DESC LIMIT 1", [build])
    else:
        rows = catalog.query("SELECT build_id, name, version FROM builds ORDER BY created_at DESC, version DESC LIMIT 1")
    if not rows:
        raise NotFoundError("no such build" if build else "the catalog has no builds", item=build or str(catalog.where),
                            fix="see `clipfactory builds list`; build the plan with `clipfactory run --plan PLAN`")
    return rows[0]


def check_plan(catalog, plan: dict[str, Any], *, build: str | None = None, taxonomy=None) -> dict[str, Any]:
    """Target against planned against achieved: the plan's categories, and what the build (an id, a name
    for its latest version, or the latest build) holds of each, in the plan's unit (sources, or hours of
    the build's clips). Shares are of the whole build, so content outside the target shows as a shortfall."""
    b = _resolve_build(catalog, build)
    rows = catalog.query(
        """SELECT m.source_id, count(*) AS clips, coalesce(sum(c.end_ms - c.start_ms), 0) AS ms
           FROM build_members m LEFT JOIN clips c USING (clip_id) WHERE m.build_id = ? GROUP BY 1 ORDER BY 1""",
        [b["build_id"]],
    )
    by_hours = plan["unit"] == "hours"
    cats_of = {}
    if rows:
        r = categorise(catalog, [x["source_id"] for x in rows], taxonomy=_plan_taxonomy(plan, taxonomy))
        cats_of = {x["source_id"]: x["category"] for x in r["rows"]}
    amount: dict[str, float] = {}
    for x in rows:
        c = cats_of.get(x["source_id"], "other")
        amount[c] = amount.get(c, 0.0) + (x["ms"] / 3.6e6 if by_hours else 1)
    total = sum(amount.values())
    planned_ids = set(plan_source_ids(plan))
    built = {x["source_id"] for x in rows}
    cats = []
    for c in plan["categories"]:
        got = amount.get(c["category"], 0.0)
        cats.append({**{k: c[k] for k in ("category", "target", "planned", "planned_share")},
                     "achieved": round(got, 3), "achieved_share": round(got / total, 4) if total else 0.0})
    return {
        "build_id": b["build_id"],
        "purpose": plan["purpose"],
        "unit": plan["unit"],
        "achieved": round(total, 3),
        "planned_sources": len(planned_ids),
        "planned_sources_built": len(planned_ids & built),
        "other_sources_built": len(built - planned_ids),
        "categories": cats,
        "off_target": {c: round(v, 3) for c, v in sorted(amount.items()) if c not in {x["category"] for x in cats}},
        "chart": chart(cats),
    }
