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

The gate is vectorised: SQL reduces each source to the few things its decision depends on (its
*signature*), the rule runs in Python once per distinct signature, and one join writes every decision.
:func:`decide_source` runs the same rule for one source; a test proves both agree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..catalog.db import has_table
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
    """The permission-requiring platform whose host list covers ``host`` (the most specific host wins)."""
    if not host:
        return None
    best: tuple[int, str] | None = None
    for h, k in ctx.host_platforms():
        if (host == h or host.endswith("." + h)) and (best is None or len(h) > best[0]):
            best = (len(h), k)
    return best[1] if best else None


def _finish(
    ctx: _Context,
    source_id: str,
    pc: _ContentVerdict,
    dvs: list[_DatasetVerdict],
    eval_hits: list[str],
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
    if host_platform is not None:
        checks.append(ctx.acquisition(host_platform).check)
    lineage = {
        "content": pc.content,
        "annotations": [v.lineage for v in sorted(dvs, key=lambda v: v.dataset)],
        "evaluation_sets": sorted(eval_hits),
        "acquisition": {"checks": checks, "scoped_permission": scoped_hit, "ok": not acq},
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


def _decide_parts(
    ctx: _Context,
    source_id: str,
    platform: str | None,
    content_license: str | None,
    mems: list[tuple[str, str | None]],
    host_platform: str | None,
    scoped_platforms: set[str],
    keys: dict[str, str],
) -> Decision:
    """The whole rule, on what a source's decision depends on. Both paths end here: :func:`decide_source`
    for one source, and :func:`evaluate` once per distinct combination of these arguments."""
    datasets = sorted({d for d, _ in mems})
    dvs = [ctx.dataset(d, keys.get(d)) for d in datasets]
    eval_hits = sorted({d for d, s in mems if ctx.is_eval(d, s, keys.get(d))})
    pc = ctx.content(platform, content_license)
    hp = host_platform if host_platform != pc.acq.platform else None
    acq_reasons: list[str] = []
    scoped_hit = False
    for a in [pc.acq] + ([ctx.acquisition(hp)] if hp is not None else []):
        if a.status == "ok":
            continue
        if a.status == "scoped" and a.platform in scoped_platforms:
            scoped_hit = True
            continue
        acq_reasons.append(a.reason)
    return _finish(ctx, source_id, pc, dvs, eval_hits, hp, scoped_hit, acq_reasons)


def _decide(
    ctx: _Context, source: SourceRecord, memberships: list[str], registry_keys: dict[str, str] | None = None
) -> Decision:
    keys = registry_keys or {}
    mems = _parse_eval(memberships)  # the same "dataset[:split]" spelling
    names = {d for d, _ in mems} | {keys.get(d, d) for d, _ in mems}
    scoped = {
        x.platform for x in ctx.permissions.items if ctx.scoped_covers(x.platform, source.source_id, names)
    }
    return _decide_parts(
        ctx,
        source.source_id,
        source.platform,
        source.content_license,
        mems,
        _host_platform(ctx, _host(source.url)),
        scoped,
        keys,
    )


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
    if has_table(con, "datasets"):
        sql = (
            f"SELECT DISTINCT m.dataset, d.registry_key FROM (SELECT DISTINCT dataset FROM {mem_name}) m "
            "LEFT JOIN datasets d ON d.dataset = m.dataset WHERE m.dataset IS NOT NULL"
        )
    else:
        sql = f"SELECT DISTINCT dataset, NULL FROM {mem_name} WHERE dataset IS NOT NULL"
    return [(r[0], r[1]) for r in con.execute(sql).fetchall()]


def registry_keys(con) -> dict[str, str]:
    """``datasets.registry_key`` by dataset name, where the ingest recorded one."""
    if not has_table(con, "datasets"):
        return {}
    rows = con.execute("SELECT dataset, registry_key FROM datasets WHERE registry_key IS NOT NULL").fetchall()
    return {d: k for d, k in rows}


def _scoped_tables(ctx: _Context, names: list[tuple[str, str | None]]) -> tuple[pa.Table, pa.Table]:
    """Active scoped permissions as (platform, source_id) and (platform, membership dataset) rows."""
    src: list[tuple[str, str]] = []
    ds: set[tuple[str, str]] = set()
    for x in ctx.permissions.items:
        if x.expired() or not x.covers_purpose(ctx.purpose):
            continue
        if x.scope == "sources":
            src += [(x.platform, s) for s in x.source_ids]
        elif x.scope == "datasets":
            for d in x.datasets:
                ds.add((x.platform, d))
                ds.update((x.platform, n) for n, key in names if key == d)
    return (
        pa.table(
            {
                "platform": pa.array([p for p, _ in src], pa.string()),
                "source_id": pa.array([s for _, s in src], pa.string()),
            }
        ),
        pa.table(
            {
                "platform": pa.array([p for p, _ in sorted(ds)], pa.string()),
                "dataset": pa.array([d for _, d in sorted(ds)], pa.string()),
            }
        ),
    )


def _hosts_re(ctx: _Context) -> str:
    hosts = sorted({h for h, _ in ctx.host_platforms()}, key=len, reverse=True)
    if not hosts:
        return "(?!)"
    return r"(?:^|\.)(" + "|".join(re.escape(h) for h in hosts) + r")$"


# What a decision depends on, per source: its platform, content licence, the permission-requiring platform
# its URL host belongs to, its memberships ("dataset" or "dataset<US>split", sorted) and the platforms for
# which a scoped permission covers it. Sources with the same signature get the same decision.
_SIGNATURE_SQL = """
CREATE TEMP TABLE _pol_src AS
WITH src AS (
    SELECT s.source_id, s.platform, s.content_license,
           nullif(regexp_extract(lower(regexp_extract(coalesce(s.url, ''), '{host_re}', 1)), '{hosts_re}', 1), '')
               AS matched_host
    FROM sources s {subset_join}
),
mem AS (
    SELECT m.source_id,
           list_sort(list_distinct(list(
               CASE WHEN nullif(m.split, '') IS NULL THEN m.dataset ELSE m.dataset || chr(31) || m.split END
           ))) AS mems
    FROM {memberships} m JOIN src ON src.source_id = m.source_id
    WHERE m.dataset IS NOT NULL
    GROUP BY m.source_id
),
scoped AS (
    SELECT source_id, list_sort(list(DISTINCT platform)) AS platforms
    FROM (
        SELECT p.source_id, p.platform FROM _pol_perm_src p JOIN src ON src.source_id = p.source_id
        UNION
        SELECT m.source_id, p.platform
        FROM {memberships} m JOIN src ON src.source_id = m.source_id JOIN _pol_perm_ds p ON p.dataset = m.dataset
    )
    GROUP BY source_id
),
j AS (
    SELECT src.source_id, src.platform, src.content_license, h.platform AS host_platform,
           coalesce(mem.mems, []::VARCHAR[]) AS mems, coalesce(scoped.platforms, []::VARCHAR[]) AS scoped
    FROM src
    LEFT JOIN _pol_hosts h ON h.host = src.matched_host
    LEFT JOIN mem ON mem.source_id = src.source_id
    LEFT JOIN scoped ON scoped.source_id = src.source_id
)
SELECT *,
       md5(concat_ws(chr(30), coalesce(platform, chr(1)), coalesce(content_license, chr(1)),
                     coalesce(host_platform, chr(1)), array_to_string(mems, chr(29)),
                     array_to_string(scoped, chr(29)))) AS sig
FROM j
"""


def _signature_decisions(ctx: _Context, rows: list[tuple], keys: dict[str, str]) -> pa.Table:
    out: dict[str, list] = {
        k: []
        for k in (
            "sig",
            "decision",
            "use_ok",
            "acquire_ok",
            "effective_class",
            "attribution",
            "share_alike",
            "reasons",
            "lineage",
        )
    }
    for sig, platform, content_license, host_platform, mems, scoped in rows:
        parsed = [(m.partition("\x1f")[0], m.partition("\x1f")[2] or None) for m in mems or []]
        d = _decide_parts(ctx, "", platform, content_license, parsed, host_platform, set(scoped or []), keys)
        out["sig"].append(sig)
        out["decision"].append(d.decision)
        out["use_ok"].append(d.use_ok)
        out["acquire_ok"].append(d.acquire_ok)
        out["effective_class"].append(d.effective_class)
        out["attribution"].append(d.attribution)
        out["share_alike"].append(d.share_alike)
        out["reasons"].append(list(d.reasons))
        out["lineage"].append(json.dumps(d.lineage))
    return pa.table(
        {
            "sig": pa.array(out["sig"], pa.string()),
            "decision": pa.array(out["decision"], pa.string()),
            "use_ok": pa.array(out["use_ok"], pa.bool_()),
            "acquire_ok": pa.array(out["acquire_ok"], pa.bool_()),
            "effective_class": pa.array(out["effective_class"], pa.string()),
            "attribution": pa.array(out["attribution"], pa.bool_()),
            "share_alike": pa.array(out["share_alike"], pa.bool_()),
            "reasons": pa.array(out["reasons"], pa.list_(pa.string())),
            "lineage": pa.array(out["lineage"], pa.string()),
        }
    )


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

    Vectorised: SQL reduces each source to its *signature* (platform, content licence, the platform its URL
    host belongs to, memberships with splits, scoped permissions); the rule runs in Python once per
    distinct signature (there are few); one join writes every decision.
    """
    t0 = time.monotonic()
    ctx = _context(settings, purpose, evaluation_datasets)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    registered: list[str] = []
    with catalog.write() as con:

        def register(name: str, tbl: pa.Table) -> None:
            con.register(name, tbl)
            registered.append(name)

        mem_name = "memberships"
        if not has_table(con, "memberships"):
            register("_pol_memberships", _EMPTY_MEMBERSHIPS)
            mem_name = "_pol_memberships"
        subset_join = ""
        if source_ids is not None:
            register("_pol_subset", pa.table({"source_id": pa.array(sorted(set(source_ids)), pa.string())}))
            subset_join = "JOIN _pol_subset sub ON sub.source_id = s.source_id"
        names = _membership_datasets(con, mem_name)
        keys = {n: k for n, k in names if k}
        scoped_src, scoped_ds = _scoped_tables(ctx, names)
        register("_pol_perm_src", scoped_src)
        register("_pol_perm_ds", scoped_ds)
        hosts = ctx.host_platforms()
        register(
            "_pol_hosts",
            pa.table(
                {
                    "host": pa.array([h for h, _ in hosts], pa.string()),
                    "platform": pa.array([k for _, k in hosts], pa.string()),
                }
            ),
        )
        try:
            con.execute("DROP TABLE IF EXISTS _pol_src")
            con.execute("DROP TABLE IF EXISTS _pol_dec")
            con.execute(
                _SIGNATURE_SQL.format(
                    host_re=_HOST_RE,
                    hosts_re=_hosts_re(ctx).replace("'", "''"),
                    subset_join=subset_join,
                    memberships=mem_name,
                )
            )
            sigs = con.execute(
                "SELECT sig, any_value(platform), any_value(content_license), any_value(host_platform), "
                "any_value(mems), any_value(scoped) FROM _pol_src GROUP BY sig"
            ).fetchall()
            register("_pol_dec_arrow", _signature_decisions(ctx, sigs, keys))
            con.execute(
                "CREATE TEMP TABLE _pol_dec AS SELECT * REPLACE (lineage::JSON AS lineage) FROM _pol_dec_arrow"
            )
            if source_ids is None:
                con.execute("DELETE FROM policy_decisions WHERE purpose = ?", [purpose])
            else:
                con.execute(
                    "DELETE FROM policy_decisions WHERE purpose = ? "
                    "AND source_id IN (SELECT source_id FROM _pol_subset)",
                    [purpose],
                )
            con.execute(
                """
                INSERT INTO policy_decisions BY NAME
                SELECT s.source_id, ? AS purpose, ? AS policy_hash, d.decision, d.use_ok, d.acquire_ok,
                       d.effective_class, d.attribution, d.share_alike, d.reasons, d.lineage,
                       ?::TIMESTAMP AS decided_at
                FROM _pol_src s JOIN _pol_dec d ON d.sig = s.sig
                """,
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
                    "signatures": len(sigs),
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
            con.execute("DROP TABLE IF EXISTS _pol_src")
            con.execute("DROP TABLE IF EXISTS _pol_dec")
        finally:
            for name in registered:
                with contextlib.suppress(Exception):
                    con.unregister(name)
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


def allowed_source_ids(
    catalog, purpose: str, *, settings: Any = None, source_ids: list[str] | None = None
) -> set[str]:
    """Source ids the stored decisions allow for ``purpose`` (among ``source_ids``, when given).

    Raises :class:`PolicyError` when the purpose was never evaluated. With ``settings``, also when the
    stored decisions (of ``source_ids``, when given) were made under a different policy, registry or
    permissions file, or without an evaluation set that ``settings.build.evaluation_manifests`` names.
    """
    return check_decisions(catalog, purpose, settings=settings, source_ids=source_ids, answer=True)


def check_decisions(
    catalog, purpose: str, *, settings: Any = None, source_ids: list[str] | None = None, answer: bool = False
) -> set[str] | None:
    """The checks of :func:`allowed_source_ids` without its answer (``answer=False``): for callers that
    read the allowed sources in SQL themselves (``policy_decisions``, ``decision = 'allow'``)."""
    info = evaluation_info(catalog, purpose)
    if info is None:
        raise PolicyError(
            f"purpose {purpose!r} was never evaluated in this catalog",
            item=purpose,
            fix=f"run `clipfactory policy check --purpose {purpose}`",
        )
    with catalog.read() as con:
        subset = ""
        if source_ids is not None:
            con.register("_pol_ask", pa.table({"source_id": pa.array(sorted(set(source_ids)), pa.string())}))
            subset = "AND source_id IN (SELECT source_id FROM _pol_ask)"
        try:
            if settings is not None:
                current = policy_hash(load_policy(settings), load_permissions(settings), purpose)
                stale = con.execute(
                    f"SELECT count(*) FROM policy_decisions WHERE purpose = ? AND policy_hash <> ? {subset}",
                    [purpose, current],
                ).fetchall()[0][0]
                if stale:
                    raise PolicyError(
                        f"{stale} stored decisions for {purpose!r} were made under a different policy, "
                        "registry or permissions file",
                        item=purpose,
                        fix=f"give this command the --policy, --registry and --permissions files that "
                        f"`clipfactory policy check` was given (or set them in clipfactory.toml), or run "
                        f"`clipfactory policy check --purpose {purpose}` again with these",
                    )
                want = set(_parse_eval(list(settings.build.evaluation_manifests or [])))
                have = set(_parse_eval(list(info.get("evaluation_datasets") or [])))
                missing = [
                    d if s is None else f"{d}:{s}"
                    for d, s in want
                    if (d, s) not in have and (d, None) not in have
                ]
                if missing:
                    raise PolicyError(
                        f"decisions for {purpose!r} were made without decontaminating {', '.join(sorted(missing))}",
                        item=purpose,
                        fix=f"run `clipfactory policy check --purpose {purpose}` with the build's evaluation sets",
                    )
            if not answer:
                return None
            rows = con.execute(
                f"SELECT source_id FROM policy_decisions WHERE purpose = ? AND decision = 'allow' {subset}",
                [purpose],
            ).fetchall()
        finally:
            if source_ids is not None:
                con.unregister("_pol_ask")
    return {r[0] for r in rows}


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
    "check_decisions",
    "decide_source",
    "evaluate",
    "evaluation_info",
    "policy_hash",
    "stored_decisions",
]
