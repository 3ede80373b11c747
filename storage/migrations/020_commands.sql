-- Commands paysentinel sends to the payment gateway (automation/, issue 17) and their outcomes.
-- Every change is a new version: issued (or, in dry-run, recorded as "would have sent"), then
-- done / rejected / failed / expired / cancelled, and escalated once support was given the case.
-- Two instances issuing the same command write the same command_id: the view holds one command.
CREATE TABLE IF NOT EXISTS {db}.command_versions
(
    command_id String,
    version UInt64,
    type String,
    mode String,
    case_id String,
    rule_id String,
    order_id String,
    attempt UInt8,
    transaction_id String,
    amount_minor UInt64,
    currency String,
    entity_type String,
    entity_id String,
    ttl_s UInt32,
    issued_at DateTime('UTC'),
    expires_at DateTime('UTC'),
    reason String,
    status String,
    detail String,
    escalated UInt8,
    changed_by String,
    changed_at DateTime('UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(issued_at)
ORDER BY (command_id, version);

-- The current state of each command. Inner aliases differ from the outer names because 18.16
-- resolves an alias named like a column across the whole query. A command issued "on" stays on
-- (max of the mode's rank), so a dry-run record never hides a command that was sent.
CREATE VIEW IF NOT EXISTS {db}.commands AS
SELECT
    command_id,
    argMax(v_type, version) AS type,
    if(max(v_mode = 'on') = 1, 'on', 'dry-run') AS mode,
    argMin(v_case_id, version) AS case_id,
    argMin(v_rule_id, version) AS rule_id,
    argMax(v_order_id, version) AS order_id,
    argMax(v_attempt, version) AS attempt,
    argMax(v_transaction_id, version) AS transaction_id,
    argMax(v_amount_minor, version) AS amount_minor,
    argMax(v_currency, version) AS currency,
    argMax(v_entity_type, version) AS entity_type,
    argMax(v_entity_id, version) AS entity_id,
    argMax(v_ttl_s, version) AS ttl_s,
    min(v_issued_at) AS issued_at,
    argMax(v_expires_at, version) AS expires_at,
    argMax(v_reason, version) AS reason,
    argMax(v_status, version) AS status,
    argMax(v_detail, version) AS detail,
    max(v_escalated) AS escalated,
    argMax(v_changed_at, version) AS changed_at
FROM
(
    SELECT command_id, version, type AS v_type, mode AS v_mode, case_id AS v_case_id, rule_id AS v_rule_id, order_id AS v_order_id,
           attempt AS v_attempt, transaction_id AS v_transaction_id, amount_minor AS v_amount_minor, currency AS v_currency,
           entity_type AS v_entity_type, entity_id AS v_entity_id, ttl_s AS v_ttl_s, issued_at AS v_issued_at, expires_at AS v_expires_at,
           reason AS v_reason, status AS v_status, detail AS v_detail, escalated AS v_escalated, changed_at AS v_changed_at
    FROM {db}.command_versions
)
GROUP BY command_id;

-- The automation kill switch: the latest row wins, read by every automation pass, so pause and
-- resume take effect without a restart on every instance.
CREATE TABLE IF NOT EXISTS {db}.automation_switch
(
    version UInt64,
    state String,
    changed_by String,
    note String
)
ENGINE = MergeTree
ORDER BY version;
