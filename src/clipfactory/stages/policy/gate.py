"""``policy.gate``: decide each source for the build's purpose, on its catalog metadata, before any byte.

Reads
    :class:`~clipfactory.records.SourceRecord` items (with or without a blob).
Writes
    the same record for each source the purpose may use (``kept``); the decision (effective class,
    attribution, share-alike, reasons, policy hash) is the outcome's detail.
Drop reasons
    ``policy.<reason>`` of :mod:`clipfactory.policy.gate`: for example ``policy.non_commercial`` for an NC
    licence in a commercial build, ``policy.platform_terms_no_permission:<platform>``,
    ``policy.evaluation_set``.
Resources
    the driver process (a catalog stage): the gate is vectorised SQL over the catalog and stores its
    decisions in ``policy_decisions``, which ``explain`` and the build export read.

The config carries the purpose and the hash of the policy, registry and permissions files, so a changed
policy re-decides every source instead of resuming an old decision.
"""

from __future__ import annotations

from types import SimpleNamespace

from pydantic import Field

from ...records import Result, SourceRecord
from ...registry import register
from ...resources import Resources
from ...stage import Stage, StageConfig


@register
class PolicyGateStage(Stage):
    name = "policy.gate"
    version = 2
    resources = Resources(cpus=1.0, memory_gb=1.0)
    batch_size = 100_000
    input_type = SourceRecord
    output_type = SourceRecord
    driver_side = True

    class Config(StageConfig):
        purpose: str = Field("research", description="The build's purpose profile (set by the run).")
        policy_hash: str = Field("", description="Hash of the policy, registry and permissions in force (set by the run).")
        evaluation: list[str] = Field(
            default_factory=list, description="Evaluation datasets (``dataset`` or ``dataset:split``) kept out."
        )

    def _settings(self) -> SimpleNamespace:
        ps = dict(self.context.extras.get("policy_settings") or {})
        ps.pop("purpose", None)
        return SimpleNamespace(**ps, build=SimpleNamespace(evaluation_manifests=list(self.config.evaluation)))

    def process_batch(self, items: list[SourceRecord]) -> list[Result]:
        from ...catalog import Catalog
        from ...factory.export import policy_check

        if not items:
            return []
        if not self.context.catalog_path:
            return [Result.failed(s.source_id, "terminal", "policy.gate needs the catalog") for s in items]
        catalog = Catalog(self.context.catalog_path)
        ids_ = [s.source_id for s in items]
        allowed, refused, decisions = policy_check(catalog, self.config.purpose, ids_, self._settings())
        out = []
        for s in items:
            detail = {"purpose": self.config.purpose, **(decisions.get(s.source_id) or {})}
            if s.source_id in allowed:
                out.append(Result.kept(s.source_id, s, detail=detail))
            else:
                out.append(Result.dropped(s.source_id, refused.get(s.source_id, "policy.refused"), detail))
        return out


def policy_fingerprint(settings, purpose: str) -> str:
    """The hash of the policy, registry and permissions files in force for ``purpose``."""
    from ...policy import gate

    return gate._context(settings, purpose, None).policy_hash
