-- Web acquisition: the evidence of every fetch and consent check, the host documents we obeyed, the link
-- health of fetched sources and the takedown queue. Owned by clipfactory.acquire (see docs/acquire.md).
-- The acquire.http stage carries its evidence in Result.detail; acquire.evidence.load_fetch_evidence()
-- copies it here. Revalidation writes here directly. Times are UTC.

-- One row per HTTP request made for a source (redirect hops and retries are separate rows).
CREATE TABLE IF NOT EXISTS fetch_attempts (
    run_id VARCHAR,
    source_id VARCHAR,
    purpose VARCHAR,               -- fetch | revalidate
    url VARCHAR,                   -- the URL requested
    final_url VARCHAR,             -- the redirect target for a 3xx, else the URL itself
    status_code INTEGER,           -- NULL when no response came (timeout, connection error)
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    outcome VARCHAR,               -- kept | dropped | failed | denied | redirect | retry
    reason VARCHAR,                -- fetch.http_404, fetch.rate_limited, consent.x_robots_noai, ...
    response_headers JSON,         -- as received (long values clipped)
    content_sha256 VARCHAR,        -- of the complete body, when it was kept
    bytes BIGINT,                  -- body bytes received by this request
    range_start BIGINT             -- offset resumed from (Range), when resuming
);

-- robots.txt and tdmrep.json as fetched; bodies are stored once per version in the blob store by hash.
CREATE TABLE IF NOT EXISTS host_documents (
    host VARCHAR,                  -- origin: scheme://host:port
    kind VARCHAR,                  -- robots.txt | tdmrep.json
    url VARCHAR,                   -- where it was finally read (after redirects)
    fetched_at TIMESTAMP,
    status_code INTEGER,
    state VARCHAR,                 -- robots: ok | unavailable | unreachable; tdmrep: ok | absent | invalid | unreachable
    note VARCHAR,                  -- malformed lines, invalid JSON, the network error, ...
    body_sha256 VARCHAR,
    body_uri VARCHAR,              -- blob:sha256:<hex>
    run_id VARCHAR
);

-- Retry-After pauses an origin asked for (429, 503; on a media URL or on robots.txt/tdmrep.json). The fetcher
-- sends no request to the origin before the latest not_before: every later command and run reads this.
CREATE TABLE IF NOT EXISTS host_pauses (
    host VARCHAR,                  -- origin: scheme://host:port
    url VARCHAR,                   -- the request that was answered with Retry-After
    why VARCHAR,                   -- e.g. HTTP 429 with Retry-After: 7200
    set_at TIMESTAMP,
    not_before TIMESTAMP,          -- no request to the origin before this time
    seconds DOUBLE,                -- the Retry-After, in seconds from set_at
    source_id VARCHAR,
    run_id VARCHAR
);

-- One row per signal checked for a source (several per URL: before the request, on headers, on content).
CREATE TABLE IF NOT EXISTS consent_checks (
    run_id VARCHAR,
    source_id VARCHAR,
    url VARCHAR,
    phase VARCHAR,                 -- before_fetch | headers | content
    signal VARCHAR,                -- platform | robots.txt | content-usage | tdmrep | x-robots-tag | c2pa | spawning
    value VARCHAR,                 -- the raw value the verdict rests on
    verdict VARCHAR,               -- allow | deny | unstated | not_checked | error
    reason VARCHAR,                -- the drop reason of a denial
    evidence JSON,
    checked_at TIMESTAMP
);

-- Where each (run, item) outcome's evidence has been copied, so loading is idempotent.
CREATE TABLE IF NOT EXISTS fetch_evidence_loaded (
    run_id VARCHAR,
    item_id VARCHAR,
    recorded_at TIMESTAMP
);

-- The latest known state of each web source's link.
CREATE TABLE IF NOT EXISTS link_status (
    source_id VARCHAR PRIMARY KEY,
    status VARCHAR,                -- alive | gone | opted_out | blocked | invalid | error
    checked_at TIMESTAMP,
    reason VARCHAR,                -- the reason behind the status (fetch.http_410, consent.tdm_reserved, ...)
    http_status INTEGER,
    url VARCHAR,
    content_changed BOOLEAN        -- revalidation saw new validators (ETag, Last-Modified, length)
);

-- Sources to take down because their link went away or their owner opted out after we fetched them.
CREATE TABLE IF NOT EXISTS takedown_queue (
    source_id VARCHAR,
    reason VARCHAR,
    evidence JSON,
    queued_at TIMESTAMP,
    status VARCHAR DEFAULT 'pending'   -- pending | done | rejected (set by the takedown process)
);
