-- Media refused because it matches a tombstone (a re-encoded or cut-down copy of taken-down footage) is
-- moved out of the blob store into <store>/quarantine/<tombstone_id>/<sha256>/ (see
-- clipfactory.fingerprints.tombstones). The refusal is the stage's outcome row; this view reads it back:
-- one row per refused source, naming the tombstone, the takedown's reason and where the bytes are.
CREATE OR REPLACE VIEW quarantine AS
SELECT
    item_id AS source_id,
    q ->> 'tombstone_id' AS tombstone_id,
    q ->> 'takedown_reason' AS reason,
    q ->> 'sha256' AS content_sha256,
    q ->> 'path' AS path,                    -- the folder, relative to the store root
    q -> 'match' ->> 'kind' AS match_kind,
    TRY_CAST(q -> 'match' ->> 'share' AS DOUBLE) AS match_share,
    TRY_CAST(q ->> 'blob_kept' AS BOOLEAN) AS blob_kept,  -- another live source holds the same bytes
    stage,
    run_id,
    recorded_at AS refused_at
FROM (
    SELECT *, CASE WHEN json_valid(detail) THEN json_extract(detail, '$.quarantine') END AS q,
           row_number() OVER (PARTITION BY item_id ORDER BY recorded_at DESC, attempt DESC) AS rn
    FROM stage_outcomes
    WHERE status = 'dropped' AND reason LIKE 'takedown.tombstoned:%'
)
WHERE rn = 1 AND q IS NOT NULL;
