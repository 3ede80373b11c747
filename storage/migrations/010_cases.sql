-- Every version of every case, appended on open, on each further hit and on each status change.
CREATE TABLE IF NOT EXISTS {db}.case_versions
(
    case_id String,
    version UInt64,
    rule_id String,
    rule_version String,
    title String,
    severity String,
    action String,
    entity_type String,
    entity_id String,
    status String,
    opened_at DateTime('UTC'),
    updated_at DateTime('UTC'),
    hit_count UInt32,
    evidence String,
    recommended_action String,
    changed_by String,
    note String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(opened_at)
ORDER BY (case_id, version);

-- The current state of each case, for a plain SELECT. Inner aliases differ from the outer
-- names because 18.16 resolves an alias named like a column across the whole query.
CREATE VIEW IF NOT EXISTS {db}.cases AS
SELECT
    case_id,
    argMax(v_rule_id, version) AS rule_id,
    argMax(v_rule_version, version) AS rule_version,
    argMax(v_title, version) AS title,
    argMax(v_severity, version) AS severity,
    argMax(v_action, version) AS action,
    argMax(v_entity_type, version) AS entity_type,
    argMax(v_entity_id, version) AS entity_id,
    argMax(v_status, version) AS status,
    min(v_opened_at) AS opened_at,
    max(v_updated_at) AS updated_at,
    max(v_hit_count) AS hit_count,
    argMax(v_evidence, version) AS evidence,
    argMax(v_recommended_action, version) AS recommended_action
FROM
(
    SELECT case_id, version, rule_id AS v_rule_id, rule_version AS v_rule_version, title AS v_title, severity AS v_severity,
           action AS v_action, entity_type AS v_entity_type, entity_id AS v_entity_id, status AS v_status, opened_at AS v_opened_at,
           updated_at AS v_updated_at, hit_count AS v_hit_count, evidence AS v_evidence, recommended_action AS v_recommended_action
    FROM {db}.case_versions
)
GROUP BY case_id;
