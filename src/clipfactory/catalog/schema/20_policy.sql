-- Policy gate: one decision per (source, purpose), recomputed wholesale for a purpose in one transaction.
CREATE TABLE IF NOT EXISTS policy_decisions (
    source_id VARCHAR,
    purpose VARCHAR,
    policy_hash VARCHAR,         -- the policy, registry and permissions the decision was made under
    decision VARCHAR,            -- allow | deny | review
    use_ok BOOLEAN,              -- may the content be used for the purpose (licences, datasets, evaluation sets)
    acquire_ok BOOLEAN,          -- may it be acquired through its channel (platform terms, permissions)
    effective_class VARCHAR,     -- commercial | unspecified | non-commercial | academic-only
    attribution BOOLEAN,         -- some licence on the lineage requires attribution
    share_alike BOOLEAN,         -- some licence on the lineage requires share-alike
    reasons VARCHAR[],           -- namespaced: policy.license_noncommercial, policy.dataset_withdrawn:webvid-10m, ...
    lineage JSON,                -- the evidence: content terms, annotation terms per membership, acquisition checks
    decided_at TIMESTAMP,
    PRIMARY KEY (source_id, purpose)
);

-- One row per purpose: when it was last evaluated, under which policy and evaluation sets.
CREATE TABLE IF NOT EXISTS policy_evaluations (
    purpose VARCHAR PRIMARY KEY,
    policy_hash VARCHAR,
    profile JSON,
    evaluation_datasets VARCHAR[],
    scope VARCHAR,               -- all | subset
    n_sources BIGINT,
    counts JSON,
    evaluated_at TIMESTAMP
);
