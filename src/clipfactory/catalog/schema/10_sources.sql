-- Manifest ingest: datasets, the manifest files read into them, which sources each dataset lists,
-- the clip spans and captions the manifests give, and every row that could not be read.
-- `sources` itself is created from SourceRecord (one row per canonical video across all datasets).

CREATE TABLE IF NOT EXISTS datasets (
    dataset VARCHAR PRIMARY KEY,     -- e.g. kinetics-400, or the name given with --dataset
    format VARCHAR,                  -- the adapter that read it (kinetics, panda-70m, generic, owned, ...)
    registry_key VARCHAR,            -- key in the dataset registry, when the dataset is a known one
    first_ingested_at TIMESTAMP,
    last_ingested_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS manifests (
    manifest_id VARCHAR PRIMARY KEY, -- sha256 of the file bytes (of the file listing, for owned folders)
    dataset VARCHAR,
    uri VARCHAR,
    format VARCHAR,
    rows_total BIGINT,               -- data rows read (header excluded)
    rows_ok BIGINT,                  -- rows without any error
    rows_bad BIGINT,                 -- rows with at least one error (see ingest_errors)
    ingested_at TIMESTAMP
);

-- One row per source per dataset: the link that makes cross-dataset dedup and overlap one join.
-- (dataset, source_id) is the key. Ingest keeps it unique by construction (an anti-join inside the
-- write transaction, and there is one writer); it is not declared as an index because an index over
-- hundreds of millions of memberships doubles the cost of every bulk insert and must sit in memory.
CREATE TABLE IF NOT EXISTS memberships (
    dataset VARCHAR,
    source_id VARCHAR,
    manifest_id VARCHAR,             -- the manifest that first listed the source
    first_line BIGINT,               -- its first line there (header = line 1)
    split VARCHAR,
    label VARCHAR,
    n_spans BIGINT                   -- distinct clip spans the dataset gives for this source
);

-- The manifest's own clip spans and captions (one row per span and caption).
CREATE TABLE IF NOT EXISTS clip_spans (
    dataset VARCHAR,
    source_id VARCHAR,
    clip_id VARCHAR,                 -- ids.clip_id(source_id, start_ms, end_ms); NULL when the span is unknown
    start_ms BIGINT,
    end_ms BIGINT,
    caption VARCHAR,
    label VARCHAR,
    split VARCHAR,
    manifest_id VARCHAR,
    line BIGINT,                     -- line in the manifest (NULL for whole-document JSON)
    extra JSON                       -- format-specific fields (scores, upstream clip names, ...)
);

-- Every row that was not ingested, with where it was and why.
CREATE TABLE IF NOT EXISTS ingest_errors (
    manifest_id VARCHAR,
    dataset VARCHAR,
    uri VARCHAR,
    line BIGINT,                     -- header = line 1; NULL for whole-document JSON and owned files
    reason VARCHAR,
    raw VARCHAR,                     -- the offending row (or the JSON path of the offending element)
    pointer VARCHAR                  -- JSON path of the element, for whole-document JSON
);
