-- Who a case is assigned to and how support resolved it (the support console, issue 15). Both are
-- kept on every version, so the history shows who took a case and why it was closed.
--
-- 18.16 has no ADD COLUMN IF NOT EXISTS: both columns are added in one ALTER, and migrate skips
-- it when both exist already (storage/migrations.ts addedColumns), so running it again is harmless.
ALTER TABLE {db}.case_versions ADD COLUMN assignee String DEFAULT '', ADD COLUMN resolution String DEFAULT '';

-- The view lists its columns, so it is made anew with the two new ones. Inner aliases differ from
-- the outer names because 18.16 resolves an alias named like a column across the whole query.
DROP TABLE IF EXISTS {db}.cases;

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
    argMax(v_recommended_action, version) AS recommended_action,
    argMax(v_assignee, version) AS assignee,
    argMax(v_resolution, version) AS resolution
FROM
(
    SELECT case_id, version, rule_id AS v_rule_id, rule_version AS v_rule_version, title AS v_title, severity AS v_severity,
           action AS v_action, entity_type AS v_entity_type, entity_id AS v_entity_id, status AS v_status, opened_at AS v_opened_at,
           updated_at AS v_updated_at, hit_count AS v_hit_count, evidence AS v_evidence, recommended_action AS v_recommended_action,
           assignee AS v_assignee, resolution AS v_resolution
    FROM {db}.case_versions
)
GROUP BY case_id;
