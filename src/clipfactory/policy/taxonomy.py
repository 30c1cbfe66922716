"""Licence taxonomy: use classes, licence triples, SPDX expressions and the combine rule.

Use classes, from least to most restrictive (the Data Provenance Initiative's four)::

    commercial < unspecified < non-commercial < academic-only

Each licence maps to a triple (use class, attribution required, share-alike required). The table comes
from ``policy/default_policy.toml`` and the user's policy file; the Creative Commons family is classified
by rule (``CC-BY[-NC][-ND][-SA]-<version>``). A licence nobody classified is **academic-only** and is
flagged ``unknown``.

SPDX expressions are parsed with ``license-expression``:

* ``A AND B``: both apply, so the triples combine (most restrictive class; attribution and share-alike
  are required if either requires them).
* ``A OR B``: the licensee may choose, so the **least restrictive** option is taken (lowest class, then
  fewest obligations). This is the licensee's right under a disjunctive licence, not a loophole: the
  option chosen is recorded in the evidence.
* ``A WITH exception``: classified as ``A``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import PolicyError

USE_CLASSES: tuple[str, ...] = ("commercial", "unspecified", "non-commercial", "academic-only")
RANK: dict[str, int] = {c: i for i, c in enumerate(USE_CLASSES)}
UNKNOWN_CLASS = "academic-only"

#: SPDX words for "no licence information": treated as unknown.
NO_ASSERTION = {"noassertion", "none", "unknown", "licenseref-unknown"}

_CC = re.compile(
    r"^CC-BY(?P<nc>-NC)?(?P<nd>-ND)?(?P<sa>-SA)?-(?P<ver>\d\.\d)(?:-[A-Z]{2,3}|-IGO)?$", re.IGNORECASE
)


def rank(use_class: str) -> int:
    try:
        return RANK[use_class]
    except KeyError:
        raise PolicyError(
            f"unknown use class {use_class!r}", item=use_class, fix=f"use one of: {', '.join(USE_CLASSES)}"
        ) from None


def most_restrictive(classes: list[str]) -> str:
    return max(classes, key=rank) if classes else "commercial"


@dataclass(frozen=True)
class LicenseTerms:
    """The triple of one licence (or a combined expression), with where it came from."""

    license: str | None
    use_class: str
    attribution: bool = False
    share_alike: bool = False
    unknown: bool = False
    name: str | None = None
    rule: str | None = None  # how it was classified: table | cc-family | registry | unknown | and | or
    chosen: tuple[str, ...] = field(default=())  # for OR: the options taken

    @property
    def rank(self) -> int:
        return RANK[self.use_class]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["chosen"] = list(self.chosen)
        return {k: v for k, v in d.items() if v not in (None, [], ())}


def combine(terms: list[LicenseTerms], *, license: str | None = None) -> LicenseTerms:
    """All of ``terms`` apply: the most restrictive class wins; obligations are OR-ed."""
    if not terms:
        return LicenseTerms(license, "commercial", rule="none")
    worst = max(terms, key=lambda t: t.rank)
    return LicenseTerms(
        license=license,
        use_class=worst.use_class,
        attribution=any(t.attribution for t in terms),
        share_alike=any(t.share_alike for t in terms),
        unknown=any(t.unknown and t.rank == worst.rank for t in terms),
        rule="and",
        chosen=tuple(c for t in terms for c in (t.chosen or ((t.license,) if t.license else ()))),
    )


@functools.lru_cache(maxsize=1)
def _parser():
    """A parser that keeps every id as written (the SPDX-aware one rewrites some ids into aliases)."""
    from license_expression import Licensing

    return Licensing()


@functools.lru_cache(maxsize=1)
def _spdx():
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


@functools.lru_cache(maxsize=4096)
def spdx_key(key: str) -> str | None:
    """The SPDX id that ``key`` is an alias or a case variant of (``GPL-2.0+`` → ``GPL-2.0-or-later``)."""
    try:
        node = _spdx().parse(key, validate=False, strict=False)
    except Exception:  # noqa: BLE001 - not a recognisable id
        return None
    k = getattr(node, "key", None)
    return k if isinstance(k, str) and k != key else None


def parse_expression(expr: str):
    """Parse an SPDX expression; raise :class:`PolicyError` naming the expression if it is invalid."""
    from license_expression import ExpressionError, ExpressionParseError

    text = (expr or "").strip()
    if not text:
        raise PolicyError(
            "empty licence expression", item=repr(expr), fix="give an SPDX id such as CC-BY-4.0"
        )
    try:
        parsed = _parser().parse(text, validate=False, strict=False)
    except (ExpressionError, ExpressionParseError) as exc:
        raise PolicyError(
            f"invalid SPDX licence expression: {exc}",
            item=text,
            fix="write SPDX ids joined by AND / OR with balanced parentheses, e.g. 'CC-BY-4.0 OR MIT'",
        ) from None
    if parsed is None:
        raise PolicyError("empty licence expression", item=text, fix="give an SPDX id such as CC-BY-4.0")
    return parsed


class LicenseTable:
    """Licence id → triple, with the SPDX expression rules on top.

    Entries: ``{id: {"class": ..., "attribution": bool, "share_alike": bool, "name": str, "note": str}}``.
    Later layers override earlier ones (built-in policy < registry custom licences < user policy).
    """

    def __init__(self, entries: dict[str, dict[str, Any]] | None = None):
        self._entries: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, str] = {}
        for k, v in (entries or {}).items():
            self.set(k, v)

    def set(self, key: str, entry: dict[str, Any], *, source: str = "policy") -> None:
        unknown = set(entry) - {"class", "attribution", "share_alike", "name", "note"}
        if unknown:
            raise PolicyError(
                f"unknown field(s) {', '.join(sorted(unknown))} in licence entry",
                item=key,
                fix="a licence entry has class, attribution, share_alike, name, note",
            )
        if "class" not in entry:
            raise PolicyError("licence entry has no class", item=key, fix=f"add class = one of {USE_CLASSES}")
        rank(entry["class"])
        self._entries[key.strip().lower()] = {"key": key.strip(), **entry}
        self.sources[key.strip().lower()] = source

    def entries(self) -> dict[str, dict[str, Any]]:
        return {v["key"]: {k: x for k, x in v.items() if k != "key"} for v in self._entries.values()}

    def symbol(self, key: str) -> LicenseTerms:
        """Classify one licence id (no operators): the table, then the CC family rule, else unknown.

        The id is looked up as written, then as the SPDX id it is an alias of."""
        k = key.strip()
        low = k.lower()
        e = self._entries.get(low)
        if e is None and not _CC.match(k):
            alias = spdx_key(k)
            if alias is not None:
                e = self._entries.get(alias.lower())
                low = alias.lower() if e is not None else low
        if e is not None:
            return LicenseTerms(
                license=e["key"],
                use_class=e["class"],
                attribution=bool(e.get("attribution", False)),
                share_alike=bool(e.get("share_alike", False)),
                name=e.get("name"),
                rule=self.sources.get(low, "policy"),
            )
        m = _CC.match(k)
        if m:
            if m.group("nc"):
                cls = "non-commercial"
            elif m.group("nd"):
                # Cutting clips is an adaptation, which a NoDerivatives licence does not grant.
                cls = "unspecified"
            else:
                cls = "commercial"
            return LicenseTerms(
                license=k, use_class=cls, attribution=True, share_alike=bool(m.group("sa")), rule="cc-family"
            )
        return LicenseTerms(license=k, use_class=UNKNOWN_CLASS, unknown=True, rule="unknown")

    def classify(self, expr: str | None) -> LicenseTerms:
        """Classify an SPDX expression. ``None``/empty/NOASSERTION → unknown (academic-only)."""
        if expr is None or not str(expr).strip() or str(expr).strip().lower() in NO_ASSERTION:
            return LicenseTerms(license=expr or None, use_class=UNKNOWN_CLASS, unknown=True, rule="unknown")
        return _classify_cached(self, str(expr).strip())

    def _walk(self, node) -> LicenseTerms:
        from license_expression import AND, OR, LicenseSymbol, LicenseWithExceptionSymbol

        if isinstance(node, LicenseWithExceptionSymbol):
            return self.symbol(node.license_symbol.key)
        if isinstance(node, LicenseSymbol):
            return self.symbol(node.key)
        if isinstance(node, AND):
            return combine([self._walk(a) for a in node.args], license=str(node))
        if isinstance(node, OR):
            options = [self._walk(a) for a in node.args]
            best = min(options, key=lambda t: (t.rank, t.attribution, t.share_alike, t.unknown))
            return LicenseTerms(
                license=str(node),
                use_class=best.use_class,
                attribution=best.attribution,
                share_alike=best.share_alike,
                unknown=best.unknown,
                rule="or",
                chosen=best.chosen or ((best.license,) if best.license else ()),
            )
        raise PolicyError(f"unsupported licence expression node {node!r}", item=str(node))  # pragma: no cover

    def __hash__(self) -> int:
        return id(self)


@functools.lru_cache(maxsize=4096)
def _classify_cached(table: LicenseTable, expr: str) -> LicenseTerms:
    if expr.lower() in NO_ASSERTION:
        return LicenseTerms(license=expr, use_class=UNKNOWN_CLASS, unknown=True, rule="unknown")
    node = parse_expression(expr)
    terms = table._walk(node)
    if terms.license != expr and terms.rule not in ("and", "or"):
        return terms
    return LicenseTerms(
        license=expr,
        use_class=terms.use_class,
        attribution=terms.attribution,
        share_alike=terms.share_alike,
        unknown=terms.unknown,
        name=terms.name,
        rule=terms.rule,
        chosen=terms.chosen,
    )


def classify(expr: str | None, table: LicenseTable | None = None) -> LicenseTerms:
    """Classify an SPDX expression with ``table`` (default: the built-in policy)."""
    if table is None:
        from .profiles import load_policy

        table = load_policy().licenses
    return table.classify(expr)


__all__ = [
    "USE_CLASSES",
    "RANK",
    "UNKNOWN_CLASS",
    "LicenseTerms",
    "LicenseTable",
    "combine",
    "classify",
    "most_restrictive",
    "parse_expression",
    "rank",
]
