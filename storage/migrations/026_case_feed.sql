-- The live feed announced a case change once it was in case_changes, and the inbox page it makes
-- browsers reload reads case_state. Both are filled by views on case_versions, and a server runs
-- the views of one INSERT one after the other (18.16 in name order: case_changes_mv first), so a
-- poll could find a change the inbox could not read yet: the page reloaded without it and was
-- never told again. Measured on 18.16 with both cores busy: 209 of 2,000 changes were readable in
-- case_changes before case_state. A view on case_state instead does not help: 18.16 does not run
-- the views of a view's target table.
--
-- So the feed now announces a change only once case_state holds it, and looks it up there by
-- key: each change carries its entity. case_changes cannot take the two columns in place: 18.16
-- refuses every insert into case_versions while a view on it lacks a column of its target table,
-- which it would between the ALTER and the new view. case_feed replaces it, created and filled
-- beside it. case_changes and its view stay for now: consoles of the previous version, still
-- running during an upgrade, read it for their live feed; a later migration drops them.
CREATE TABLE IF NOT EXISTS {db}.case_feed
(
    version UInt64,
    case_id String,
    status String,
    severity String,
    updated_at DateTime('UTC'),
    entity_type String,
    entity_id String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(updated_at)
ORDER BY (version, case_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.case_feed_mv TO {db}.case_feed AS
SELECT version, case_id, status, severity, updated_at, entity_type, entity_id
FROM {db}.case_versions;

-- Versions stored before the view, copied once. One inserted while this runs, or a migration run
-- twice by instances starting together, may be copied twice: the feed reads one row per (case,
-- version).
INSERT INTO {db}.case_feed
SELECT version, case_id, status, severity, updated_at, entity_type, entity_id
FROM {db}.case_versions;
