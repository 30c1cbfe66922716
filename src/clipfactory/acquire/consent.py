"""Consent and opt-out signals: pure parsers and one evaluator.

Every parser takes bytes or strings and returns plain values; nothing here does I/O except
:func:`read_c2pa_manifest`, which reads a file through the optional ``c2pa`` extra. The HTTP fetcher calls
the evaluator at three points:

1. **before any request** for the resource: platform terms (done by the fetcher through the policy gate),
   robots.txt for our agent token, ``Content-Usage`` lines in robots.txt, ``/.well-known/tdmrep.json``, and,
   with an API key, the Spawning Do-Not-Train registry (asked by :mod:`clipfactory.acquire.spawning`);
2. **on the response headers**, before a body byte is kept: ``X-Robots-Tag``, ``tdm-reservation``/``tdm-policy``
   and ``Content-Usage``;
3. **on the downloaded file**: C2PA/CAWG training-mining assertions (and ``<meta name="tdm-reservation">`` when
   a server answers with HTML).

Each check is a :class:`Check` with a verdict of ``allow`` (a document exists and permits us), ``deny``
(with the namespaced drop reason), ``unstated`` (no statement), ``not_checked`` (with why) or ``error`` (a
malformed document, recorded and treated as the spec says). Checks keep their raw evidence.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urlsplit

ALLOW = "allow"
DENY = "deny"
UNSTATED = "unstated"
NOT_CHECKED = "not_checked"
ERROR = "error"

#: Drop reasons of consent denials.
REASON_ROBOTS = "consent.robots_disallow"
REASON_X_ROBOTS_NOAI = "consent.x_robots_noai"
REASON_X_ROBOTS_NOINDEX = "consent.x_robots_noindex"
REASON_TDM = "consent.tdm_reserved"
REASON_CONTENT_USAGE = "consent.content_usage_train_ai_n"
REASON_C2PA = "consent.c2pa_training_not_allowed"
REASON_SPAWNING = "consent.spawning_opt_out"

#: The Spawning Do-Not-Train registry's bulk query: ``POST`` one URL per line, ``Authorization: API <key>``.
SPAWNING_API_URL = "https://opts-api.spawningaiapi.com/api/v2/query/urls"

DEFAULT_BLOCKED_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")
_NOAI_DIRECTIVES = {"noai", "noimageai"}
_MAX_EVIDENCE_CHARS = 4000


@dataclass(frozen=True)
class Check:
    """One signal checked for one URL."""

    signal: str  # robots.txt | x-robots-tag | tdmrep | content-usage | c2pa | spawning | platform
    verdict: str  # allow | deny | unstated | not_checked | error
    value: str | None = None  # the raw value the verdict rests on
    reason: str | None = None  # the drop reason when verdict == deny
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "verdict": self.verdict,
            "value": _clip(self.value),
            "reason": self.reason,
            "evidence": self.evidence,
        }

    @property
    def denied(self) -> bool:
        return self.verdict == DENY


def first_denial(checks: Iterable[Check]) -> Check | None:
    for c in checks:
        if c.verdict == DENY:
            return c
    return None


def _clip(text: str | None, limit: int = _MAX_EVIDENCE_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"…[{len(text) - limit} more chars]"


# -- robots-style path patterns (robots.txt, tdmrep.json locations, Content-Usage paths) ---------------
_PATTERN_CACHE: dict[str, re.Pattern[str]] = {}


def path_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a robots.txt path pattern: ``*`` matches any run of characters, a final ``$`` anchors the end,
    and everything else matches literally from the start of the path (RFC 9309 §2.2.3)."""
    rx = _PATTERN_CACHE.get(pattern)
    if rx is None:
        anchored = pattern.endswith("$")
        body = pattern[:-1] if anchored else pattern
        body = unquote(body)
        rx = re.compile("^" + ".*".join(re.escape(p) for p in body.split("*")) + ("$" if anchored else ""))
        _PATTERN_CACHE[pattern] = rx
    return rx


def path_matches(pattern: str, path: str) -> bool:
    if not pattern:
        return False
    return path_pattern(pattern).match(unquote(path)) is not None


def path_of(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path or "/"
    return path + ("?" + parts.query if parts.query else "")


# -- X-Robots-Tag ----------------------------------------------------------------------------------------
# Directives whose own syntax contains a colon, so "name: value" is not an agent prefix.
_VALUED_DIRECTIVES = {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}


def parse_x_robots_tag(values: Iterable[str]) -> list[tuple[str | None, str]]:
    """Split ``X-Robots-Tag`` header values into ``(agent or None, directive)`` pairs, lower-cased.

    Handles several headers, comma lists and the agent-scoped form ``<agent>: noai, noindex``. An agent prefix
    applies to the directives that follow it in the same header value.
    """
    out: list[tuple[str | None, str]] = []
    for value in values:
        agent: str | None = None
        for raw in value.split(","):
            part = raw.strip()
            if not part:
                continue
            if ":" in part:
                head, _, tail = part.partition(":")
                head_l = head.strip().lower()
                if head_l not in _VALUED_DIRECTIVES and " " not in head.strip():
                    agent = head_l
                    part = tail.strip()
                    if not part:
                        continue
            out.append((agent, part.lower()))
    return out


def check_x_robots_tag(
    values: Sequence[str], agent_token: str, blocked: Iterable[str] = DEFAULT_BLOCKED_DIRECTIVES
) -> Check:
    """Deny when a blocked directive applies to everyone or to our agent token."""
    if not values:
        return Check("x-robots-tag", UNSTATED)
    blocked_set = {b.lower() for b in blocked}
    token = agent_token.lower()
    pairs = parse_x_robots_tag(values)
    raw = " | ".join(values)
    for agent, directive in pairs:
        if agent is not None and agent != token:
            continue
        # "none" is shorthand for "noindex, nofollow".
        effective = ["noindex", "nofollow"] if directive == "none" else [directive]
        for d in effective:
            if d in blocked_set:
                reason = REASON_X_ROBOTS_NOAI if d in _NOAI_DIRECTIVES else REASON_X_ROBOTS_NOINDEX
                return Check(
                    "x-robots-tag",
                    DENY,
                    raw,
                    reason,
                    {"directive": d, "agent": agent or "*", "headers": list(values)},
                )
    return Check("x-robots-tag", ALLOW, raw, evidence={"directives": [f"{a or '*'}:{d}" for a, d in pairs]})


# -- Content-Usage (IETF AI preferences) -----------------------------------------------------------------
#: Vocabulary hierarchy: a more specific category inherits from its parent when it is not stated.
_USAGE_PARENT = {"train-genai": "train-ai", "train-ai": "bots", "search": "bots", "bots": None}


def parse_content_usage(value: str) -> dict[str, str]:
    """Parse a ``Content-Usage`` structured-field dictionary such as ``train-ai=n, search=y``.

    Values are the tokens ``y``/``n`` (anything else is kept as given); parameters after ``;`` are ignored.
    A bare key (structured-field boolean true) is recorded as ``y``.
    """
    prefs: dict[str, str] = {}
    for member in value.split(","):
        member = member.split(";", 1)[0].strip()
        if not member:
            continue
        if "=" in member:
            key, _, val = member.partition("=")
            val = val.strip().strip('"').lower()
        else:
            key, val = member, "y"
        key = key.strip().lower()
        if key:
            prefs[key] = "y" if val in ("y", "?1") else "n" if val in ("n", "?0") else val
    return prefs


def usage_preference(prefs: Mapping[str, str], category: str) -> tuple[str | None, str | None]:
    """The effective ``y``/``n`` for ``category`` with the vocabulary's inheritance; ``(value, key)``."""
    key: str | None = category
    while key is not None:
        v = prefs.get(key)
        if v in ("y", "n"):
            return v, key
        key = _USAGE_PARENT.get(key)
    return None, None


def check_content_usage(sources: Sequence[tuple[str, str]], category: str = "train-genai") -> Check:
    """Combine ``Content-Usage`` statements from several places: ``(where, raw value)``.

    Any statement that resolves to ``n`` for ``category`` denies (the most restrictive preference wins).
    """
    if not sources:
        return Check("content-usage", UNSTATED)
    stated: list[dict[str, Any]] = []
    denial = None
    for where, raw in sources:
        prefs = parse_content_usage(raw)
        value, key = usage_preference(prefs, category)
        stated.append({"where": where, "value": raw, "resolved": value, "key": key})
        if value == "n" and denial is None:
            denial = (where, raw, key)
    evidence = {"category": category, "statements": stated}
    if denial:
        return Check("content-usage", DENY, denial[1], REASON_CONTENT_USAGE, {**evidence, "where": denial[0]})
    if any(s["resolved"] == "y" for s in stated):
        return Check("content-usage", ALLOW, "; ".join(r for _, r in sources), evidence=evidence)
    return Check("content-usage", UNSTATED, "; ".join(r for _, r in sources), evidence=evidence)


# -- robots.txt (RFC 9309) -------------------------------------------------------------------------------
_KNOWN_ROBOTS_FIELDS = {
    "user-agent",
    "allow",
    "disallow",
    "crawl-delay",
    "sitemap",
    "request-rate",
    "visit-time",
    "host",
    "content-usage",
    "clean-param",
    "noindex",
}
_ROBOTS_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z_-]*)\s*:(.*)$")


@dataclass
class RobotsDoc:
    """A robots.txt as RFC 9309 tells a crawler to read it.

    ``state`` is ``ok`` (2xx, parsed), ``unavailable`` (4xx, or no robots.txt: everything allowed) or
    ``unreachable`` (5xx, 429 or a network error: everything disallowed until it can be read).
    """

    state: str
    status_code: int | None = None
    body: bytes = b""
    malformed_lines: int = 0
    malformed_sample: list[str] = field(default_factory=list)
    note: str | None = None
    _parser: Any = None
    _usage_groups: list[tuple[list[str], list[tuple[str, str]]]] = field(default_factory=list)
    _usage_global: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def from_response(
        cls, status_code: int | None, body: bytes, *, max_bytes: int = 512 * 1024, error: str | None = None
    ) -> RobotsDoc:
        if status_code is None or status_code == 429 or status_code >= 500:
            return cls("unreachable", status_code, note=error or f"HTTP {status_code}")
        if 400 <= status_code < 500:
            return cls(
                "unavailable", status_code, note=f"HTTP {status_code}: no restrictions (RFC 9309 §2.3.1.3)"
            )
        if not 200 <= status_code < 300:
            return cls("unreachable", status_code, note=f"unexpected HTTP {status_code}")
        return cls.parse(body[:max_bytes], status_code=status_code)

    @classmethod
    def parse(cls, body: bytes | str, *, status_code: int | None = 200) -> RobotsDoc:
        from protego import Protego

        raw = body.encode() if isinstance(body, str) else body
        text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
        doc = cls("ok", status_code, raw)
        try:
            doc._parser = Protego.parse(text)
        except Exception as exc:  # protego is lenient; anything it cannot read means no usable rules
            doc._parser = None
            doc.note = f"unparseable ({type(exc).__name__}); treated as no restrictions"
        doc._scan(text)
        if doc.malformed_lines and doc.note is None:
            doc.note = f"{doc.malformed_lines} malformed line(s) ignored (RFC 9309 §2.2)"
        return doc

    def _scan(self, text: str) -> None:
        """Find malformed lines and the Content-Usage rules of each group (protego ignores those)."""
        groups: list[tuple[list[str], list[tuple[str, str]]]] = []
        current: tuple[list[str], list[tuple[str, str]]] | None = None
        last_was_agent = False
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            m = _ROBOTS_LINE.match(line)
            if not m or m.group(1).lower() not in _KNOWN_ROBOTS_FIELDS:
                self.malformed_lines += 1
                if len(self.malformed_sample) < 5:
                    self.malformed_sample.append(line[:200])
                continue
            key, value = m.group(1).lower(), m.group(2).strip()
            if key == "user-agent":
                if current is None or not last_was_agent:
                    current = ([], [])
                    groups.append(current)
                current[0].append(value.lower())
                last_was_agent = True
                continue
            last_was_agent = False
            if key == "content-usage" and value:
                path, prefs = _split_usage_rule(value)
                (current[1] if current is not None else self._usage_global).append((path, prefs))
        self._usage_groups = groups

    # -- questions -------------------------------------------------------------------------------------
    def allows(self, url: str, agent_token: str) -> bool:
        if self.state == "unavailable":
            return True
        if self.state == "unreachable":
            return False
        if self._parser is None:
            return True
        return bool(self._parser.can_fetch(url, agent_token))

    def crawl_delay(self, agent_token: str) -> float | None:
        if self.state != "ok" or self._parser is None:
            return None
        delay = self._parser.crawl_delay(agent_token)
        rate = self._parser.request_rate(agent_token)
        if rate is not None and rate.requests:
            delay = max(delay or 0.0, rate.seconds / rate.requests)
        return float(delay) if delay else None

    def content_usage(self, url: str, agent_token: str) -> str | None:
        """The ``Content-Usage`` rule of the group for our token (else ``*``) with the longest matching path."""
        if self.state != "ok":
            return None
        token = agent_token.lower()
        rules = None
        for agents, group_rules in self._usage_groups:
            if token in agents:
                rules = (rules or []) + group_rules
        if rules is None:
            for agents, group_rules in self._usage_groups:
                if "*" in agents:
                    rules = (rules or []) + group_rules
        candidates = list(self._usage_global) + list(rules or [])
        path = path_of(url)
        best: tuple[int, str] | None = None
        for pattern, prefs in candidates:
            if pattern and not path_matches(pattern, path):
                continue
            length = len(pattern)
            if best is None or length > best[0]:
                best = (length, prefs)
        return best[1] if best else None

    def check(self, url: str, agent_token: str) -> Check:
        evidence: dict[str, Any] = {"state": self.state, "status_code": self.status_code}
        if self.note:
            evidence["note"] = self.note
        if self.malformed_lines:
            evidence["malformed_lines"] = self.malformed_lines
            evidence["malformed_sample"] = self.malformed_sample
        if self.allows(url, agent_token):
            verdict = ALLOW if self.state == "ok" else UNSTATED
            return Check("robots.txt", verdict, path_of(url), evidence=evidence)
        return Check("robots.txt", DENY, path_of(url), REASON_ROBOTS, {**evidence, "agent": agent_token})


def _split_usage_rule(value: str) -> tuple[str, str]:
    """``/path train-ai=n`` → ``("/path", "train-ai=n")``; a rule without a path applies everywhere."""
    value = value.strip()
    if value.startswith("/") or value.startswith("*"):
        path, _, prefs = value.partition(" ")
        return path.strip(), prefs.strip()
    return "", value


# -- W3C TDMRep ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TdmStatement:
    """One TDMRep statement: ``reservation`` 1 (rights reserved) or 0, and an optional policy URL."""

    reservation: int
    policy: str | None
    source: str  # tdmrep.json | header | meta | xmp
    location: str | None = None


@dataclass
class TdmRepDoc:
    """``/.well-known/tdmrep.json``: an ordered list of rules; the first rule whose location matches applies."""

    state: str  # ok | absent | invalid | unreachable
    status_code: int | None = None
    rules: list[dict[str, Any]] = field(default_factory=list)
    body: bytes = b""
    note: str | None = None

    @classmethod
    def from_response(cls, status_code: int | None, body: bytes, *, error: str | None = None) -> TdmRepDoc:
        if status_code is None or status_code == 429 or status_code >= 500:
            return cls("unreachable", status_code, note=error or f"HTTP {status_code}")
        if not 200 <= status_code < 300:
            return cls("absent", status_code, note=f"HTTP {status_code}")
        return cls.parse(body, status_code=status_code)

    @classmethod
    def parse(cls, body: bytes | str, *, status_code: int | None = 200) -> TdmRepDoc:
        raw = body.encode() if isinstance(body, str) else body
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return cls("invalid", status_code, body=raw, note=f"invalid JSON: {exc}; treated as no statement")
        if not isinstance(data, list):
            return cls("invalid", status_code, body=raw, note="not a JSON array; treated as no statement")
        rules, bad = [], 0
        for rule in data:
            if (
                isinstance(rule, dict)
                and isinstance(rule.get("location"), str)
                and rule.get("tdm-reservation") in (0, 1)
            ):
                rules.append(rule)
            else:
                bad += 1
        note = f"{bad} invalid rule(s) ignored" if bad else None
        return cls("ok", status_code, rules, raw, note)

    def lookup(self, url: str) -> TdmStatement | None:
        if self.state != "ok":
            return None
        path = path_of(url)
        for rule in self.rules:
            location = rule["location"]
            if path_matches(location if location.startswith(("/", "*")) else "/" + location, path):
                policy = rule.get("tdm-policy")
                return TdmStatement(
                    int(rule["tdm-reservation"]),
                    policy if isinstance(policy, str) else None,
                    "tdmrep.json",
                    location,
                )
        return None


def tdm_from_headers(reservation_values: Sequence[str], policy_values: Sequence[str]) -> TdmStatement | None:
    """The ``tdm-reservation``/``tdm-policy`` headers; a value other than 0 or 1 is no statement."""
    if not reservation_values:
        return None
    value = reservation_values[-1].strip()
    if value not in ("0", "1"):
        return None
    return TdmStatement(int(value), policy_values[-1].strip() if policy_values else None, "header")


class _MetaFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "meta":
            return
        a = {k.lower(): (v or "") for k, v in attrs}
        name = a.get("name", "").strip().lower()
        if name in ("tdm-reservation", "tdm-policy") and name not in self.meta:
            self.meta[name] = a.get("content", "").strip()


def parse_tdm_meta(html: str | bytes) -> TdmStatement | None:
    """``<meta name="tdm-reservation" content="1">`` (and ``tdm-policy``) in an HTML document."""
    if isinstance(html, bytes):
        html = html.decode("utf-8", errors="replace")
    finder = _MetaFinder()
    try:
        finder.feed(html)
        finder.close()
    except Exception:  # html.parser is lenient; a broken page is no statement
        return None
    value = finder.meta.get("tdm-reservation")
    if value not in ("0", "1"):
        return None
    return TdmStatement(int(value), finder.meta.get("tdm-policy") or None, "meta")


def check_tdm(*statements: TdmStatement | None) -> Check:
    """Resolve TDMRep statements by the spec's priority: tdmrep.json < HTTP header < metadata in the file.

    Pass them in that order; the most specific statement present wins (in both directions: a header
    ``tdm-reservation: 0`` lifts a reservation of the well-known file).
    """
    present = [s for s in statements if s is not None]
    if not present:
        return Check("tdmrep", UNSTATED)
    winner = present[-1]
    evidence = {
        "statements": [
            {"source": s.source, "reservation": s.reservation, "policy": s.policy, "location": s.location}
            for s in present
        ],
        "decided_by": winner.source,
    }
    if winner.policy:
        evidence["policy"] = winner.policy
    value = f"{winner.source}: tdm-reservation={winner.reservation}"
    if winner.reservation == 1:
        return Check("tdmrep", DENY, value, REASON_TDM, evidence)
    return Check("tdmrep", ALLOW, value, evidence=evidence)


# -- C2PA / CAWG training-mining ------------------------------------------------------------------------
TRAINING_MINING_LABELS = ("cawg.training-mining", "c2pa.training-mining")
#: Entries that concern training a model on the asset (inference is a different use).
TRAINING_ENTRIES = ("ai_generative_training", "ai_training", "data_mining")


def _base_label(label: str) -> str:
    # Labels may carry an instance suffix ("c2pa.training-mining__1") or a version (".v2").
    label = label.split("__", 1)[0]
    return re.sub(r"\.v\d+$", "", label)


def training_mining_assertions(manifest_store: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The training-mining assertions of the active manifest (or of every manifest when none is active)."""
    manifests = manifest_store.get("manifests")
    if isinstance(manifests, Mapping):
        active = manifest_store.get("active_manifest")
        chosen = [manifests[active]] if active in manifests else list(manifests.values())
    elif isinstance(manifests, list):
        chosen = manifests
    else:
        chosen = [manifest_store]
    found = []
    for m in chosen:
        for a in m.get("assertions", []) if isinstance(m, Mapping) else []:
            if isinstance(a, Mapping) and _base_label(str(a.get("label", ""))) in TRAINING_MINING_LABELS:
                found.append(dict(a))
    return found


def check_c2pa(manifest_store: Mapping[str, Any] | None) -> Check:
    """Deny when an AI-training or data-mining entry says ``notAllowed`` or ``constrained``."""
    if manifest_store is None:
        return Check("c2pa", UNSTATED, None, evidence={"manifest": False})
    assertions = training_mining_assertions(manifest_store)
    if not assertions:
        return Check("c2pa", UNSTATED, None, evidence={"manifest": True, "training_mining": False})
    decisions = []
    denial = None
    for a in assertions:
        entries = (a.get("data") or {}).get("entries") or {}
        for name, entry in entries.items() if isinstance(entries, Mapping) else []:
            short = str(name).split(".", 1)[-1]
            if short not in TRAINING_ENTRIES:
                continue
            use = str((entry or {}).get("use", "")) if isinstance(entry, Mapping) else ""
            decisions.append({"label": a.get("label"), "entry": name, "use": use})
            if use in ("notAllowed", "constrained") and denial is None:
                denial = f"{name}={use}"
    evidence = {"manifest": True, "assertions": assertions, "decisions": decisions}
    if denial:
        return Check("c2pa", DENY, denial, REASON_C2PA, evidence)
    return Check("c2pa", ALLOW if decisions else UNSTATED, None, evidence=evidence)


#: Sniffed container → the MIME type c2pa reads it as (containers c2pa cannot read are not listed).
C2PA_MIME = {"mp4": "video/mp4", "quicktime": "video/quicktime", "avi": "video/x-msvideo"}


#: The extended type of the top-level ``uuid`` box that holds a C2PA manifest store in ISO BMFF files (MP4,
#: MOV), per the C2PA specification's section on embedding manifests in BMFF.
C2PA_BMFF_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
_MAX_TOP_LEVEL_BOXES = 100_000


#: The extended type of the ``uuid`` box that holds an XMP packet in ISO BMFF files (XMP specification,
#: part 3); QuickTime files may carry it in ``moov/udta/XMP_`` instead.
XMP_BMFF_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
_MAX_XMP_BYTES = 4 * 1024 * 1024
_NO_BOX = object()


@dataclass
class BmffScan:
    """What a walk over an MP4/MOV file's box headers found.

    ``c2pa``: whether a top-level C2PA ``uuid`` box is present; ``None`` when the boxes cannot be walked to
    the exact end of the file (the caller then lets c2pa-python read it). ``xmp``: the XMP packet, if any.
    """

    c2pa: bool | None
    xmp: bytes | None = None


def _boxes(fh: Any, start: int, end: int) -> Iterable[tuple[bytes, int, int, bytes] | None]:
    """``(type, payload start, box end, first 16 payload bytes)`` of the boxes in ``[start, end)``; ``None``
    last when the structure breaks before ``end``."""
    pos = start
    for _ in range(_MAX_TOP_LEVEL_BOXES):
        if pos == end:
            return
        fh.seek(pos)
        head = fh.read(32)
        if len(head) < 8:
            break
        size, kind = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            if len(head) < 16:
                break
            size = struct.unpack(">Q", head[8:16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        yield kind, pos + header, pos + size, head[header : header + 16]
        pos += size
    yield None


def bmff_scan(path: str) -> BmffScan:
    """Walk an MP4/MOV file's top-level box headers (and ``moov/udta``) for C2PA and XMP, reading little."""
    with open(path, "rb") as fh:
        end = os.fstat(fh.fileno()).st_size
        found = BmffScan(c2pa=False)
        for box in _boxes(fh, 0, end):
            if box is None:
                found.c2pa = None if not found.c2pa else True
                break
            kind, body, box_end, first = box
            if kind == b"uuid" and first == C2PA_BMFF_UUID:
                found.c2pa = True
            elif kind == b"uuid" and first == XMP_BMFF_UUID and found.xmp is None:
                found.xmp = _read(fh, body + 16, box_end)
            elif kind == b"moov" and found.xmp is None:
                found.xmp = _udta_xmp(fh, body, box_end)
        return found


def _read(fh: Any, start: int, end: int) -> bytes | None:
    if end - start > _MAX_XMP_BYTES:
        return None
    fh.seek(start)
    return fh.read(end - start)


def _udta_xmp(fh: Any, start: int, end: int) -> bytes | None:
    for box in _boxes(fh, start, end):
        if box is None:
            return None
        if box[0] == b"udta":
            for inner in _boxes(fh, box[1], box[2]):
                if inner is None:
                    return None
                if inner[0] == b"XMP_":
                    return _read(fh, inner[1], inner[2])
    return None


def bmff_c2pa_box(path: str) -> bool | None:
    """Whether an MP4/MOV file has a top-level C2PA ``uuid`` box, reading only the box headers.

    ``False`` only when every top-level box was walked to the exact end of the file; ``None`` when the box
    structure cannot be walked (the caller then lets c2pa-python read the file). A file with no such box has
    no embedded manifest store, so c2pa-python need not open it.
    """
    return bmff_scan(path).c2pa


TDMREP_XMP_NS = "http://www.w3.org/ns/tdmrep/"


def parse_tdm_xmp(packet: bytes | None) -> TdmStatement | None:
    """``tdm:reservation`` (and ``tdm:policy``) in an XMP packet (namespace ``http://www.w3.org/ns/tdmrep/``),
    as an attribute of an ``rdf:Description`` or as a property element. Unparsable XMP is no statement."""
    if not packet:
        return None
    from defusedxml import ElementTree as DET  # untrusted XML: no entity expansion, no external references

    text = packet.strip(b"\x00 \t\r\n")
    start = text.find(b"<x:xmpmeta")
    if start < 0:
        start = text.find(b"<rdf:RDF")
    if start > 0:
        text = text[start:]
    stop = max(text.rfind(b"</x:xmpmeta>"), -1)
    if stop >= 0:
        text = text[: stop + len(b"</x:xmpmeta>")]
    try:
        root = DET.fromstring(text)
    except Exception:  # broken or hostile XML: no statement
        return None
    reservation = policy = None
    key_r, key_p = f"{{{TDMREP_XMP_NS}}}reservation", f"{{{TDMREP_XMP_NS}}}policy"
    for el in root.iter():
        if reservation is None:
            reservation = el.attrib.get(key_r) or (el.text if el.tag == key_r else None)
        if policy is None:
            policy = el.attrib.get(key_p) or (el.text if el.tag == key_p else None)
    value = (reservation or "").strip()
    if value not in ("0", "1"):
        return None
    return TdmStatement(int(value), (policy or "").strip() or None, "xmp")


def read_c2pa_manifest(path: str, mime: str | None = None) -> dict[str, Any] | None:
    """The C2PA manifest store embedded in a media file, as JSON, or ``None`` when there is none.

    ``mime`` names the format when the file name has no telling extension (downloads in progress do not).
    """
    from ..errors import require

    c2pa = require("c2pa", "c2pa", feature="reading C2PA manifests")
    with open(path, "rb") as fh:
        reader = c2pa.Reader.try_create(mime, fh) if mime else c2pa.Reader.try_create(str(path))
        if reader is None:
            return None
        try:
            return json.loads(reader.json())
        finally:
            close = getattr(reader, "close", None)
            if close:
                close()


# -- the evaluator ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConsentRules:
    """What the evaluator obeys; built from the ``acquire.http`` stage config."""

    agent_token: str = "clipfactory"
    blocked_directives: tuple[str, ...] = DEFAULT_BLOCKED_DIRECTIVES
    content_usage_category: str = "train-genai"


class ConsentEvaluator:
    """Runs the checks of each phase and returns them in a fixed order; the first denial decides."""

    def __init__(self, rules: ConsentRules | None = None):
        self.rules = rules or ConsentRules()

    def before_fetch(self, url: str, robots: RobotsDoc | None, tdmrep: TdmRepDoc | None) -> list[Check]:
        checks = []
        if robots is not None:
            checks.append(robots.check(url, self.rules.agent_token))
            usage = robots.content_usage(url, self.rules.agent_token)
            checks.append(
                check_content_usage(
                    [("robots.txt", usage)] if usage else [], self.rules.content_usage_category
                )
            )
        if tdmrep is not None:
            ev: dict[str, Any] = {"state": tdmrep.state}
            if tdmrep.note:
                ev["note"] = tdmrep.note
            statement = tdmrep.lookup(url)
            check = check_tdm(statement)
            checks.append(
                Check(check.signal, check.verdict, check.value, check.reason, {**check.evidence, **ev})
            )
        return checks

    def on_headers(
        self,
        url: str,
        headers: Any,
        tdm_file: TdmStatement | None,
    ) -> list[Check]:
        """``headers`` is anything with ``get_list(name)`` (httpx) or a mapping of lists."""
        get = _header_getter(headers)
        checks = [
            check_x_robots_tag(get("x-robots-tag"), self.rules.agent_token, self.rules.blocked_directives)
        ]
        checks.append(check_tdm(tdm_file, tdm_header(headers)))
        usage = [("header", v) for v in get("content-usage")]
        checks.append(check_content_usage(usage, self.rules.content_usage_category))
        return checks

    def on_html(self, head: bytes, tdm_file: TdmStatement | None, header: TdmStatement | None) -> Check:
        return check_tdm(tdm_file, header, parse_tdm_meta(head))

    def on_media_xmp(
        self, packet: bytes | None, tdm_file: TdmStatement | None, header: TdmStatement | None
    ) -> Check | None:
        """TDMRep in a downloaded file's XMP, which outranks the header and the well-known file; ``None``
        when the file states nothing."""
        statement = parse_tdm_xmp(packet)
        return check_tdm(tdm_file, header, statement) if statement is not None else None


def tdm_header(headers: Any) -> TdmStatement | None:
    """The TDMRep statement of a response's ``tdm-reservation``/``tdm-policy`` headers."""
    get = _header_getter(headers)
    return tdm_from_headers(get("tdm-reservation"), get("tdm-policy"))


def _header_getter(headers: Any):
    if hasattr(headers, "get_list"):
        return lambda name: list(headers.get_list(name))
    if isinstance(headers, Mapping):
        lowered = {k.lower(): v for k, v in headers.items()}

        def get(name: str) -> list[str]:
            v = lowered.get(name)
            if v is None:
                return []
            return list(v) if isinstance(v, list | tuple) else [v]

        return get
    raise TypeError(f"unsupported headers type {type(headers).__name__}")


__all__ = [
    "ALLOW",
    "DENY",
    "UNSTATED",
    "NOT_CHECKED",
    "ERROR",
    "Check",
    "ConsentEvaluator",
    "ConsentRules",
    "RobotsDoc",
    "TdmRepDoc",
    "TdmStatement",
    "check_c2pa",
    "check_content_usage",
    "check_tdm",
    "check_x_robots_tag",
    "first_denial",
    "parse_content_usage",
    "parse_tdm_meta",
    "parse_x_robots_tag",
    "read_c2pa_manifest",
    "tdm_from_headers",
    "tdm_header",
    "training_mining_assertions",
]
