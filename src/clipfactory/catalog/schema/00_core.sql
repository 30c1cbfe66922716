-- Core tables. Every file in this folder is applied in name order with IF NOT EXISTS, so each
-- subsystem owns its own file. Record tables (sources, clips) are created from the record classes.
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);

CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    command VARCHAR,
    executor VARCHAR,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    status VARCHAR,              -- running | finished | failed | interrupted
    config JSON,                 -- the resolved config, stored with the run
    clipfactory_version VARCHAR
);
-- The host and process that run it: a running run whose process is gone was interrupted.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS host VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS pid INTEGER;
-- Items a run received that earlier runs had finished, so it did not redo them (set when a run ends).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS resumed BIGINT;

-- One row per (run, stage, item, attempt): kept | dropped(reason) | failed(error_kind, error).
CREATE TABLE IF NOT EXISTS stage_outcomes (
    run_id VARCHAR,
    stage VARCHAR,
    stage_version INTEGER,
    config_hash VARCHAR,
    item_id VARCHAR,
    status VARCHAR,
    reason VARCHAR,
    error_kind VARCHAR,
    error VARCHAR,
    detail VARCHAR,
    output_ids VARCHAR[],
    attempt INTEGER,
    recorded_at TIMESTAMP
);

-- The latest outcome of each item at each stage/version/config: what resume and reports read.
CREATE OR REPLACE VIEW latest_outcomes AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY stage, stage_version, config_hash, item_id ORDER BY recorded_at DESC, attempt DESC) AS rn
    FROM stage_outcomes
) WHERE rn = 1;
