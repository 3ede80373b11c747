-- Copies of case_versions ordered for the support console (issue 15, "Speed"). The `cases` view
-- aggregates every version of every case, so the inbox page, the status counts and a look-up of
-- an entity's cases read all of case_versions, evidence included (0.4-1.5 s with 100,000 cases);
-- the live feed asked case_versions for the versions after the last one it saw, but case_versions
-- is ordered by case id, so every poll read every version. Both copies are filled by materialized
-- views on every insert into case_versions, in the same INSERT, so the case store writes nothing
-- more itself.

-- The current state of each case, narrow (no evidence, title or texts): what the inbox filters
-- and sorts on. ReplacingMergeTree keeps the latest version of a case once its parts merge;
-- readers never rely on merges having run: they take argMax(..., version) per case, which is right
-- whether or not the older versions are merged away, and reads far fewer rows once they are; the
-- status counts read it with FINAL, which is exact too, because the key names one case.
-- Ordered by entity, which never changes within a case (nor does the rule or opened_at), so the
-- cases of an entity are found by key, and the key still names one case.
CREATE TABLE IF NOT EXISTS {db}.case_state
(
    entity_type String,
    entity_id String,
    case_id String,
    version UInt64,
    rule_id String,
    severity String,
    status String,
    assignee String,
    resolution String,
    opened_at DateTime('UTC'),
    updated_at DateTime('UTC'),
    hit_count UInt32
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (entity_type, entity_id, case_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.case_state_mv TO {db}.case_state AS
SELECT entity_type, entity_id, case_id, version, rule_id, severity, status, assignee, resolution, opened_at, updated_at, hit_count
FROM {db}.case_versions;

-- Every version once more, ordered by version: the live feed reads the last minute of changes by key.
CREATE TABLE IF NOT EXISTS {db}.case_changes
(
    version UInt64,
    case_id String,
    status String,
    severity String,
    updated_at DateTime('UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(updated_at)
ORDER BY (version, case_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.case_changes_mv TO {db}.case_changes AS
SELECT version, case_id, status, severity, updated_at
FROM {db}.case_versions;

-- Cases stored before this migration, copied once (the views only see new inserts). A version
-- inserted while this runs, or a migration run twice by instances starting together, may be
-- copied twice: readers take argMax per case and one row per (case, version), so nothing changes.
INSERT INTO {db}.case_state
SELECT entity_type, entity_id, case_id, version, rule_id, severity, status, assignee, resolution, opened_at, updated_at, hit_count
FROM {db}.case_versions;

INSERT INTO {db}.case_changes
SELECT version, case_id, status, severity, updated_at
FROM {db}.case_versions;
