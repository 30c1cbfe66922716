-- Takedown requests filed by creators (the public web page, clipfactory.fingerprints.requests): each is
-- reviewed by an operator, who approves it (the takedown runs), rejects it with a reason, or asks for more
-- information. Uploaded files are never kept: a request from an upload keeps its fingerprints only.
CREATE TABLE IF NOT EXISTS takedown_requests (
    request_id VARCHAR PRIMARY KEY,  -- random, unguessable: the requester's status page is keyed by it
    status VARCHAR,                  -- pending | info_requested | approved | rejected
    contact VARCHAR,
    work_url VARCHAR,                -- the work as a URL (one the catalog holds), or NULL
    relationship VARCHAR,            -- owner | agent | licensee | other
    statement VARCHAR,
    source_ids VARCHAR[],            -- the catalog sources the request names
    query_sha256 VARCHAR,            -- of the uploaded file (not kept)
    query_pdq VARCHAR[],             -- its usable PDQ hashes (hex), the only part of it kept
    query_pdq_time_ms BIGINT[],
    matched JSON,                    -- what the lookup found: source ids, confidences, time ranges
    takedown_id VARCHAR,             -- set when approved
    receipt_path VARCHAR,
    decision_note VARCHAR,           -- the reason of a rejection, the question of an information request
    created_at TIMESTAMP,
    updated_at TIMESTAMP
);

-- Every action on a request, by whom and when: submitted, approved, rejected, info_requested, ...
CREATE TABLE IF NOT EXISTS takedown_request_actions (
    request_id VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    actor VARCHAR,
    note VARCHAR,
    takedown_id VARCHAR,
    acted_at TIMESTAMP
);
