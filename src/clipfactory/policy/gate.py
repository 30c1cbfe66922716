"""The purpose-aware policy gate: allow / deny / review, with reasons and evidence.

Two questions, and both must be yes:

(a) **Use.** May the content be used for the purpose? The effective use class (the most restrictive over
    the content terms and every dataset licence along each membership's lineage) must be one the purpose
    profile accepts; no dataset on the lineage may be withdrawn (every profile), forbid redistribution
    (profiles that say so) or be refused by the profile; the source must not belong to an evaluation set
    of the build (decontamination).
(b) **Acquisition.** May it be acquired through its channel? Owned local files: yes. An ordinary web host:
    yes, subject to the consent checks made at fetch time. A platform whose terms forbid downloading
    (YouTube): only where a written permission is recorded in the permissions file. The channel is that of
    the platform of origin, not where the bytes happen to sit: a YouTube video in a local folder was
    still downloaded from YouTube.

Decisions: ``deny`` when any reason denies; else ``review`` when something needs a person (a dataset
marked ``needs_review``, such as Ego4D, or a platform the registry does not know); else ``allow``.

The gate is vectorised: per-dataset, per-(platform, licence) and per-platform verdicts are computed in
Python (there are few of them), registered as Arrow tables and joined in SQL against ``sources`` and
``memberships``, so a purpose over millions of sources is one ``INSERT … SELECT``.
:func:`decide_source` is the same rule for one source, in Python; a test proves both agree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..errors import PolicyError
from ..records import SourceRecord
from .lineage import content_terms, dataset_lineage, dataset_terms
from .permissions import Permissions, load_permissions
from .profiles import Policy, Profile, load_policy
from .taxonomy import USE_CLASSES, LicenseTerms

log = logging.getLogger(__name__)

DECISIONS = ("allow", "deny", "review")


# ---------------------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The gate's answer for one source and purpose, with its evidence."""

    source_id: str
    purpose: str
    decision: str  # allow | deny | review
    use_ok: bool
    acquire_ok: bool
    effective_class: str
    attribution: bool
    share_alike: bool
    reasons: tuple[str, ...]
    lineage: dict[str, Any] = field(compare=False)
    policy_hash: str = ""

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "purpose": self.purpose,
            "decision": self.decision,
            "use_ok": self.use_ok,
            "acquire_ok": self.acquire_ok,
            "effective_class": self.effective_class,
            "attribution": self.attribution,
            "share_alike": self.share_alike,
            "reasons": list(self.reasons),
            "lineage": self.lineage,
            "policy_hash": self.policy_hash,
        }


def _term_reasons(t: LicenseTerms, profile: Profile) -> list[str]:
    out = []
    if t.use_class not in profile.accept:
        if t.unknown:
            out.append("policy.license_unknown")
        elif t.use_class == "unspecified":
            out.append("policy.license_unspecified")
        else:
            out.append("policy.license_noncommercial")
    if t.attribution and not profile.attribution_ok:
        out.append("policy.attribution_required")
    if t.share_alike and not profile.share_alike_ok:
        out.append("policy.share_alike_required")
    return out


@dataclass(frozen=True)
class _DatasetVerdict:
    dataset: str
    registry_key: str
    rank: int
    attribution: bool
    share_alike: bool
    deny: tuple[str, ...]
    review: tuple[str, ...]
    lineage: dict[str, Any]


@dataclass(frozen=True)
class _Acq:
    """Acquisition through one platform: ok, only with a scoped permission, or no."""

    platform: str | None
    download: str
    status: str  # ok | scoped | no
    reason: str | None
    check: dict[str, Any]


@dataclass(frozen=True)
class _ContentVerdict:
    platform: str | None
    content_license: str | None
    rank: int
    attribution: bool
    share_alike: bool
    deny: tuple[str, ...]
    review: tuple[str, ...]
    content: dict[str, Any]
    acq: _Acq


class _Context:
    """Everything about a purpose that does not depend on the individual source."""

    def __init__(self, policy: Policy, permissions: Permissions, purpose: str, evaluation: list[str]):
        self.policy = policy
        self.registry = policy.registry
        self.licenses = policy.licenses
        self.profile = policy.profile(purpose)
        self.permissions = permissions
        self.purpose = purpose
        self.evaluation = _parse_eval(evaluation)
        if self.profile.decontaminate_benchmarks:
            for d in self.registry.datasets.values():
                for split in d.evaluation_splits:
                    if (d.key, None) not in self.evaluation and (d.key, split) not in self.evaluation:
                        self.evaluation.append((d.key, split))
        self.policy_hash = policy_hash(policy, permissions, purpose)
        self._ds: dict[tuple[str, str], _DatasetVerdict] = {}
        self._pc: dict[tuple[str | None, str | None], _ContentVerdict] = {}
        self._acq: dict[str | None, _Acq] = {}

    # -- evaluation sets -----------------------------------------------------------------------------
    def is_eval(self, dataset: str, split: str | None, registry_key: str | None = None) -> bool:
        names = {dataset, registry_key or dataset}
        return any(d in names and (s is None or s == split) for d, s in self.evaluation)

    def evaluation_names(self) -> list[str]:
        return [d if s is None else f"{d}:{s}" for d, s in self.evaluation]

    # -- datasets ------------------------------------------------------------------------------------
    def dataset(self, name: str, registry_key: str | None = None) -> _DatasetVerdict:
        """The verdict on one membership dataset. ``registry_key`` (from ``datasets.registry_key``) names
        the registry entry when the dataset was ingested under another name."""
        key = registry_key or name
        v = self._ds.get((name, key))
        if v is not None:
            return v
        prof = self.profile
        lineage = dataset_lineage(self.registry, self.licenses, key)
        if key != name:
            lineage = {
                "dataset": name,
                "registry_key": key,
                **{k: x for k, x in lineage.items() if k != "dataset"},
            }
        deny: list[str] = []
        review: list[str] = []
        terms = dataset_terms(self.registry, self.licenses, key)
        for t in terms:
            deny += _term_reasons(t.terms, prof)
        if name in prof.deny_datasets:
            deny.append(f"policy.dataset_denied:{name}")
        for k in lineage["chain"]:
            e = self.registry.dataset(k)
            if k in prof.deny_datasets:
                deny.append(f"policy.dataset_denied:{k}")
            if e is None:
                continue
            if e.withdrawn:
                deny.append(f"policy.dataset_withdrawn:{k}")
            if e.no_redistribution and prof.deny_no_redistribution:
                deny.append(f"policy.no_redistribution:{k}")
            if e.needs_review and k not in prof.reviewed and name not in prof.reviewed:
                review.append(f"policy.needs_review:{k}")
        v = _DatasetVerdict(
            dataset=name,
            registry_key=key,
            rank=max((t.terms.rank for t in terms), default=0),
            attribution=any(t.terms.attribution for t in terms),
            share_alike=any(t.terms.share_alike for t in terms),
            deny=tuple(sorted(set(deny))),
            review=tuple(sorted(set(review))),
            lineage=lineage,
        )
        self._ds[(name, key)] = v
        return v

    # -- acquisition ---------------------------------------------------------------------------------
    def acquisition(self, platform: str | None) -> _Acq:
        """Acquisition through ``platform`` (a registry key or any spelling of one)."""
        if platform in self._acq:
            return self._acq[platform]
        p = self.registry.platform(platform)
        key = p.key if p else platform
        check: dict[str, Any] = {"platform": key, "download": p.download if p else "unknown"}
        if p is None or p.download != "permission_required":
            a = _Acq(key, check["download"], "ok", None, {**check, "status": "ok"})
        else:
            active = self.permissions.active(p.key, self.purpose)
            expired = [x for x in self.permissions.for_platform(p.key, self.purpose) if x.expired()]
            whole = [x for x in active if x.scope == "all"]
            if whole:
                a = _Acq(
                    key, p.download, "ok", None, {**check, "status": "ok", "permission": whole[0].evidence()}
                )
            else:
                reason = f"policy.platform_terms_no_permission:{p.key}"
                status = "scoped" if active else "no"
                c = {**check, "status": status, "reason": reason}
                if active:
                    c["scoped_permissions"] = [x.evidence() for x in active]
                if expired:
                    c["expired_permissions"] = [x.evidence() for x in expired]
                a = _Acq(key, p.download, status, reason, c)
        self._acq[platform] = a
        return a

    def scoped_covers(self, platform: str, source_id: str, datasets: list[str] | set[str]) -> bool:
        for x in self.permissions.active(platform, self.purpose):
            if x.scope == "sources" and source_id in x.source_ids:
                return True
            if x.scope == "datasets" and any(d in x.datasets for d in datasets):
                return True
        return False

    def host_platforms(self) -> list[tuple[str, str]]:
        """(host, platform) for platforms whose terms need a permission to download."""
        return [
            (h, k)
            for h, k in self.registry.host_table()
            if self.registry.platforms[k].download == "permission_required"
        ]

    # -- content -------------------------------------------------------------------------------------
    def content(self, platform: str | None, content_license: str | None) -> _ContentVerdict:
        k = (platform, content_license)
        v = self._pc.get(k)
        if v is not None:
            return v
        prof = self.profile
        terms = content_terms(self.registry, self.licenses, platform, content_license)
        deny: list[str] = []
        review: list[str] = []
        for t in terms:
            deny += _term_reasons(t.terms, prof)
        p = self.registry.platform(platform)
        key = p.key if p else platform
        if key and key in prof.deny_platforms:
            deny.append(f"policy.platform_denied:{key}")
        if p is None:
            review.append(f"policy.platform_unknown:{platform or 'none'}")
        content = {
            "platform": platform,
            "platform_key": p.key if p else None,
            "terms": [t.to_dict() for t in terms],
        }
        v = _ContentVerdict(
            platform=platform,
            content_license=content_license,
            rank=max(t.terms.rank for t in terms),
            attribution=any(t.terms.attribution for t in terms),
            share_alike=any(t.terms.share_alike for t in terms),
            deny=tuple(sorted(set(deny))),
            review=tuple(sorted(set(review))),
            content=content,
            acq=self.acquisition(platform),
        )
        self._pc[k] = v
        return v


def _parse_eval(names: list[str]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for n in names or []:
        n = n.strip()
        if not n:
            continue
        d, _, s = n.partition(":")
        item = (d.strip(), s.strip() or None)
        if item not in out:
            out.append(item)
    return out


def policy_hash(policy: Policy, permissions: Permissions, purpose: str) -> str:
    payload = json.dumps(
        {
            "policy": policy.digest,
            "permissions": permissions.digest,
            "profile": policy.profile(purpose).to_dict(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _context(settings: Any, purpose: str, evaluation: list[str] | None) -> _Context:
    if evaluation is None:
        evaluation = list(getattr(getattr(settings, "build", None), "evaluation_manifests", None) or [])
    return _Context(load_policy(settings), load_permissions(settings), purpose, evaluation)


_HOST_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)"
_host_re = re.compile(_HOST_RE)


def _host(url: str | None) -> str | None:
    if not url:
        return None
    m = _host_re.match(url.strip())
    return m.group(1).lower() if m else None


def _host_platform(ctx: _Context, host: str | None) -> str | None:
    if not host:
        return None
    best = None
    for h, k in ctx.host_platforms():
        if host == h or host.endswith("." + h):
            best = k if best is None else min(best, k)
    return best


def _finish(
    ctx: _Context,
    source_id: str,
    pc: _ContentVerdict,
    dvs: list[_DatasetVerdict],
    eval_hits: list[str],
    host: str | None,
    host_platform: str | None,
    scoped_hit: bool,
    acq_reasons: list[str],
) -> Decision:
    use_deny = set(pc.deny)
    review = set(pc.review)
    for v in dvs:
        use_deny.update(v.deny)
        review.update(v.review)
    use_deny.update(f"policy.evaluation_set:{d}" for d in eval_hits)
    acq = set(acq_reasons)
    rank = max([pc.rank] + [v.rank for v in dvs])
    decision = "deny" if use_deny or acq else ("review" if review else "allow")
    checks = [pc.acq.check]
    if host_platform is not None and host_platform != pc.acq.platform:
        checks.append(ctx.acquisition(host_platform).check)
    lineage = {
        "content": pc.content,
        "annotations": [v.lineage for v in sorted(dvs, key=lambda v: v.dataset)],
        "evaluation_sets": sorted(eval_hits),
        "acquisition": {"host": host, "checks": checks, "scoped_permission": scoped_hit, "ok": not acq},
    }
    return Decision(
        source_id=source_id,
        purpose=ctx.purpose,
        decision=decision,
        use_ok=not use_deny and not review,
        acquire_ok=not acq,
        effective_class=USE_CLASSES[rank],
        attribution=pc.attribution or any(v.attribution for v in dvs),
        share_alike=pc.share_alike or any(v.share_alike for v in dvs),
        reasons=tuple(sorted(use_deny | acq | review)),
        lineage=lineage,
        policy_hash=ctx.policy_hash,
    )


def _decide(
    ctx: _Context, source: SourceRecord, memberships: list[str], registry_keys: dict[str, str] | None = None
) -> Decision:
    keys = registry_keys or {}
    mems = _parse_eval(memberships)  # the same "dataset[:split]" spelling
    datasets = sorted({d for d, _ in mems})
    dvs = [ctx.dataset(d, keys.get(d)) for d in datasets]
    eval_hits = sorted({d for d, s in mems if ctx.is_eval(d, s, keys.get(d))})
    names = set(datasets) | {keys.get(d, d) for d in datasets}
    pc = ctx.content(source.platform, source.content_license)
    host = _host(source.url)
    hp = _host_platform(ctx, host)
    acq_reasons: list[str] = []
    scoped_hit = False
    for a in [pc.acq] + ([ctx.acquisition(hp)] if hp is not None and hp != pc.acq.platform else []):
        if a.status == "ok":
            continue
        if a.status == "scoped" and ctx.scoped_covers(a.platform, source.source_id, names):
            scoped_hit = True
            continue
        acq_reasons.append(a.reason)
    return _finish(ctx, source.source_id, pc, dvs, eval_hits, host, hp, scoped_hit, acq_reasons)


def decide_source(
    source: SourceRecord,
    memberships: list[str],
    purpose: str,
    *,
    settings: Any = None,
    evaluation_datasets: list[str] | None = None,
    registry_keys: dict[str, str] | None = None,
) -> Decision:
    """Decide one source (pure: reads no catalog).

    ``memberships`` are the datasets the source belongs to, each ``"dataset"`` or ``"dataset:split"``.
    ``evaluation_datasets`` default to ``settings.build.evaluation_manifests``. ``registry_keys`` maps a
    dataset ingested under its own name to its registry entry (``datasets.registry_key``).
    """
    return _decide(_context(settings, purpose, evaluation_datasets), source, memberships, registry_keys)


# ---------------------------------------------------------------------------------------------------------
# Acquisition check for fetchers
# ---------------------------------------------------------------------------------------------------------


def acquisition_check(
    platform: str | None,
    host: str | None,
    *,
    settings: Any = None,
    purpose: str | None = None,
    source_id: str | None = None,
    datasets: list[str] | None = None,
) -> tuple[bool, str | None]:
    """May bytes be fetched from ``host`` for a source on ``platform``? Returns ``(ok, reason)``.

    Called by the HTTP fetcher before fetching and again for the host a redirect lands on. A platform whose
    terms forbid downloading (named by ``platform`` or recognised from ``host`` through the registry's host
    lists) is refused unless a written permission is recorded; a permission scoped to sources or datasets
    counts only when ``source_id`` / ``datasets`` fall in its scope. Everything else is allowed here,
    subject to the consent checks the fetcher makes on the response.
    """
    policy = load_policy(settings)
    permissions = load_permissions(settings)
    reg = policy.registry
    candidates: list[str] = []
    p = reg.platform(platform)
    if p is not None:
        candidates.append(p.key)
    if host:
        hp = reg.platform_for_host(_host(host) or host)
        if hp is not None and hp.key not in candidates:
            candidates.append(hp.key)
    for key in candidates:
        entry = reg.platforms[key]
        if entry.download != "permission_required":
            continue
        active = permissions.active(key, purpose)
        if any(x.scope == "all" for x in active):
            continue
        if any(
            (x.scope == "sources" and source_id and source_id in x.source_ids)
            or (x.scope == "datasets" and any(d in x.datasets for d in datasets or []))
            for x in active
        ):
            continue
        return False, f"policy.platform_terms_no_permission:{key}"
    return True, None


# ---------------------------------------------------------------------------------------------------------
# Vectorised evaluation over the catalog
# ---------------------------------------------------------------------------------------------------------

_EMPTY_MEMBERSHIPS = pa.table(
    {
        "dataset": pa.array([], pa.string()),
        "source_id": pa.array([], pa.string()),
        "split": pa.array([], pa.string()),
    }
)


def _membership_datasets(con, mem_name: str) -> list[tuple[str, str | None]]:
    """Distinct membership datasets with their registry key (from ``datasets.registry_key``)."""
    if _has_table(con, "datasets"):
        sql = (
            f"SELECT DISTINCT m.dataset, d.registry_key FROM (SELECT DISTINCT dataset FROM {mem_name}) m "
            "LEFT JOIN datasets d ON d.dataset = m.dataset WHERE m.dataset IS NOT NULL"
        )
    else:
        sql = f"SELECT DISTINCT dataset, NULL FROM {mem_name} WHERE dataset IS NOT NULL"
    return [(r[0], r[1]) for r in con.execute(sql).fetchall()]


def registry_keys(con) -> dict[str, str]:
    """``datasets.registry_key`` by dataset name, where the ingest recorded one."""
    if not _has_table(con, "datasets"):
        return {}
    rows = con.execute("SELECT dataset, registry_key FROM datasets WHERE registry_key IS NOT NULL").fetchall()
    return {d: k for d, k in rows}


def _has_table(con, name: str) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'",
        [name],
    ).fetchall()
    return rows[0][0] > 0


def _ds_table(ctx: _Context, names: list[tuple[str, str | None]]) -> pa.Table:
    vs = [ctx.dataset(n, k) for n, k in names]
    return pa.table(
        {
            "dataset": pa.array([v.dataset for v in vs], pa.string()),
            "registry_key": pa.array([v.registry_key for v in vs], pa.string()),
            "rank": pa.array([v.rank for v in vs], pa.int32()),
            "attribution": pa.array([v.attribution for v in vs], pa.bool_()),
            "share_alike": pa.array([v.share_alike for v in vs], pa.bool_()),
            "deny": pa.array([list(v.deny) for v in vs], pa.list_(pa.string())),
            "review": pa.array([list(v.review) for v in vs], pa.list_(pa.string())),
            "lineage": pa.array([json.dumps(v.lineage) for v in vs], pa.string()),
        }
    )


def _pc_table(ctx: _Context, pairs: list[tuple[str | None, str | None]]) -> pa.Table:
    vs = [ctx.content(p, c) for p, c in pairs]
    return pa.table(
        {
            "platform": pa.array([v.platform for v in vs], pa.string()),
            "content_license": pa.array([v.content_license for v in vs], pa.string()),
            "rank": pa.array([v.rank for v in vs], pa.int32()),
            "attribution": pa.array([v.attribution for v in vs], pa.bool_()),
            "share_alike": pa.array([v.share_alike for v in vs], pa.bool_()),
            "deny": pa.array([list(v.deny) for v in vs], pa.list_(pa.string())),
            "review": pa.array([list(v.review) for v in vs], pa.list_(pa.string())),
            "content": pa.array([json.dumps(v.content) for v in vs], pa.string()),
            "acq_platform": pa.array([v.acq.platform for v in vs], pa.string()),
            "acq_status": pa.array([v.acq.status for v in vs], pa.string()),
            "acq_reason": pa.array([v.acq.reason for v in vs], pa.string()),
            "acq_check": pa.array([json.dumps(v.acq.check) for v in vs], pa.string()),
        }
    )


def _host_table(ctx: _Context) -> pa.Table:
    rows = ctx.host_platforms()
    acqs = [ctx.acquisition(k) for _, k in rows]
    return pa.table(
        {
            "host": pa.array([h for h, _ in rows], pa.string()),
            "platform": pa.array([k for _, k in rows], pa.string()),
            "acq_status": pa.array([a.status for a in acqs], pa.string()),
            "acq_reason": pa.array([a.reason for a in acqs], pa.string()),
            "acq_check": pa.array([json.dumps(a.check) for a in acqs], pa.string()),
        }
    )


def _scoped_tables(ctx: _Context) -> tuple[pa.Table, pa.Table]:
    src: list[tuple[str, str]] = []
    ds: list[tuple[str, str]] = []
    for x in ctx.permissions.items:
        if x.expired() or not x.covers_purpose(ctx.purpose):
            continue
        if x.scope == "sources":
            src += [(x.platform, s) for s in x.source_ids]
        elif x.scope == "datasets":
            ds += [(x.platform, d) for d in x.datasets]
    return (
        pa.table(
            {
                "platform": pa.array([p for p, _ in src], pa.string()),
                "source_id": pa.array([s for _, s in src], pa.string()),
            }
        ),
        pa.table(
            {
                "platform": pa.array([p for p, _ in ds], pa.string()),
                "dataset": pa.array([d for _, d in ds], pa.string()),
            }
        ),
    )


def _eval_table(ctx: _Context) -> pa.Table:
    return pa.table(
        {
            "dataset": pa.array([d for d, _ in ctx.evaluation], pa.string()),
            "split": pa.array([s for _, s in ctx.evaluation], pa.string()),
        }
    )


_DECIDE_SQL = """
WITH src AS (
    SELECT s.source_id, s.platform, s.content_license,
           lower(nullif(regexp_extract(s.url, '{host_re}', 1), '')) AS host
    FROM sources s {subset_join}
),
mm AS (
    SELECT m.source_id, m.dataset, bool_or(e.dataset IS NOT NULL) AS eval_hit
    FROM {memberships} m
    JOIN src ON src.source_id = m.source_id
    JOIN _pol_ds d ON d.dataset = m.dataset
    LEFT JOIN _pol_eval e ON (e.dataset = m.dataset OR e.dataset = d.registry_key)
                         AND (e.split IS NULL OR e.split IS NOT DISTINCT FROM m.split)
    GROUP BY m.source_id, m.dataset
),
mem AS (
    SELECT mm.source_id,
           list(mm.dataset ORDER BY mm.dataset) AS datasets,
           max(d.rank) AS rank,
           bool_or(d.attribution) AS attribution,
           bool_or(d.share_alike) AS share_alike,
           flatten(list(d.deny)) AS deny,
           flatten(list(d.review)) AS review,
           coalesce(list('policy.evaluation_set:' || mm.dataset ORDER BY mm.dataset) FILTER (WHERE mm.eval_hit), []) AS eval_reasons,
           coalesce(list(mm.dataset ORDER BY mm.dataset) FILTER (WHERE mm.eval_hit), []) AS eval_hits,
           list(d.lineage::JSON ORDER BY mm.dataset) AS lineage
    FROM mm JOIN _pol_ds d ON d.dataset = mm.dataset
    GROUP BY mm.source_id
),
hp AS (
    SELECT src.source_id, min(h.platform) AS platform
    FROM src JOIN _pol_hosts h ON src.host = h.host OR ends_with(src.host, '.' || h.host)
    GROUP BY src.source_id
),
scoped AS (
    SELECT source_id, platform FROM _pol_perm_src
    UNION
    SELECT m.source_id, p.platform
    FROM {memberships} m JOIN _pol_ds d ON d.dataset = m.dataset
    JOIN _pol_perm_ds p ON p.dataset = m.dataset OR p.dataset = d.registry_key
),
j AS (
    SELECT src.source_id, src.host,
           pc.rank AS pc_rank, pc.attribution AS pc_attr, pc.share_alike AS pc_sa,
           pc.deny AS pc_deny, pc.review AS pc_review, pc.content, pc.acq_platform, pc.acq_check,
           mem.rank AS ds_rank, mem.attribution AS ds_attr, mem.share_alike AS ds_sa,
           mem.deny AS ds_deny, mem.review AS ds_review, mem.eval_reasons, mem.eval_hits, mem.lineage AS ds_lineage,
           CASE WHEN hp.platform IS NOT NULL AND hp.platform IS DISTINCT FROM pc.acq_platform THEN hp.platform END AS host_platform,
           CASE WHEN pc.acq_status = 'ok' THEN NULL
                WHEN pc.acq_status = 'scoped' AND s1.source_id IS NOT NULL THEN NULL
                ELSE pc.acq_reason END AS acq1,
           (pc.acq_status = 'scoped' AND s1.source_id IS NOT NULL) AS scoped1,
           h2.acq_status AS h_status, h2.acq_reason AS h_reason, h2.acq_check AS h_check,
           s2.source_id IS NOT NULL AS h_scoped
    FROM src
    JOIN _pol_pc pc ON pc.platform IS NOT DISTINCT FROM src.platform
                   AND pc.content_license IS NOT DISTINCT FROM src.content_license
    LEFT JOIN mem ON mem.source_id = src.source_id
    LEFT JOIN hp ON hp.source_id = src.source_id
    LEFT JOIN scoped s1 ON s1.source_id = src.source_id AND s1.platform = pc.acq_platform
    LEFT JOIN _pol_hosts_p h2 ON h2.platform = hp.platform AND hp.platform IS DISTINCT FROM pc.acq_platform
    LEFT JOIN scoped s2 ON s2.source_id = src.source_id AND s2.platform = hp.platform
),
k AS (
    SELECT *,
           CASE WHEN host_platform IS NULL OR h_status = 'ok' THEN NULL
                WHEN h_status = 'scoped' AND h_scoped THEN NULL
                ELSE h_reason END AS acq2,
           list_sort(list_distinct(list_concat(pc_deny, coalesce(ds_deny, []), coalesce(eval_reasons, [])))) AS use_deny,
           list_sort(list_distinct(list_concat(pc_review, coalesce(ds_review, [])))) AS review_reasons
    FROM j
),
r AS (
    SELECT *,
           list_sort(list_distinct(list_filter([acq1, acq2], lambda x: x IS NOT NULL))) AS acq_reasons,
           greatest(pc_rank, coalesce(ds_rank, 0)) AS rank
    FROM k
)
SELECT source_id,
       ? AS purpose,
       ? AS policy_hash,
       CASE WHEN len(use_deny) > 0 OR len(acq_reasons) > 0 THEN 'deny'
            WHEN len(review_reasons) > 0 THEN 'review' ELSE 'allow' END AS decision,
       len(use_deny) = 0 AND len(review_reasons) = 0 AS use_ok,
       len(acq_reasons) = 0 AS acquire_ok,
       _pol_classes[rank + 1] AS effective_class,
       pc_attr OR coalesce(ds_attr, false) AS attribution,
       pc_sa OR coalesce(ds_sa, false) AS share_alike,
       list_sort(list_distinct(list_concat(use_deny, acq_reasons, review_reasons))) AS reasons,
       json_object(
           'content', content::JSON,
           'annotations', coalesce(ds_lineage, []::JSON[]),
           'evaluation_sets', coalesce(eval_hits, []),
           'acquisition', json_object(
               'host', host,
               'checks', CASE WHEN host_platform IS NOT NULL THEN [acq_check::JSON, h_check::JSON] ELSE [acq_check::JSON] END,
               'scoped_permission', scoped1 OR (host_platform IS NOT NULL AND h_status = 'scoped' AND h_scoped),
               'ok', len(acq_reasons) = 0
           )
       ) AS lineage,
       ?::TIMESTAMP AS decided_at
FROM r
"""


def evaluate(
    catalog,
    purpose: str,
    *,
    settings: Any = None,
    source_ids: list[str] | None = None,
    evaluation_datasets: list[str] | None = None,
) -> dict[str, Any]:
    """Decide every source (or ``source_ids``) for ``purpose`` and store the decisions.

    Decisions for the purpose are replaced wholesale in one write transaction. ``evaluation_datasets``
    (``"dataset"`` or ``"dataset:split"``) default to ``settings.build.evaluation_manifests``. Returns a
    summary: counts by decision, by reason and by effective class.
    """
    t0 = time.monotonic()
    ctx = _context(settings, purpose, evaluation_datasets)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with catalog.write() as con:
        mem_name = "memberships"
        if not _has_table(con, "memberships"):
            con.register("_pol_memberships", _EMPTY_MEMBERSHIPS)
            mem_name = "_pol_memberships"
        subset_join = ""
        if source_ids is not None:
            con.register(
                "_pol_subset", pa.table({"source_id": pa.array(sorted(set(source_ids)), pa.string())})
            )
            subset_join = "JOIN _pol_subset sub ON sub.source_id = s.source_id"
        pairs = con.execute(
            f"SELECT DISTINCT s.platform, s.content_license FROM sources s {subset_join}"
        ).fetchall()
        names = _membership_datasets(con, mem_name)
        scoped_src, scoped_ds = _scoped_tables(ctx)
        hosts = _host_table(ctx)
        tables = {
            "_pol_ds": _ds_table(ctx, names),
            "_pol_pc": _pc_table(ctx, [(p, c) for p, c in pairs]),
            "_pol_eval": _eval_table(ctx),
            "_pol_hosts": hosts,
            "_pol_hosts_p": hosts.group_by(["platform", "acq_status", "acq_reason", "acq_check"]).aggregate(
                []
            ),
            "_pol_perm_src": scoped_src,
            "_pol_perm_ds": scoped_ds,
        }
        for name, tbl in tables.items():
            con.register(name, tbl)
        try:
            if source_ids is None:
                con.execute("DELETE FROM policy_decisions WHERE purpose = ?", [purpose])
            else:
                con.execute(
                    "DELETE FROM policy_decisions WHERE purpose = ? AND source_id IN (SELECT source_id FROM _pol_subset)",
                    [purpose],
                )
            sql = _DECIDE_SQL.format(host_re=_HOST_RE, subset_join=subset_join, memberships=mem_name)
            sql = sql.replace("_pol_classes", "[" + ", ".join(f"'{c}'" for c in USE_CLASSES) + "]")
            con.execute(
                "INSERT INTO policy_decisions BY NAME " + sql,
                [purpose, ctx.policy_hash, now],
            )
            summary = _summary(con, purpose, subset_join)
            summary.update(
                {
                    "purpose": purpose,
                    "policy_hash": ctx.policy_hash,
                    "profile": ctx.profile.to_dict(),
                    "evaluation_datasets": ctx.evaluation_names(),
                    "scope": "all" if source_ids is None else "subset",
                }
            )
            con.execute(
                "INSERT OR REPLACE INTO policy_evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    purpose,
                    ctx.policy_hash,
                    json.dumps(ctx.profile.to_dict()),
                    ctx.evaluation_names(),
                    summary["scope"],
                    summary["n_sources"],
                    json.dumps({k: summary[k] for k in ("decisions", "reasons", "effective_classes")}),
                    now,
                ],
            )
        finally:
            for name in [*tables, "_pol_subset", "_pol_memberships"]:
                try:
                    con.unregister(name)
                except Exception:  # noqa: BLE001 - not registered in this run
                    pass
    summary["seconds"] = round(time.monotonic() - t0, 3)
    log.info("policy %s: %s", purpose, summary["decisions"])
    return summary


def _summary(con, purpose: str, subset_join: str) -> dict[str, Any]:
    where = "WHERE d.purpose = ?"
    join = subset_join.replace("s.source_id", "d.source_id")
    base = f"FROM policy_decisions d {join} {where}"
    decisions = {k: 0 for k in DECISIONS}
    for dec, n in con.execute(f"SELECT decision, count(*) {base} GROUP BY decision", [purpose]).fetchall():
        decisions[dec] = n
    reasons = dict(
        con.execute(
            f"SELECT r, count(*) AS n FROM (SELECT unnest(d.reasons) AS r {base}) GROUP BY r ORDER BY n DESC, r",
            [purpose],
        ).fetchall()
    )
    classes = dict(
        con.execute(
            f"SELECT effective_class, count(*) {base} GROUP BY effective_class ORDER BY effective_class",
            [purpose],
        ).fetchall()
    )
    return {
        "n_sources": sum(decisions.values()),
        "decisions": decisions,
        "reasons": reasons,
        "effective_classes": {c: classes.get(c, 0) for c in USE_CLASSES if classes.get(c)},
    }


# ---------------------------------------------------------------------------------------------------------
# Reading stored decisions
# ---------------------------------------------------------------------------------------------------------


def evaluation_info(catalog, purpose: str) -> dict[str, Any] | None:
    rows = catalog.query("SELECT * FROM policy_evaluations WHERE purpose = ?", [purpose])
    if not rows:
        return None
    row = rows[0]
    for k in ("profile", "counts"):
        if isinstance(row.get(k), str):
            row[k] = json.loads(row[k])
    return row


def allowed_source_ids(catalog, purpose: str, *, settings: Any = None) -> set[str]:
    """Source ids the stored decisions allow for ``purpose``.

    Raises :class:`PolicyError` when the purpose was never evaluated. With ``settings``, also when the
    stored decisions were made under a different policy, registry or permissions file, or without an
    evaluation set that ``settings.build.evaluation_manifests`` names.
    """
    info = evaluation_info(catalog, purpose)
    if info is None:
        raise PolicyError(
            f"purpose {purpose!r} was never evaluated in this catalog",
            item=purpose,
            fix=f"run `clipfactory policy check --purpose {purpose}`",
        )
    if settings is not None:
        current = policy_hash(load_policy(settings), load_permissions(settings), purpose)
        stale = catalog.scalar(
            "SELECT count(*) FROM policy_decisions WHERE purpose = ? AND policy_hash <> ?", [purpose, current]
        )
        if stale:
            raise PolicyError(
                f"{stale} stored decisions for {purpose!r} were made under a different policy, registry or permissions file",
                item=purpose,
                fix=f"run `clipfactory policy check --purpose {purpose}` again",
            )
        want = set(_parse_eval(list(settings.build.evaluation_manifests or [])))
        have = set(_parse_eval(list(info.get("evaluation_datasets") or [])))
        missing = [
            d if s is None else f"{d}:{s}" for d, s in want if (d, s) not in have and (d, None) not in have
        ]
        if missing:
            raise PolicyError(
                f"decisions for {purpose!r} were made without decontaminating {', '.join(sorted(missing))}",
                item=purpose,
                fix=f"run `clipfactory policy check --purpose {purpose}` with the build's evaluation sets",
            )
    rows = catalog.query(
        "SELECT source_id FROM policy_decisions WHERE purpose = ? AND decision = 'allow'", [purpose]
    )
    return {r["source_id"] for r in rows}


def stored_decisions(catalog, source_id: str) -> list[dict[str, Any]]:
    """Every stored decision for one source, one per purpose."""
    rows = catalog.query("SELECT * FROM policy_decisions WHERE source_id = ? ORDER BY purpose", [source_id])
    for r in rows:
        if isinstance(r.get("lineage"), str):
            r["lineage"] = json.loads(r["lineage"])
        r["reasons"] = list(r.get("reasons") or [])
    return rows


__all__ = [
    "DECISIONS",
    "Decision",
    "acquisition_check",
    "allowed_source_ids",
    "decide_source",
    "evaluate",
    "evaluation_info",
    "policy_hash",
    "stored_decisions",
]
